/**
 * The RTNETLINK wire codec: pure functions, no I/O.
 *
 *   encode: nlmsghdr + a fixed family header (ifinfomsg / ifaddrmsg / rtmsg)
 *           + attributes (nested ones included), each padded to 4 bytes.
 *   decode: a receive buffer -> nlmsghdr-framed messages -> attributes ->
 *           LinkEntry / AddressEntry / RouteEntry, NLMSG_ERROR (errno and the
 *           kernel's extended-ack text), NLMSG_DONE.
 *   ReplyCollector: the state machine that turns the datagrams answering one
 *           request into "done, with these messages" or "done, errno N",
 *           ignoring stale replies to earlier requests.
 *
 * Every length in the input is checked against the bytes that are really
 * there; anything malformed throws NetlinkDecodeError (a NetlinkError with
 * errno EBADMSG), never a RangeError or TypeError. The fuzz test in
 * test/platform/netlink-fuzz.test.ts holds the decoder to that.
 */
import { EBADMSG } from '../errno.js';
import { NetlinkError } from '../errors.js';
import {
  AF_INET,
  AF_INET6,
  IFADDRMSG_LEN,
  IFA_ADDRESS,
  IFA_FLAGS,
  IFA_LABEL,
  IFA_LOCAL,
  IFINFOMSG_LEN,
  IFLA_IFNAME,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  NLA_ALIGNTO,
  NLA_HDRLEN,
  NLMSGERR_ATTR_MSG,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_DUMP_INTR,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
  RTA_PREFSRC,
  RTA_PRIORITY,
  RTA_TABLE,
  RTMSG_LEN,
} from './constants.js';
import { formatIp } from './ip-address.js';
import type { AddressEntry, LinkEntry, RouteEntry } from './types.js';

/** A reply the kernel could not have sent: truncated, mis-sized, mis-aligned. */
export class NetlinkDecodeError extends NetlinkError {
  override name = 'NetlinkDecodeError';
  constructor(message: string) {
    super(`malformed netlink message: ${message}`, EBADMSG, 'decode netlink reply', 'EBADMSG');
  }
}

const NLA_F_NESTED = 0x8000;
const NLA_F_NET_BYTEORDER = 0x4000;
const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

function align4(n: number): number {
  return (n + NLA_ALIGNTO - 1) & ~(NLA_ALIGNTO - 1);
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// ---- encoding ----------------------------------------------------------------

/** An attribute to encode: raw bytes, or nested attributes (prefixed with a fixed header when given). */
export type AttributeSpec =
  | { type: number; value: Uint8Array }
  | { type: number; nested: AttributeSpec[]; header?: Uint8Array };

export interface MessageSpec {
  type: number;
  flags: number;
  seq: number;
  pid?: number;
  /** The family header (struct ifinfomsg, ifaddrmsg or rtmsg). */
  header: Uint8Array;
  attributes?: AttributeSpec[];
}

function attributeLength(attribute: AttributeSpec): number {
  if ('value' in attribute) return NLA_HDRLEN + attribute.value.length;
  let length = NLA_HDRLEN + align4(attribute.header?.length ?? 0);
  for (const child of attribute.nested) length += align4(attributeLength(child));
  return length;
}

function writeAttribute(out: Uint8Array, offset: number, attribute: AttributeSpec): number {
  const length = attributeLength(attribute);
  if (length > 0xffff) throw new NetlinkError(`netlink attribute ${attribute.type} is too long (${length} bytes)`, 90, 'encode netlink request', 'EMSGSIZE');
  const dv = view(out);
  dv.setUint16(offset, length, true);
  if ('value' in attribute) {
    dv.setUint16(offset + 2, attribute.type, true);
    out.set(attribute.value, offset + NLA_HDRLEN);
  } else {
    dv.setUint16(offset + 2, attribute.type | NLA_F_NESTED, true);
    let inner = offset + NLA_HDRLEN;
    if (attribute.header !== undefined) {
      out.set(attribute.header, inner);
      inner += align4(attribute.header.length);
    }
    for (const child of attribute.nested) inner += align4(writeAttribute(out, inner, child));
  }
  return length;
}

/** Encode one request: nlmsghdr, the family header, the attributes. */
export function encodeMessage(spec: MessageSpec): Uint8Array {
  const attributes = spec.attributes ?? [];
  let length = NLMSG_HDRLEN + align4(spec.header.length);
  for (const attribute of attributes) length += align4(attributeLength(attribute));
  const out = new Uint8Array(length);
  const dv = view(out);
  dv.setUint32(0, length, true);
  dv.setUint16(4, spec.type, true);
  dv.setUint16(6, spec.flags, true);
  dv.setUint32(8, spec.seq >>> 0, true);
  dv.setUint32(12, (spec.pid ?? 0) >>> 0, true);
  out.set(spec.header, NLMSG_HDRLEN);
  let offset = NLMSG_HDRLEN + align4(spec.header.length);
  for (const attribute of attributes) offset += align4(writeAttribute(out, offset, attribute));
  return out;
}

export function u32Attr(type: number, value: number): AttributeSpec {
  const bytes = new Uint8Array(4);
  view(bytes).setUint32(0, value >>> 0, true);
  return { type, value: bytes };
}

/** A NUL-terminated string attribute. */
export function stringAttr(type: number, value: string): AttributeSpec {
  const encoded = new TextEncoder().encode(value);
  const bytes = new Uint8Array(encoded.length + 1);
  bytes.set(encoded);
  return { type, value: bytes };
}

export function bytesAttr(type: number, value: Uint8Array): AttributeSpec {
  return { type, value };
}

export function nestedAttr(type: number, nested: AttributeSpec[], header?: Uint8Array): AttributeSpec {
  return header === undefined ? { type, nested } : { type, nested, header };
}

export interface IfInfoMsg {
  family?: number;
  type?: number;
  index?: number;
  flags?: number;
  change?: number;
}

export function encodeIfInfoMsg(msg: IfInfoMsg = {}): Uint8Array {
  const out = new Uint8Array(IFINFOMSG_LEN);
  const dv = view(out);
  out[0] = msg.family ?? 0;
  dv.setUint16(2, msg.type ?? 0, true);
  dv.setInt32(4, msg.index ?? 0, true);
  dv.setUint32(8, (msg.flags ?? 0) >>> 0, true);
  dv.setUint32(12, (msg.change ?? 0) >>> 0, true);
  return out;
}

export interface IfAddrMsg {
  family: number;
  prefixLength: number;
  flags?: number;
  scope?: number;
  index: number;
}

export function encodeIfAddrMsg(msg: IfAddrMsg): Uint8Array {
  const out = new Uint8Array(IFADDRMSG_LEN);
  out[0] = msg.family;
  out[1] = msg.prefixLength;
  out[2] = msg.flags ?? 0;
  out[3] = msg.scope ?? 0;
  view(out).setUint32(4, msg.index >>> 0, true);
  return out;
}

export interface RtMsg {
  family: number;
  dstLength?: number;
  srcLength?: number;
  tos?: number;
  table?: number;
  protocol?: number;
  scope?: number;
  type?: number;
  flags?: number;
}

export function encodeRtMsg(msg: RtMsg): Uint8Array {
  const out = new Uint8Array(RTMSG_LEN);
  out[0] = msg.family;
  out[1] = msg.dstLength ?? 0;
  out[2] = msg.srcLength ?? 0;
  out[3] = msg.tos ?? 0;
  out[4] = msg.table ?? 0;
  out[5] = msg.protocol ?? 0;
  out[6] = msg.scope ?? 0;
  out[7] = msg.type ?? 0;
  view(out).setUint32(8, (msg.flags ?? 0) >>> 0, true);
  return out;
}

// ---- decoding: framing ----------------------------------------------------------

export interface NetlinkMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Everything after the nlmsghdr, up to nlmsg_len (a view into the receive buffer). */
  payload: Uint8Array;
}

/** Split one received datagram into its messages. */
export function decodeMessages(buffer: Uint8Array): NetlinkMessage[] {
  const messages: NetlinkMessage[] = [];
  const dv = view(buffer);
  let offset = 0;
  while (offset < buffer.length) {
    const remaining = buffer.length - offset;
    if (remaining < NLMSG_HDRLEN) throw new NetlinkDecodeError(`${remaining} trailing bytes after message ${messages.length}, shorter than a header`);
    const length = dv.getUint32(offset, true);
    if (length < NLMSG_HDRLEN) throw new NetlinkDecodeError(`nlmsg_len ${length} is shorter than the ${NLMSG_HDRLEN}-byte header`);
    if (length > remaining) throw new NetlinkDecodeError(`nlmsg_len ${length} runs past the ${remaining} bytes received (truncated)`);
    messages.push({
      type: dv.getUint16(offset + 4, true),
      flags: dv.getUint16(offset + 6, true),
      seq: dv.getUint32(offset + 8, true),
      pid: dv.getUint32(offset + 12, true),
      payload: buffer.subarray(offset + NLMSG_HDRLEN, offset + length),
    });
    // The last message's padding may be missing.
    offset = Math.min(offset + align4(length), buffer.length);
  }
  return messages;
}

export interface RawAttribute {
  /** The type with the NESTED / NET_BYTEORDER bits masked off. */
  type: number;
  nested: boolean;
  value: Uint8Array;
}

/** Parse the attributes in `bytes` (a run of nlattr, each padded to 4). */
export function parseAttributes(bytes: Uint8Array): RawAttribute[] {
  const attributes: RawAttribute[] = [];
  const dv = view(bytes);
  let offset = 0;
  while (offset < bytes.length) {
    const remaining = bytes.length - offset;
    if (remaining < NLA_HDRLEN) {
      throw new NetlinkDecodeError(`${remaining} trailing bytes after attribute ${attributes.length}, shorter than an attribute header`);
    }
    const length = dv.getUint16(offset, true);
    const rawType = dv.getUint16(offset + 2, true);
    if (length < NLA_HDRLEN) throw new NetlinkDecodeError(`attribute ${rawType & NLA_TYPE_MASK} has nla_len ${length} < ${NLA_HDRLEN}`);
    if (length > remaining) throw new NetlinkDecodeError(`attribute ${rawType & NLA_TYPE_MASK} has nla_len ${length}, only ${remaining} bytes left`);
    attributes.push({
      type: rawType & NLA_TYPE_MASK,
      nested: (rawType & NLA_F_NESTED) !== 0,
      value: bytes.subarray(offset + NLA_HDRLEN, offset + length),
    });
    offset = Math.min(offset + align4(length), bytes.length);
  }
  return attributes;
}

/** The first attribute of each type (the kernel never repeats the ones read here). */
function attributeTable(bytes: Uint8Array): Map<number, Uint8Array> {
  const table = new Map<number, Uint8Array>();
  for (const attribute of parseAttributes(bytes)) if (!table.has(attribute.type)) table.set(attribute.type, attribute.value);
  return table;
}

function readU32(value: Uint8Array, what: string): number {
  if (value.length !== 4) throw new NetlinkDecodeError(`${what} is ${value.length} bytes, expected 4`);
  return view(value).getUint32(0, true);
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** A NUL-terminated (or just ended) string attribute. */
function readString(value: Uint8Array): string {
  const nul = value.indexOf(0);
  return utf8.decode(nul === -1 ? value : value.subarray(0, nul));
}

function readAddress(value: Uint8Array, family: 4 | 6, what: string): string {
  const expected = family === 4 ? 4 : 16;
  if (value.length !== expected) throw new NetlinkDecodeError(`${what} is ${value.length} bytes, expected ${expected} for IPv${family}`);
  return formatIp(value)!;
}

function familyOf(raw: number): 4 | 6 | null {
  if (raw === AF_INET) return 4;
  if (raw === AF_INET6) return 6;
  return null;
}

// ---- decoding: control messages -----------------------------------------------

export interface DecodedError {
  /** Positive errno; 0 for an ACK. */
  errno: number;
  /** NLMSGERR_ATTR_MSG of an extended ACK, when the kernel sent one. */
  extack?: string;
}

/** struct nlmsgerr (+ extended-ack TLVs) of an NLMSG_ERROR message. */
export function decodeError(message: NetlinkMessage): DecodedError {
  const payload = message.payload;
  if (payload.length < 4) throw new NetlinkDecodeError(`NLMSG_ERROR payload is ${payload.length} bytes, expected at least 4`);
  const dv = view(payload);
  const error = dv.getInt32(0, true);
  if (error > 0 || error < -4095) throw new NetlinkDecodeError(`NLMSG_ERROR carries error ${error}, not 0 or a negative errno`);
  const result: DecodedError = { errno: error === 0 ? 0 : -error };
  if ((message.flags & NLM_F_ACK_TLVS) !== 0 && payload.length >= 4 + NLMSG_HDRLEN) {
    // The echoed request: just its header when capped, else all of it.
    const echoed = (message.flags & NLM_F_CAPPED) !== 0 ? NLMSG_HDRLEN : dv.getUint32(4, true);
    const start = 4 + align4(echoed);
    if (echoed >= NLMSG_HDRLEN && start <= payload.length) {
      try {
        const text = attributeTable(payload.subarray(start)).get(NLMSGERR_ATTR_MSG);
        if (text !== undefined) {
          const decoded = readString(text);
          if (decoded !== '') result.extack = decoded;
        }
      } catch (error) {
        // The extended ack is advisory; a garbled one must not hide the errno.
        if (!(error instanceof NetlinkDecodeError)) throw error;
      }
    }
  }
  return result;
}

/** The errno an NLMSG_DONE carries (0 when it carries none). */
export function decodeDone(message: NetlinkMessage): number {
  if (message.payload.length < 4) return 0;
  const error = view(message.payload).getInt32(0, true);
  return error < 0 && error >= -4095 ? -error : 0;
}

// ---- decoding: rtnetlink objects -------------------------------------------------

/** An RTM_NEWLINK message. */
export function decodeLink(message: NetlinkMessage): LinkEntry {
  const payload = message.payload;
  if (payload.length < IFINFOMSG_LEN) throw new NetlinkDecodeError(`link message is ${payload.length} bytes, shorter than struct ifinfomsg`);
  const dv = view(payload);
  const entry: LinkEntry = {
    index: dv.getInt32(4, true),
    name: '',
    flags: dv.getUint32(8, true),
    type: dv.getUint16(2, true),
  };
  const attributes = attributeTable(payload.subarray(IFINFOMSG_LEN));
  const name = attributes.get(IFLA_IFNAME);
  if (name !== undefined) entry.name = readString(name);
  const mtu = attributes.get(IFLA_MTU);
  if (mtu !== undefined) entry.mtu = readU32(mtu, 'IFLA_MTU');
  const master = attributes.get(IFLA_MASTER);
  if (master !== undefined) entry.master = readU32(master, 'IFLA_MASTER');
  const linkInfo = attributes.get(IFLA_LINKINFO);
  if (linkInfo !== undefined) {
    const kind = attributeTable(linkInfo).get(IFLA_INFO_KIND);
    if (kind !== undefined) entry.kind = readString(kind);
  }
  return entry;
}

/** An RTM_NEWADDR message; null for a family other than IPv4/IPv6. */
export function decodeAddress(message: NetlinkMessage): AddressEntry | null {
  const payload = message.payload;
  if (payload.length < IFADDRMSG_LEN) throw new NetlinkDecodeError(`address message is ${payload.length} bytes, shorter than struct ifaddrmsg`);
  const family = familyOf(payload[0]!);
  if (family === null) return null;
  const prefixLength = payload[1]!;
  if (prefixLength > (family === 4 ? 32 : 128)) throw new NetlinkDecodeError(`IPv${family} address with prefix length ${prefixLength}`);
  const attributes = attributeTable(payload.subarray(IFADDRMSG_LEN));
  const raw = attributes.get(IFA_LOCAL) ?? attributes.get(IFA_ADDRESS);
  if (raw === undefined) throw new NetlinkDecodeError('address message without IFA_LOCAL or IFA_ADDRESS');
  const extendedFlags = attributes.get(IFA_FLAGS);
  const entry: AddressEntry = {
    index: view(payload).getUint32(4, true),
    family,
    address: readAddress(raw, family, attributes.has(IFA_LOCAL) ? 'IFA_LOCAL' : 'IFA_ADDRESS'),
    prefixLength,
    scope: payload[3]!,
    flags: extendedFlags !== undefined ? readU32(extendedFlags, 'IFA_FLAGS') : payload[2]!,
  };
  const label = attributes.get(IFA_LABEL);
  if (label !== undefined) entry.label = readString(label);
  return entry;
}

/** The raw IFA_LOCAL / IFA_ADDRESS of an address message, to delete exactly that address. */
export function addressAttributes(message: NetlinkMessage): { local?: Uint8Array; address?: Uint8Array } {
  const payload = message.payload;
  if (payload.length < IFADDRMSG_LEN) throw new NetlinkDecodeError(`address message is ${payload.length} bytes, shorter than struct ifaddrmsg`);
  const attributes = attributeTable(payload.subarray(IFADDRMSG_LEN));
  const out: { local?: Uint8Array; address?: Uint8Array } = {};
  const local = attributes.get(IFA_LOCAL);
  const address = attributes.get(IFA_ADDRESS);
  if (local !== undefined) out.local = local;
  if (address !== undefined) out.address = address;
  return out;
}

/** An RTM_NEWROUTE message; null for a family other than IPv4/IPv6. */
export function decodeRoute(message: NetlinkMessage): RouteEntry | null {
  const payload = message.payload;
  if (payload.length < RTMSG_LEN) throw new NetlinkDecodeError(`route message is ${payload.length} bytes, shorter than struct rtmsg`);
  const family = familyOf(payload[0]!);
  if (family === null) return null;
  const dstPrefixLength = payload[1]!;
  if (dstPrefixLength > (family === 4 ? 32 : 128)) throw new NetlinkDecodeError(`IPv${family} route with destination prefix length ${dstPrefixLength}`);
  const attributes = attributeTable(payload.subarray(RTMSG_LEN));
  const table = attributes.get(RTA_TABLE);
  const priority = attributes.get(RTA_PRIORITY);
  const entry: RouteEntry = {
    family,
    dstPrefixLength,
    table: table !== undefined ? readU32(table, 'RTA_TABLE') : payload[4]!,
    priority: priority !== undefined ? readU32(priority, 'RTA_PRIORITY') : 0,
    protocol: payload[5]!,
    scope: payload[6]!,
    type: payload[7]!,
  };
  const oif = attributes.get(RTA_OIF);
  if (oif !== undefined) entry.oif = readU32(oif, 'RTA_OIF');
  const gateway = attributes.get(RTA_GATEWAY);
  if (gateway !== undefined) entry.gateway = readAddress(gateway, family, 'RTA_GATEWAY');
  const dst = attributes.get(RTA_DST);
  if (dst !== undefined) entry.dst = readAddress(dst, family, 'RTA_DST');
  const prefsrc = attributes.get(RTA_PREFSRC);
  if (prefsrc !== undefined) entry.prefsrc = readAddress(prefsrc, family, 'RTA_PREFSRC');
  return entry;
}

// ---- the reply state machine -------------------------------------------------------

/**
 * Collects the answer to one request. `ack` requests (NLM_F_ACK) end with an
 * NLMSG_ERROR (errno 0 = success) and may carry messages before it (a GET by
 * name); `dump` requests end with NLMSG_DONE. Messages whose sequence number
 * (or, when known, port id) is not the request's are late answers to an
 * earlier request that timed out, and are dropped.
 */
export class ReplyCollector {
  readonly messages: NetlinkMessage[] = [];
  done = false;
  /** Positive errno when the kernel refused the request. */
  errno = 0;
  extack: string | undefined;
  /** A dump was interrupted by a concurrent change (NLM_F_DUMP_INTR): its content may be inconsistent. */
  interrupted = false;

  constructor(
    readonly seq: number,
    readonly portId: number,
    readonly mode: 'ack' | 'dump',
  ) {}

  /** Feed one received datagram; returns true once the answer is complete. */
  feed(datagram: Uint8Array): boolean {
    for (const message of decodeMessages(datagram)) {
      if (this.done) break;
      if (message.seq !== this.seq >>> 0) continue;
      if (this.portId !== 0 && message.pid !== 0 && message.pid !== this.portId) continue;
      if ((message.flags & NLM_F_DUMP_INTR) !== 0) this.interrupted = true;
      switch (message.type) {
        case NLMSG_NOOP:
          break;
        case NLMSG_ERROR: {
          const decoded = decodeError(message);
          this.errno = decoded.errno;
          this.extack = decoded.extack;
          this.done = true;
          break;
        }
        case NLMSG_DONE:
          this.errno = decodeDone(message);
          this.done = true;
          break;
        case NLMSG_OVERRUN:
          throw new NetlinkDecodeError('NLMSG_OVERRUN: the kernel dropped part of the reply');
        default:
          this.messages.push(message);
      }
    }
    return this.done;
  }
}
