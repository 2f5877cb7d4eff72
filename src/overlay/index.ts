/** What other rooms use of src/overlay: they import it from here, never from a file of the room. */
export { loadNodeConfig, type NodeConfig } from './config-file.js';
export { DEFAULT_CONTROL_SOCKET, DEFAULT_WG_PORT, ROAMING_ENDPOINT } from './constants.js';
export { requestOnce } from './control-client.js';
export { describeMetricsListen, parseListenAddress, runNodeDaemon } from './node-daemon.js';
export { type NatStatusWire, type Request, type Response, type StatusSnapshot } from './protocol.js';
export { StateStore } from './state-store.js';
export { formatNatStatusTable, formatPeersTable, formatServicesTable, formatStatusTable } from './status.js';
