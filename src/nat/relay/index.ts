/** The built-in relay: protocol, key derivation, server and client. */
export { deriveRelayAuthKey, relayTag, relayTagValid } from './auth.js';
export { RelayClient, RelayRegistrationError, type RelayClientOptions } from './client.js';
export * from './constants.js';
export { DropLog } from './drop-log.js';
export * from './protocol.js';
export { RelayServer, type RelayServerConfig } from './server.js';
