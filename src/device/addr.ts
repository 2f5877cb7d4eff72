/**
 * IP addresses, CIDR prefixes and UDP endpoints as the device and the UAPI
 * use them: parsed strictly, with errors that name the offending text.
 */
import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 4 | 6;

export class AddressError extends Error {
  override readonly name = 'AddressError';
}

/** An IP prefix: network bytes (4 or 16, host bits zeroed) and prefix length. */
export interface Cidr {
  family: IpFamily;
  bytes: Uint8Array;
  prefixLength: number;
}

/** A UDP endpoint. `address` is in canonical text form (IPv6 compressed, no brackets). */
export interface Endpoint {
  family: IpFamily;
  address: string;
  port: number;
}

/** The 4 or 16 bytes of an IP address in text form; throws AddressError. */
export function ipToBytes(text: string): Uint8Array {
  if (text.includes('%')) throw new AddressError(`'${text}' is not an IP address (scoped addresses are not supported)`);
  if (isIPv4(text)) return Uint8Array.from(text.split('.').map(Number));
  if (isIPv6(text)) return ipv6ToBytes(text);
  throw new AddressError(`'${text}' is not an IP address`);
}

function ipv6ToBytes(text: string): Uint8Array {
  let head = text;
  let v4Tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    v4Tail = text.slice(lastColon + 1).split('.').map(Number);
    head = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [left = '', right] = head.split('::') as [string, string | undefined];
  const leftGroups = left === '' ? [] : left.split(':');
  const rightGroups = right === undefined || right === '' ? [] : right.split(':');
  const missing = 8 - leftGroups.length - rightGroups.length;
  const groups = [...leftGroups, ...Array<string>(right === undefined ? 0 : missing).fill('0'), ...rightGroups];
  const out = new Uint8Array(16);
  groups.forEach((group, i) => {
    const value = parseInt(group, 16);
    out[i * 2] = value >> 8;
    out[i * 2 + 1] = value & 0xff;
  });
  if (v4Tail.length === 4) out.set(v4Tail, 12);
  return out;
}

export function bytesToIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw new AddressError(`an IP address is 4 or 16 bytes, got ${bytes.length}`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // RFC 5952: compress the longest run (length > 1) of zero groups, the first one on ties.
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength && j - i > 1) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** Parse "10.0.0.0/8", "fd00::/64" or a bare address (a host prefix). Host bits are cleared, as wg does. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  let bytes: Uint8Array;
  try {
    bytes = ipToBytes(addressText);
  } catch {
    throw new AddressError(`'${text}' is not a valid CIDR: bad address '${addressText}'`);
  }
  const family: IpFamily = bytes.length === 4 ? 4 : 6;
  const maxLength = bytes.length * 8;
  let prefixLength = maxLength;
  if (slash >= 0) {
    const lengthText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lengthText) || Number(lengthText) > maxLength) {
      throw new AddressError(`'${text}' is not a valid CIDR: prefix length must be 0..${maxLength}`);
    }
    prefixLength = Number(lengthText);
  }
  return { family, bytes: maskBytes(bytes, prefixLength), prefixLength };
}

export function formatCidr(cidr: Cidr): string {
  return `${bytesToIp(cidr.bytes)}/${cidr.prefixLength}`;
}

/** A copy of `bytes` with everything after the first `prefixLength` bits zeroed. */
export function maskBytes(bytes: Uint8Array, prefixLength: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < out.length; i++) {
    const bitsHere = Math.max(0, Math.min(8, prefixLength - i * 8));
    out[i]! &= (0xff << (8 - bitsHere)) & 0xff;
  }
  return out;
}

/** Parse "1.2.3.4:51820" or "[fd00::1]:51820" (an IPv6 scope "%eth0" is refused). */
export function parseEndpoint(text: string): Endpoint {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') throw new AddressError(`'${text}' is not a valid endpoint: expected [IPv6]:port`);
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!isIPv6(host)) throw new AddressError(`'${text}' is not a valid endpoint: '${host}' is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw new AddressError(`'${text}' is not a valid endpoint: expected IP:port`);
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (!isIPv4(host)) throw new AddressError(`'${text}' is not a valid endpoint: '${host}' is not an IPv4 address (write IPv6 as [addr]:port)`);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw new AddressError(`'${text}' is not a valid endpoint: port must be 0..65535`);
  }
  const bytes = ipToBytes(host);
  return { family: bytes.length === 4 ? 4 : 6, address: bytesToIp(bytes), port: Number(portText) };
}

export function formatEndpoint(endpoint: Endpoint): string {
  return endpoint.family === 6 ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`;
}

/** Address bytes then the port (big endian): the input of a MAC2 cookie. */
export function endpointBytes(endpoint: Endpoint): Uint8Array {
  const ip = ipToBytes(endpoint.address);
  const out = new Uint8Array(ip.length + 2);
  out.set(ip);
  out[ip.length] = endpoint.port >> 8;
  out[ip.length + 1] = endpoint.port & 0xff;
  return out;
}

export function endpointsEqual(a: Endpoint | null, b: Endpoint | null): boolean {
  return a === b || (a !== null && b !== null && a.port === b.port && a.address === b.address);
}
