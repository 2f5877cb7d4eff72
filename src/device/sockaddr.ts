/**
 * Endpoints as the kernel's struct sockaddr_in / sockaddr_in6, for the
 * device's syscall-level UDP I/O (sendmmsg, recvmmsg, sendto). Conversions
 * are cached per Endpoint object and comparisons read bytes, so the data path
 * checks "same sender as before?" without allocating.
 */
import { bytesToIp, ipToBytes, type Endpoint } from './addr.js';
import { AF_INET, AF_INET6 } from '../platform/index.js';

/** Bytes reserved per sockaddr: sockaddr_in6 is 28, rounded up. */
export const SOCKADDR_ROOM = 32;
const SOCKADDR_IN_SIZE = 16;
const SOCKADDR_IN6_SIZE = 28;

const cache = new WeakMap<Endpoint, Uint8Array>();

/** The sockaddr of an endpoint (16 or 28 bytes). Do not modify the result: it is shared. */
export function sockaddrOf(endpoint: Endpoint): Uint8Array {
  let sockaddr = cache.get(endpoint);
  if (sockaddr === undefined) {
    const address = ipToBytes(endpoint.address);
    sockaddr = new Uint8Array(endpoint.family === 4 ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE);
    const view = new DataView(sockaddr.buffer);
    view.setUint16(0, endpoint.family === 4 ? AF_INET : AF_INET6, true);
    view.setUint16(2, endpoint.port, false);
    sockaddr.set(address, endpoint.family === 4 ? 4 : 8);
    cache.set(endpoint, sockaddr);
  }
  return sockaddr;
}

/** The endpoint a sockaddr (as recvmmsg filled it) names; null for another address family. */
export function endpointFromSockaddr(sockaddr: Uint8Array): Endpoint | null {
  const family = sockaddr[0]! | (sockaddr[1]! << 8);
  const port = (sockaddr[2]! << 8) | sockaddr[3]!;
  if (family === AF_INET) return { family: 4, address: bytesToIp(sockaddr.slice(4, 8)), port };
  if (family === AF_INET6) return { family: 6, address: bytesToIp(sockaddr.slice(8, 24)), port };
  return null;
}

/** Does `sockaddr` name `endpoint` (family, port, address; flow info and scope ignored)? */
export function sockaddrMatches(endpoint: Endpoint | null, sockaddr: Uint8Array): boolean {
  if (endpoint === null) return false;
  const expected = sockaddrOf(endpoint);
  const end = endpoint.family === 4 ? 8 : 24;
  for (let i = 0; i < end; i++) {
    if (i >= 4 && i < 8 && endpoint.family === 6) continue; // sin6_flowinfo
    if (sockaddr[i] !== expected[i]) return false;
  }
  return true;
}
