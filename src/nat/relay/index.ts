/** The built-in relay: protocol, keys and tags, server and client. */
export {
  RelayCredentialError,
  deriveRelayAuthKey,
  keyProofKey,
  notRegisteredTag,
  relayCookie,
  relayCredentialProblem,
  relayTag,
  relayTagValid,
  requireRelayCredential,
} from './auth.js';
export { RelayClient, RelayRegistrationError, type RelayClientOptions } from './client.js';
export * from './constants.js';
export { DropLog } from './drop-log.js';
export * from './protocol.js';
export { SourceRateLimiter, type RateLimits } from './rate-limit.js';
export { DEFAULT_RELAY_SERVER_LIMITS, RelayServer, type RelayServerConfig, type RelayServerLimits, type RelayServerStats } from './server.js';
