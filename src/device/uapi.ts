/**
 * The WireGuard cross-platform userspace API (UAPI) text codec:
 * https://www.wireguard.com/xplatform/#configuration-protocol
 *
 * Pure functions, no I/O. The socket side lives in uapi-server.ts.
 *
 * Behaviour follows wireguard-go 0.0.20220316 (device/uapi.go), checked
 * against the real binary:
 *
 * - A `set` request is a list of key=value lines. Device keys (private_key,
 *   listen_port, fwmark, replace_peers) come first; `public_key` opens a peer
 *   section, after which only peer keys (remove, update_only, preshared_key,
 *   endpoint, persistent_keepalive_interval, replace_allowed_ips, allowed_ip,
 *   protocol_version) are allowed.
 * - A line without '=' is EPROTO; every other bad line (unknown key, device
 *   key inside a peer section, peer key before any public_key, bad value) is
 *   EINVAL.
 * - Numbers are unsigned decimal, leading zeros allowed, no sign, no spaces
 *   (Go's strconv.ParseUint). Keys are exactly 64 hex digits, either case.
 *   allowed_ip needs a '/' (netip.ParsePrefix; the prefix length is Go's
 *   Atoi, so "/08", "/+8" and "/-0" pass); host bits are cleared.
 *   An endpoint is IPv4:port or [IPv6]:port.
 * - The response to every request ends with "errno=N\n\n", where N is 0 or
 *   a NEGATIVE errno (wireguard-go writes -22 for EINVAL; wg(8) negates it).
 *
 * One deliberate difference: wireguard-go applies set lines one at a time, so
 * a bad line leaves the lines before it applied. parseSetRequest validates
 * the whole request first, and the device applies it only when it is valid.
 */
import { AddressError, bytesToIp, formatCidr, ipToBytes, parseCidr, parseEndpoint } from './addr.js';
import type { Cidr, Endpoint } from './addr.js';
import { KEY_SIZE, decodeHexKey } from '../noise/index.js';
import { EADDRINUSE, EINVAL, EIO, EMSGSIZE, EPROTO } from '../platform/index.js';

/** ENOANO is Linux's 55; Node's errno table leaves it out. */
const ENOANO = 55;

/** Positive errno values used on the UAPI (the system's numbering, as wireguard-go's ipc package). */
export const Errno = {
  EIO,
  EINVAL,
  ENOANO,
  EPROTO,
  EMSGSIZE,
  EADDRINUSE,
} as const;

export class UapiError extends Error {
  override readonly name = 'UapiError';
  /** A positive errno, e.g. 22 (EINVAL); written to the client as errno=-22. */
  readonly errno: number;
  constructor(errno: number, message: string) {
    super(message);
    this.errno = Math.abs(Math.trunc(errno)) || Errno.EIO;
  }
}

export interface UapiPeerChange {
  publicKey: Uint8Array;
  /** remove=true: remove the peer; the rest of the section is ignored (but was validated). */
  remove: boolean;
  /** update_only=true: do nothing for this section if the peer does not exist yet. */
  updateOnly: boolean;
  /** All-zero key = no PSK. */
  presharedKey?: Uint8Array;
  endpoint?: Endpoint;
  /** Seconds, 0..65535; 0 = off. */
  persistentKeepaliveInterval?: number;
  /**
   * replace_allowed_ips=true: drop the peer's allowed IPs before adding `allowedIps`.
   * As in wireguard-go, allowed_ip lines before replace_allowed_ips in the same
   * section are dropped too, so they are not in `allowedIps`.
   */
  replaceAllowedIps: boolean;
  allowedIps: Cidr[];
}

export interface UapiSetRequest {
  /** All-zero = remove the private key. */
  privateKey?: Uint8Array;
  listenPort?: number;
  /** 0 = off. */
  fwmark?: number;
  replacePeers: boolean;
  /** One entry per public_key line, in request order (the same key may appear twice). */
  peers: UapiPeerChange[];
}

export interface UapiPeerState {
  publicKey: Uint8Array;
  presharedKey: Uint8Array | null;
  endpoint: Endpoint | null;
  /** Wall-clock milliseconds since the epoch; 0 = never. */
  lastHandshakeTimeMs: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepaliveInterval: number;
  allowedIps: Cidr[];
}

export interface UapiDeviceState {
  privateKey: Uint8Array | null;
  listenPort: number;
  fwmark: number;
  peers: UapiPeerState[];
}

const DEVICE_KEYS = new Set(['private_key', 'listen_port', 'fwmark', 'replace_peers']);
const PEER_KEYS = new Set([
  'remove',
  'update_only',
  'preshared_key',
  'endpoint',
  'persistent_keepalive_interval',
  'replace_allowed_ips',
  'allowed_ip',
  'protocol_version',
]);

// ---- parsing -----------------------------------------------------------------

/** A long run of hex digits: possibly (part of) a key, never echoed in an error message. */
const KEY_LIKE = /[0-9a-fA-F]{12,}/;

/** Text safe to put in an error message: control characters escaped, at most `max` characters, nothing key-like. */
function quote(text: string, max = 64): string {
  if (KEY_LIKE.test(text)) return `(${text.length} characters, not shown)`;
  const cut = text.length > max ? `${text.slice(0, max)}...` : text;
  return JSON.stringify(cut);
}

/** Go's strconv.ParseUint(text, 10, bits) as a range check: digits only, leading zeros fine. */
function parseUint(text: string, max: number): number | null {
  if (!/^[0-9]+$/.test(text)) return null;
  const digits = text.replace(/^0+(?=.)/, '');
  if (digits.length > 16) return null;
  const value = Number(digits);
  return value <= max ? value : null;
}

function isZero(bytes: Uint8Array): boolean {
  return bytes.every((b) => b === 0);
}

/**
 * netip.ParseAddrPort as wireguard-go uses it: "a.b.c.d:port" or "[v6]:port",
 * port 0..65535 with any number of leading zeros. IPv6 scopes are refused.
 */
export function parseUapiEndpoint(text: string): Endpoint {
  const colon = text.lastIndexOf(':');
  if (colon < 0) throw new AddressError(`${quote(text)} is not a valid endpoint: expected IP:port`);
  const port = parseUint(text.slice(colon + 1), 0xffff);
  if (port === null) throw new AddressError(`${quote(text)} is not a valid endpoint: port must be 0..65535`);
  return parseEndpoint(`${text.slice(0, colon)}:${port}`);
}

/** netip.ParsePrefix (Go 1.19) as wireguard-go uses it: address '/' Atoi(length); host bits cleared. */
export function parseUapiCidr(text: string): Cidr {
  const slash = text.lastIndexOf('/');
  if (slash < 0) throw new AddressError(`${quote(text)} is not a valid CIDR: no '/'`);
  const address = text.slice(0, slash);
  const lengthText = text.slice(slash + 1);
  const match = /^([+-]?)([0-9]+)$/.exec(lengthText);
  const length = match ? parseUint(match[2]!, 128) : null;
  if (match === null || length === null || (match[1] === '-' && length !== 0)) {
    throw new AddressError(`${quote(text)} is not a valid CIDR: bad prefix length`);
  }
  return parseCidr(`${address}/${length}`);
}

function parseKey(value: string, what: string, where: string): Uint8Array {
  try {
    return decodeHexKey(value, what);
  } catch {
    // Never echo the value: it may be a secret.
    throw new UapiError(Errno.EINVAL, `${where}: invalid ${what} (expected ${KEY_SIZE * 2} hex digits)`);
  }
}

function parseTrue(value: string, key: string, where: string): true {
  if (value !== 'true') throw new UapiError(Errno.EINVAL, `${where}: invalid ${key} value ${quote(value)} (only "true" is allowed)`);
  return true;
}

function parseNumber(value: string, key: string, max: number, where: string): number {
  const n = parseUint(value, max);
  if (n === null) throw new UapiError(Errno.EINVAL, `${where}: invalid ${key} ${quote(value)} (expected an integer 0..${max})`);
  return n;
}

function addressValue<T>(parse: (text: string) => T, value: string, key: string, where: string): T {
  try {
    return parse(value);
  } catch (error) {
    const reason = error instanceof AddressError && !KEY_LIKE.test(value) ? error.message : `${quote(value)} is not valid`;
    throw new UapiError(Errno.EINVAL, `${where}: invalid ${key}: ${reason}`);
  }
}

/**
 * Parse and validate a whole `set` request. `lines` are the lines after
 * "set=1", without their '\n' and without the terminating empty line.
 * Error messages say "line N", counting "set=1" as line 1, and never contain
 * a key's value.
 */
export function parseSetRequest(lines: readonly string[]): UapiSetRequest {
  const request: UapiSetRequest = { replacePeers: false, peers: [] };
  let peer: UapiPeerChange | null = null;

  lines.forEach((line, index) => {
    const where = `line ${index + 2}`;
    const eq = line.indexOf('=');
    if (eq < 0) {
      if (line === '') throw new UapiError(Errno.EPROTO, `${where}: empty line inside a set request`);
      throw new UapiError(Errno.EPROTO, `${where}: failed to parse line: expected key=value`);
    }
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);

    if (key === 'public_key') {
      peer = {
        publicKey: parseKey(value, 'public_key', where),
        remove: false,
        updateOnly: false,
        replaceAllowedIps: false,
        allowedIps: [],
      };
      request.peers.push(peer);
      return;
    }

    if (peer === null) {
      switch (key) {
        case 'private_key':
          request.privateKey = parseKey(value, 'private_key', where);
          return;
        case 'listen_port':
          request.listenPort = parseNumber(value, key, 0xffff, where);
          return;
        case 'fwmark':
          request.fwmark = parseNumber(value, key, 0xffffffff, where);
          return;
        case 'replace_peers':
          request.replacePeers = parseTrue(value, key, where);
          return;
        default:
          if (PEER_KEYS.has(key)) {
            throw new UapiError(Errno.EINVAL, `${where}: invalid UAPI device key ${quote(key, 32)} (a peer key needs a public_key line before it)`);
          }
          throw new UapiError(Errno.EINVAL, `${where}: invalid UAPI device key ${quote(key, 32)}`);
      }
    }

    const p: UapiPeerChange = peer;
    switch (key) {
      case 'remove':
        p.remove = parseTrue(value, key, where);
        return;
      case 'update_only':
        p.updateOnly = parseTrue(value, key, where);
        return;
      case 'preshared_key':
        p.presharedKey = parseKey(value, 'preshared_key', where);
        return;
      case 'endpoint':
        p.endpoint = addressValue(parseUapiEndpoint, value, key, where);
        return;
      case 'persistent_keepalive_interval':
        p.persistentKeepaliveInterval = parseNumber(value, key, 0xffff, where);
        return;
      case 'replace_allowed_ips':
        parseTrue(value, key, where);
        p.replaceAllowedIps = true;
        p.allowedIps = [];
        return;
      case 'allowed_ip':
        p.allowedIps.push(addressValue(parseUapiCidr, value, key, where));
        return;
      case 'protocol_version':
        if (value !== '1') throw new UapiError(Errno.EINVAL, `${where}: invalid protocol_version ${quote(value)} (only 1 is supported)`);
        return;
      default:
        if (DEVICE_KEYS.has(key)) {
          throw new UapiError(Errno.EINVAL, `${where}: invalid UAPI peer key ${quote(key, 32)} (device keys must come before the first public_key)`);
        }
        throw new UapiError(Errno.EINVAL, `${where}: invalid UAPI peer key ${quote(key, 32)}`);
    }
  });
  return request;
}

// ---- formatting --------------------------------------------------------------

function hex(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex');
}

/** A non-negative integer in plain decimal (never exponent notation). */
function uint(n: number): string {
  if (!Number.isFinite(n) || n <= 0) return '0';
  return BigInt(Math.trunc(n)).toString();
}

/** An IP address as Go's netip writes it: IPv4-mapped IPv6 as ::ffff:a.b.c.d, the rest as RFC 5952. */
function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 16 && bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `::ffff:${Array.from(bytes.subarray(12)).join('.')}`;
  }
  return bytesToIp(bytes);
}

/** "1.2.3.4:5" or "[fd00::1]:5", as wireguard-go prints an endpoint. */
export function formatUapiEndpoint(endpoint: Endpoint): string {
  if (endpoint.family === 4) return `${endpoint.address}:${endpoint.port}`;
  return `[${formatIp(ipToBytes(endpoint.address))}]:${endpoint.port}`;
}

/** "10.0.0.0/24", as wireguard-go prints an allowed IP (host bits are already clear in a Cidr). */
export function formatUapiCidr(cidr: Cidr): string {
  return cidr.family === 6 ? `${formatIp(cidr.bytes)}/${cidr.prefixLength}` : formatCidr(cidr);
}

/**
 * The response to `get=1`: exactly what wireguard-go writes for the same
 * state (peers and allowed IPs in the order given), ending "errno=0\n\n".
 * private_key is left out when absent or zero, listen_port and fwmark when 0,
 * endpoint when unset; preshared_key is always written (zeros when none).
 */
export function formatGetResponse(state: UapiDeviceState): string {
  const out: string[] = [];
  if (state.privateKey !== null && !isZero(state.privateKey)) out.push(`private_key=${hex(state.privateKey)}`);
  if (state.listenPort !== 0) out.push(`listen_port=${uint(state.listenPort)}`);
  if (state.fwmark !== 0) out.push(`fwmark=${uint(state.fwmark)}`);
  const zeroKey = new Uint8Array(KEY_SIZE);
  for (const peer of state.peers) {
    out.push(`public_key=${hex(peer.publicKey)}`);
    out.push(`preshared_key=${hex(peer.presharedKey ?? zeroKey)}`);
    out.push('protocol_version=1');
    if (peer.endpoint !== null) out.push(`endpoint=${formatUapiEndpoint(peer.endpoint)}`);
    let sec = 0;
    let nsec = 0;
    if (Number.isFinite(peer.lastHandshakeTimeMs) && peer.lastHandshakeTimeMs > 0) {
      sec = Math.floor(peer.lastHandshakeTimeMs / 1000);
      nsec = Math.min(999_999_999, Math.round((peer.lastHandshakeTimeMs - sec * 1000) * 1e6));
    }
    out.push(`last_handshake_time_sec=${uint(sec)}`);
    out.push(`last_handshake_time_nsec=${uint(nsec)}`);
    out.push(`tx_bytes=${uint(peer.txBytes)}`);
    out.push(`rx_bytes=${uint(peer.rxBytes)}`);
    out.push(`persistent_keepalive_interval=${uint(peer.persistentKeepaliveInterval)}`);
    for (const cidr of peer.allowedIps) out.push(`allowed_ip=${formatUapiCidr(cidr)}`);
  }
  out.push('errno=0', '', '');
  return out.join('\n');
}

/**
 * The status line that ends every response: "errno=0\n\n" or, for a
 * positive errno such as 22, "errno=-22\n\n" (wireguard-go's convention;
 * wg(8) turns -22 back into EINVAL). A negative input is written as is.
 */
export function formatErrno(errno: number): string {
  const n = Math.trunc(errno);
  return `errno=${n === 0 || !Number.isFinite(n) ? 0 : -Math.abs(n)}\n\n`;
}

// ---- the client side (tests, tools) ------------------------------------------

/** The full text of a `set` request for `request` ("set=1\n" ... "\n"), the inverse of parseSetRequest. */
export function formatSetRequest(request: UapiSetRequest): string {
  const out = ['set=1'];
  if (request.privateKey !== undefined) out.push(`private_key=${hex(request.privateKey)}`);
  if (request.listenPort !== undefined) out.push(`listen_port=${uint(request.listenPort)}`);
  if (request.fwmark !== undefined) out.push(`fwmark=${uint(request.fwmark)}`);
  if (request.replacePeers) out.push('replace_peers=true');
  for (const peer of request.peers) {
    out.push(`public_key=${hex(peer.publicKey)}`);
    if (peer.remove) out.push('remove=true');
    if (peer.updateOnly) out.push('update_only=true');
    if (peer.presharedKey !== undefined) out.push(`preshared_key=${hex(peer.presharedKey)}`);
    if (peer.endpoint !== undefined) out.push(`endpoint=${formatUapiEndpoint(peer.endpoint)}`);
    if (peer.persistentKeepaliveInterval !== undefined) {
      out.push(`persistent_keepalive_interval=${uint(peer.persistentKeepaliveInterval)}`);
    }
    if (peer.replaceAllowedIps) out.push('replace_allowed_ips=true');
    for (const cidr of peer.allowedIps) out.push(`allowed_ip=${formatUapiCidr(cidr)}`);
  }
  out.push('', '');
  return out.join('\n');
}

/**
 * Parse a `get` response (everything up to and including "errno=N\n\n").
 * Throws UapiError with the (positive) errno when N is not 0, and EPROTO
 * when the text is malformed. Unknown keys are ignored, as wg(8) does.
 */
export function parseGetResponse(text: string): UapiDeviceState {
  let result: UapiDeviceState | UapiError;
  try {
    result = parseGetResponseLines(text);
  } catch (error) {
    if (error instanceof UapiError && error.errno === Errno.EINVAL) {
      throw new UapiError(Errno.EPROTO, `malformed get response: ${error.message}`);
    }
    throw error;
  }
  if (result instanceof UapiError) throw result;
  return result;
}

/** The state, or the error the peer reported with a non-zero errno (returned, not thrown). */
function parseGetResponseLines(text: string): UapiDeviceState | UapiError {
  const state: UapiDeviceState = { privateKey: null, listenPort: 0, fwmark: 0, peers: [] };
  let peer: UapiPeerState | null = null;
  let handshakeSec = 0;
  const bad = (message: string): UapiError => new UapiError(Errno.EPROTO, `malformed get response: ${message}`);
  const finishPeer = (): void => {
    if (peer !== null) peer.lastHandshakeTimeMs += handshakeSec * 1000;
    handshakeSec = 0;
  };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const eq = line.indexOf('=');
    if (eq < 0) throw bad(`line ${i + 1} is not key=value`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    const number = (max: number): number => {
      const n = parseUint(value, max);
      if (n === null) throw bad(`line ${i + 1}: bad ${key}`);
      return n;
    };
    const where = `line ${i + 1}`;
    if (key === 'errno') {
      if (lines[i + 1] !== '' || lines[i + 2] !== '' || lines.length !== i + 3) throw bad('errno must end the response with an empty line');
      const errno = /^-?[0-9]+$/.test(value) ? Math.abs(Number(value)) : NaN;
      if (!Number.isSafeInteger(errno)) throw bad(`bad errno ${quote(value)}`);
      if (errno !== 0) return new UapiError(errno, `get failed with errno=${value}`);
      finishPeer();
      return state;
    }
    if (key === 'public_key') {
      finishPeer();
      peer = {
        publicKey: parseKey(value, 'public_key', where),
        presharedKey: null,
        endpoint: null,
        lastHandshakeTimeMs: 0,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepaliveInterval: 0,
        allowedIps: [],
      };
      state.peers.push(peer);
      continue;
    }
    if (peer === null) {
      if (key === 'private_key') {
        const k = parseKey(value, 'private_key', where);
        state.privateKey = isZero(k) ? null : k;
      } else if (key === 'listen_port') state.listenPort = number(0xffff);
      else if (key === 'fwmark') state.fwmark = number(0xffffffff);
      // Other keys are ignored, as wg(8) does (forward compatibility).
      continue;
    }
    switch (key) {
      case 'preshared_key': {
        const k = parseKey(value, 'preshared_key', where);
        peer.presharedKey = isZero(k) ? null : k;
        break;
      }
      case 'protocol_version':
        if (value !== '1') throw bad(`${where}: protocol_version ${quote(value)}`);
        break;
      case 'endpoint':
        peer.endpoint = addressValue(parseUapiEndpoint, value, key, where);
        break;
      case 'last_handshake_time_sec':
        handshakeSec = number(Number.MAX_SAFE_INTEGER);
        break;
      case 'last_handshake_time_nsec':
        peer.lastHandshakeTimeMs = number(999_999_999) / 1e6;
        break;
      case 'tx_bytes':
        peer.txBytes = number(Number.MAX_SAFE_INTEGER);
        break;
      case 'rx_bytes':
        peer.rxBytes = number(Number.MAX_SAFE_INTEGER);
        break;
      case 'persistent_keepalive_interval':
        peer.persistentKeepaliveInterval = number(0xffff);
        break;
      case 'allowed_ip':
        peer.allowedIps.push(addressValue(parseUapiCidr, value, key, where));
        break;
      default:
        // Ignored, as wg(8) does.
        break;
    }
  }
  throw bad('no errno line');
}
