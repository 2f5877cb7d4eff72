/**
 * NAT traversal (`tswg/nat`): candidates and their wire form, the NAT
 * config and its spec conversion, hole punching, NatTraversal, the
 * maintenance tick and status view; the STUN client and codec, the TURN
 * client, the built-in relay (server, client, protocol); the datagram port
 * they all speak through and the loopback peer proxy relays use.
 */
export * from './constants.js';
export * from './config.js';
export * from './candidates.js';
export * from './hole-punch.js';
export { NatTraversal, NatTraversalError, resolveHostPort } from './traversal.js';
export { NatMaintenance, NatMaintenanceError, type NatMaintenanceOptions, type NatPeerStatusWire, type NatStatusWire } from './maintenance.js';
export { devicePort, openSocketPort, type DatagramPort, type DatagramSubscriber, type SocketPort } from './datagram-port.js';
export { PeerProxy } from './peer-proxy.js';
export * from './stun/index.js';
export * from './turn/index.js';
export {
  RelayClient,
  RelayRegistrationError,
  RelayServer,
  deriveRelayAuthKey,
  relayTag,
  relayTagValid,
  DropLog,
  type RelayClientOptions,
} from './relay/index.js';
export * as relay from './relay/index.js';
