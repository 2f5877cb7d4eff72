/**
 * A thin layer over dns-packet: queries in (never throwing: malformed input
 * is null), responses out with the rcode in the header (dns-packet's encoder
 * only takes it inside `flags`) and truncation to the client's size, plus the
 * two header fields the forwarder reads from raw upstream answers.
 */
import dnsPacket, { type Answer, type DecodedPacket, type Question } from 'dns-packet';
import { DNS_UDP_DEFAULT_PAYLOAD, DNS_UDP_MAX_PAYLOAD } from '../constants.js';

/** Response codes we send or read (RFC 1035 §4.1.1). */
export const RCODE = Object.freeze({ NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 });
export type Rcode = (typeof RCODE)[keyof typeof RCODE];

const HEADER_BYTES = 12;
const OPCODE_QUERY = 0;
const RD_FLAG = 1 << 8;
const CD_FLAG = 1 << 4;

/** What the server needs from a client's query. */
export interface DnsQuery {
  id: number;
  question: Question;
  /** Recursion desired and checking disabled, echoed back. */
  echoedFlags: number;
  /** The client's EDNS UDP size, null without an OPT record. */
  ednsSize: number | null;
}

/** Additional records a query may carry: an OPT, and a TSIG or cookie-style extra. */
const MAX_QUERY_ADDITIONALS = 2;

/**
 * A cheap look at the header before dns-packet sees the message: its decoder
 * allocates an array per section count up front (4 × 65,535 entries for
 * garbage), which made 10,000 junk datagrams cost tens of seconds of CPU.
 * A standard query has QR 0, opcode 0, one question, no answer or authority
 * records and at most a couple of additional ones.
 */
function plausibleQueryHeader(bytes: Buffer): boolean {
  if (bytes.length < HEADER_BYTES) return false;
  const flags = bytes.readUInt16BE(2);
  return (
    (flags & 0x8000) === 0 &&
    ((flags >> 11) & 0xf) === OPCODE_QUERY &&
    bytes.readUInt16BE(4) === 1 &&
    bytes.readUInt16BE(6) === 0 &&
    bytes.readUInt16BE(8) === 0 &&
    bytes.readUInt16BE(10) <= MAX_QUERY_ADDITIONALS
  );
}

/**
 * The query in `bytes`, or null when it is not one we answer: undecodable,
 * a response (answering one would let two servers loop), not a standard
 * query, or not exactly one question.
 */
export function decodeQuery(bytes: Buffer): DnsQuery | null {
  if (!plausibleQueryHeader(bytes)) return null;
  let packet: DecodedPacket;
  try {
    packet = dnsPacket.decode(bytes);
  } catch {
    return null;
  }
  const flags = packet.flags ?? 0;
  if (packet.flag_qr || ((flags >> 11) & 0xf) !== OPCODE_QUERY) return null;
  const questions = packet.questions ?? [];
  if (questions.length !== 1) return null;
  const question = questions[0]!;
  if (typeof question.name !== 'string' || typeof question.type !== 'string') return null;
  const opt = (packet.additionals ?? []).find((record) => record.type === 'OPT');
  const ednsSize = opt === undefined ? null : (opt as { udpPayloadSize?: number }).udpPayloadSize ?? DNS_UDP_DEFAULT_PAYLOAD;
  return { id: packet.id ?? 0, question, echoedFlags: flags & (RD_FLAG | CD_FLAG), ednsSize };
}

/** The most a UDP answer to `query` may hold: 512 without EDNS, else the client's size within 512…1232. */
export function udpLimit(query: DnsQuery): number {
  if (query.ednsSize === null) return DNS_UDP_DEFAULT_PAYLOAD;
  return Math.min(Math.max(query.ednsSize, DNS_UDP_DEFAULT_PAYLOAD), DNS_UDP_MAX_PAYLOAD);
}

export interface AnswerParts {
  rcode: Rcode;
  answers?: Answer[];
  authorities?: Answer[];
  /** Authoritative (our own zone). */
  authoritative?: boolean;
  /** We forward other names, so recursion is available. */
  recursionAvailable?: boolean;
}

/** The wire labels of an uncompressed name at `offset`: their end, or -1 when it runs off or is compressed. */
function nameEnd(bytes: Buffer, offset: number): number {
  let at = offset;
  while (at < bytes.length) {
    const length = bytes[at]!;
    if (length === 0) return at + 1;
    if ((length & 0xc0) !== 0) return -1;
    at += 1 + length;
  }
  return -1;
}

/**
 * dns-packet writes every name in full; a name repeated 40 times would make
 * the answer three times its size. Owner names that are the question's name
 * or one of its suffixes become pointers into the question (RFC 1035 §4.1.4).
 * Names inside record data are left as they are (allowed, and rare here).
 */
function compressOwnerNames(bytes: Buffer): Buffer {
  const questionEnd = nameEnd(bytes, HEADER_BYTES);
  if (questionEnd < 0) return bytes;
  // Each suffix of the question name (lower case, wire form) → its offset.
  const suffixes = new Map<string, number>();
  for (let at = HEADER_BYTES; at < questionEnd - 1; at += 1 + bytes[at]!) {
    suffixes.set(bytes.subarray(at, questionEnd).toString('latin1').toLowerCase(), at);
  }
  const records = bytes.readUInt16BE(6) + bytes.readUInt16BE(8) + bytes.readUInt16BE(10);
  const out: Buffer[] = [bytes.subarray(0, questionEnd + 4)];
  let at = questionEnd + 4;
  for (let i = 0; i < records; i++) {
    const end = nameEnd(bytes, at);
    if (end < 0 || end + 10 > bytes.length) return bytes;
    const pointer = suffixes.get(bytes.subarray(at, end).toString('latin1').toLowerCase());
    if (pointer !== undefined && end - at > 2) {
      const pointerBytes = Buffer.alloc(2);
      pointerBytes.writeUInt16BE(0xc000 | pointer);
      out.push(pointerBytes);
    } else {
      out.push(bytes.subarray(at, end));
    }
    const recordEnd = end + 10 + bytes.readUInt16BE(end + 8);
    if (recordEnd > bytes.length) return bytes;
    out.push(bytes.subarray(end, recordEnd));
    at = recordEnd;
  }
  return Buffer.concat(out);
}

function encodeParts(query: DnsQuery, parts: AnswerParts, truncated: boolean): Buffer {
  let flags = query.echoedFlags | parts.rcode;
  if (parts.authoritative === true) flags |= dnsPacket.AUTHORITATIVE_ANSWER;
  if (parts.recursionAvailable !== false) flags |= dnsPacket.RECURSION_AVAILABLE;
  if (truncated) flags |= dnsPacket.TRUNCATED_RESPONSE;
  const additionals: Answer[] =
    query.ednsSize === null ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: DNS_UDP_MAX_PAYLOAD, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }];
  return compressOwnerNames(dnsPacket.encode({
    type: 'response',
    id: query.id,
    flags,
    questions: [query.question],
    answers: truncated ? [] : (parts.answers ?? []),
    authorities: truncated ? [] : (parts.authorities ?? []),
    additionals,
  }));
}

/**
 * The response to `query`. With a `limit` (UDP), an answer longer than it
 * goes out as the question alone with TC set, and the client asks again
 * over TCP, where no limit applies.
 */
export function encodeAnswer(query: DnsQuery, parts: AnswerParts, limit: number | null): { bytes: Buffer; truncated: boolean } {
  const bytes = encodeParts(query, parts, false);
  if (limit === null || bytes.length <= limit) return { bytes, truncated: false };
  return { bytes: encodeParts(query, parts, true), truncated: true };
}

/** An answer with only a code: SERVFAIL when every upstream failed, REFUSED when too busy. */
export function encodeError(query: DnsQuery, rcode: Rcode): Buffer {
  return encodeParts(query, { rcode }, false);
}

/** The id of a raw message, null when it is too short to have one. */
export function messageId(bytes: Buffer): number | null {
  return bytes.length < HEADER_BYTES ? null : bytes.readUInt16BE(0);
}

/** The rcode and QR bit of a raw message (what the forwarder needs of an upstream's answer), null when too short. */
export function responseHeader(bytes: Buffer): { isResponse: boolean; rcode: number } | null {
  if (bytes.length < HEADER_BYTES) return null;
  const flags = bytes.readUInt16BE(2);
  return { isResponse: (flags & 0x8000) !== 0, rcode: flags & 0xf };
}
