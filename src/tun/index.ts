export { DEFAULT_MTU, MAX_INTERFACE_NAME_BYTES, type TunDevice, type TunHandlers } from './tun.js';
export { LinuxTun, setInterfaceMtu, validateInterfaceName } from './linux.js';
