/**
 * The platform layer: system calls Node lacks (through koffi), typed errors.
 * RTNETLINK, egress detection and namespaces arrive with the platform issue.
 */
export * from './errors.js';
export { bindUdpSocket, setSocketMark, type BoundUdpSocket } from './udp-socket.js';
