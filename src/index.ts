/**
 * tswg's main entry: the device (TUN + UDP + peers + UAPI) and, re-exported,
 * the protocol core.
 */
export { Device, type DeviceOptions, type DatagramInterceptor, type PeerStatus } from './device/device.js';
export { Peer } from './device/peer.js';
export { AllowedIps } from './device/allowed-ips.js';
export { UapiServer, type UapiHandler } from './device/uapi-server.js';
export * from './device/uapi.js';
export * from './device/addr.js';
export { createLogger, parseLogLevel, silentLogger, type Logger, type LogLevel } from './device/logger.js';
export * from './tun/index.js';
export * from './noise/index.js';
