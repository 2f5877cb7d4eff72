/** What other rooms use of src/device: they import it from here, never from a file of the room. */
export { AddressError, bytesToIp, type Cidr, type Endpoint, endpointsEqual, formatCidr, formatEndpoint, type IpFamily, ipToBytes, maskBytes, parseCidr, parseEndpoint } from './addr.js';
export { UdpBindError } from './bind.js';
export { UAPI_SOCKET_DIRECTORY } from './constants.js';
export { Device, type PeerStatus } from './device.js';
export { createLogger, type Logger, parseLogLevel, peerLogName, silentLogger } from './logger.js';
export { UapiServer, uapiSocketPath } from './uapi-server.js';
export { type UapiDeviceState, type UapiPeerChange } from './uapi.js';
