/**
 * The TUN offloads (src/tun/checksum.ts, gso.ts, gro.ts) against independent
 * references, on random traffic, and once for real through the kernel.
 *
 * 1. checksum.ts: sums, folding, the pseudo-header and the IPv4 header
 *    checksum against a plain RFC 1071 reference (test/helpers/tcp-packets.ts)
 *    and RFC 1071 §3's worked example; odd lengths, odd offsets.
 * 2. splitTcpSegments on thousands of random TCP super-packets (IPv4 with and
 *    without options, IPv6 with and without an extension header, TCP options
 *    0–40 bytes, payloads up to 64 KB, gso sizes 1..1460, every flag, IPv4 ID
 *    and seq near their wrap): each segment must equal, byte for byte, the
 *    packet the reference builder makes from the expected fields (seq = first
 *    + offset mod 2^32, ID = first + i mod 2^16, FIN/PSH only on the last,
 *    CWR only on the first, checksums valid). Malformed input emits nothing.
 * 3. completeChecksum on TCP/UDP, IPv4/IPv6 packets left as the kernel leaves
 *    NEEDS_CSUM packets (the field holds the pseudo-header sum).
 * 4. TcpCoalescer: random interleaved bulk flows must come out as the
 *    expected runs (counted by an independent model of the GRO rules), with
 *    correct virtio headers, and split back (after the kernel's checksum)
 *    into exactly the input segments in per-flow order; everything that must
 *    not be joined is written alone, in order.
 * 5. Two tswg daemons in network namespaces, offloads on and off: iperf3 TCP
 *    both ways and UDP, no retransmission storm, `ip -d link` shows vnet_hdr.
 *
 * The seed is random per run unless FUZZ_SEED is set; it is printed, and
 * failure messages carry it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, execIn, ip, requireCommands, requireRoot } from '../../scripts/lib/netns.js';
import { createPair, ping, type Pair, type WgNode } from '../../scripts/lib/topology.js';
import { finish, fold, get16, pseudoHeaderSum, put16, setIpv4HeaderChecksum, sumWords } from '../../src/tun/checksum.js';
import { completeChecksum, splitTcpSegments, type SegmentSink } from '../../src/tun/gso.js';
import { MAX_PENDING, TcpCoalescer } from '../../src/tun/gro.js';
import {
  CSUM_OFFSET,
  CSUM_START,
  FLAGS,
  GSO_SIZE,
  GSO_TYPE,
  HDR_LEN,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  GSO_MAX_SEGMENTS,
  GSO_MIN_SIZE,
  VIRTIO_NET_HDR_SIZE,
  getField,
  setField,
} from '../../src/tun/virtio-net.js';
import { OffloadReader } from '../../src/tun/offload-reader.js';
import { PacketRingConsumer, createPacketRingMemory, plainSlot, type RingSlot } from '../../src/platform/packet-ring.js';
import { destroyPair, runIperf, type IperfRun } from '../helpers/device-interop.js';
import { mainLoopWatches } from '../helpers/main-loop-watches.js';
import { Rng, bytesEqual, fuzzSeed, shortHex } from '../helpers/fuzz.js';
import {
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV4_DF,
  IPV4_MF,
  IP_DEFAULTS,
  TCP_ACK,
  TCP_CWR,
  TCP_ECE,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TCP_URG,
  buildTcpPacket,
  buildUdpPacket,
  concat,
  onesComplementSum,
  parseIp,
  parseTcp,
  pseudoHeader,
  referenceChecksum,
  referenceFold,
  tcpFlowKey,
  type TcpFields,
  type UdpFields,
} from '../helpers/tcp-packets.js';

const SEED = fuzzSeed();
const TWO_32 = 0x1_0000_0000;
/** Largest IP packet (the IPv4 total length and what the coalescer may build). */
const MAX_PACKET = 65_535;

beforeAll(() => {
  console.log(`offload tests: FUZZ_SEED=${SEED}`);
});

/** A fresh generator per test, derived from the seed, so tests reproduce independently. */
function rngFor(test: number): Rng {
  return new Rng((SEED ^ Math.imul(test + 1, 0x9e3779b1)) >>> 0);
}

function randomAddress(rng: Rng, version: 4 | 6): Uint8Array {
  return rng.bytes(version === 4 ? 4 : 16);
}

// ---------------------------------------------------------------- 1. checksum.ts

describe('checksum.ts against a plain RFC 1071 reference', () => {
  it('RFC 1071 §3 numerical example: 00 01 f2 03 f4 f5 f6 f7 sums to 2ddf0, folds to ddf2, checksum 220d', () => {
    const example = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
    expect(sumWords(example, 0, 8)).toBe(0x2ddf0);
    expect(fold(0x2ddf0)).toBe(0xddf2);
    expect(finish(0x2ddf0)).toBe(0x220d);
    expect(referenceChecksum(example)).toBe(0x220d);
    // The same bytes at an odd offset in a larger buffer, with bytes around them that must not count.
    const inside = concat(Uint8Array.of(0xff, 0xff, 0xff), example, Uint8Array.of(0xff));
    expect(sumWords(inside, 3, 11)).toBe(0x2ddf0);
    // With the checksum appended, the sum folds to all ones: the receiver's check.
    expect(fold(sumWords(concat(example, Uint8Array.of(0x22, 0x0d)), 0, 10))).toBe(0xffff);
  });

  it('fold and finish: edge values', () => {
    expect(fold(0)).toBe(0);
    expect(fold(1)).toBe(1);
    expect(fold(0xffff)).toBe(0xffff);
    expect(fold(0x10000)).toBe(1);
    expect(fold(0x1fffe)).toBe(0xffff);
    expect(fold(0xffffffff)).toBe(0xffff);
    expect(fold(Number.MAX_SAFE_INTEGER)).toBe(referenceFold(Number.MAX_SAFE_INTEGER));
    expect(finish(0)).toBe(0xffff);
    expect(finish(0xffff)).toBe(0);
    expect(finish(0x1fffe)).toBe(0);
  });

  it('fold and finish on random sums up to 2^53', () => {
    const rng = rngFor(1);
    for (let i = 0; i < 5_000; i++) {
      const magnitude = rng.pick([16, 17, 20, 32, 40, 53]);
      const x = Math.floor(rng.float() * 2 ** magnitude);
      expect(fold(x), `fold(${x}) seed ${SEED}`).toBe(referenceFold(x));
      expect(finish(x), `finish(${x}) seed ${SEED}`).toBe(~referenceFold(x) & 0xffff);
    }
  });

  it('sumWords over random ranges (odd starts, odd lengths, initial sums) matches the reference', () => {
    const rng = rngFor(2);
    for (let i = 0; i < 3_000; i++) {
      const length = rng.chance(0.02) ? rng.range(0, 70_000) : rng.range(0, 300);
      const bytes = rng.chance(0.1) ? new Uint8Array(length).fill(rng.chance(0.5) ? 0 : 0xff) : rng.bytes(length);
      const start = rng.range(0, length);
      const end = rng.range(start, length);
      const initial = rng.chance(0.3) ? 0 : rng.int(TWO_32);
      const sum = sumWords(bytes, start, end, initial);
      // Exact: the initial value plus every big-endian word, an odd last byte as the high half.
      const view = new DataView(bytes.buffer, bytes.byteOffset + start, end - start);
      let exact = initial;
      for (let at = 0; at < end - start; at += 2) exact += at + 1 < end - start ? view.getUint16(at) : view.getUint8(at) * 256;
      expect(sum, `exact sum, seed ${SEED}`).toBe(exact);
      expect(fold(sum), `folded sum, seed ${SEED}`).toBe(referenceFold(initial + onesComplementSum(bytes.subarray(start, end))));
      expect(finish(sum), `finish, seed ${SEED}`).toBe(~referenceFold(initial + onesComplementSum(bytes.subarray(start, end))) & 0xffff);
    }
  });

  it('pseudoHeaderSum of IPv4 and IPv6 headers at random offsets equals the sum of the pseudo-header bytes', () => {
    const rng = rngFor(3);
    for (let i = 0; i < 5_000; i++) {
      const version = rng.chance(0.5) ? 4 : 6;
      const at = rng.range(0, 33);
      const bytes = rng.bytes(at + 60 + rng.range(0, 20));
      bytes[at] = (version << 4) | (version === 4 ? 5 : rng.int(16));
      const protocol = rng.pick([IPPROTO_TCP, IPPROTO_UDP, rng.int(256)]);
      const transportLength = version === 4 ? rng.range(0, 0xffff) : rng.chance(0.9) ? rng.range(0, 0xffff) : rng.range(0, 2 ** 24);
      const source = version === 4 ? bytes.slice(at + 12, at + 16) : bytes.slice(at + 8, at + 24);
      const destination = version === 4 ? bytes.slice(at + 16, at + 20) : bytes.slice(at + 24, at + 40);
      const reference = onesComplementSum(pseudoHeader(source, destination, protocol, transportLength));
      expect(referenceFold(pseudoHeaderSum(bytes, at, protocol, transportLength)), `v${version} seed ${SEED}`).toBe(referenceFold(reference));
      expect(fold(pseudoHeaderSum(bytes, at, protocol, transportLength))).toBe(referenceFold(reference));
    }
  });

  it('setIpv4HeaderChecksum: random headers with 0–40 bytes of options, at odd offsets, verify afterwards; nothing else changes', () => {
    const rng = rngFor(4);
    for (let i = 0; i < 5_000; i++) {
      const headerLength = rng.range(5, 15) * 4;
      const at = rng.range(0, 17);
      const bytes = rng.bytes(at + headerLength + rng.range(0, 30));
      bytes[at] = 0x40 | (headerLength / 4);
      if (rng.chance(0.1)) bytes.fill(0, at + 1, at + headerLength); // an all-zero header sums to 0: checksum ffff
      const before = bytes.slice();
      setIpv4HeaderChecksum(bytes, at);
      const header = bytes.subarray(at, at + headerLength);
      expect(onesComplementSum(header), `header verifies, seed ${SEED}`).toBe(0xffff);
      const zeroed = header.slice();
      zeroed[10] = zeroed[11] = 0;
      expect(get16(bytes, at + 10)).toBe(referenceChecksum(zeroed));
      // Only the checksum field changed.
      before[at + 10] = bytes[at + 10]!;
      before[at + 11] = bytes[at + 11]!;
      expect(bytesEqual(before, bytes)).toBe(true);
    }
  });

  it('put16/get16 are big-endian and inverse', () => {
    const bytes = new Uint8Array(5);
    put16(bytes, 1, 0xabcd);
    expect(Array.from(bytes)).toEqual([0, 0xab, 0xcd, 0, 0]);
    expect(get16(bytes, 1)).toBe(0xabcd);
    const rng = rngFor(5);
    for (let i = 0; i < 1000; i++) {
      const value = rng.int(0x10000);
      put16(bytes, 3, value);
      expect(get16(bytes, 3)).toBe(value);
      expect(new DataView(bytes.buffer).getUint16(3)).toBe(value);
    }
  });
});

// ---------------------------------------------------------------- 2. splitTcpSegments

/** Random TCP header fields of one flow (no seq, payload, ID yet). */
function randomTcpFields(rng: Rng, version: 4 | 6, overrides: Partial<TcpFields> = {}): TcpFields {
  const optionWords = rng.chance(0.3) ? 0 : rng.chance(0.5) ? 3 : rng.range(0, 10);
  return {
    ...IP_DEFAULTS,
    version,
    source: randomAddress(rng, version),
    destination: randomAddress(rng, version),
    tos: rng.chance(0.7) ? 0 : rng.int(256),
    ttl: rng.range(1, 255),
    id: rng.int(0x10000),
    fragment: rng.chance(0.7) ? IPV4_DF : 0,
    flowLabel: rng.int(0x100000),
    sourcePort: rng.int(0x10000),
    destinationPort: rng.int(0x10000),
    seq: rng.int(TWO_32),
    ack: rng.int(TWO_32),
    flags: TCP_ACK,
    window: rng.int(0x10000),
    urgent: 0,
    options: rng.bytes(optionWords * 4),
    payload: new Uint8Array(0),
    ...overrides,
  };
}

/** The ip + tcp header length a packet built from `fields` has. */
function headerLength(fields: TcpFields): number {
  const ip = fields.version === 4 ? 20 + fields.ipOptions.length : 40 + fields.extension.length;
  return ip + 20 + fields.options.length;
}

interface SuperPacket {
  fields: TcpFields;
  gsoSize: number;
  csumStart: number;
}

const MAX_SEGMENTS_PER_SUPER_PACKET = 120;
const SPLIT_CASES = 1_500;

/** A random TSO super-packet as the kernel hands it over (before the checksum field is filled). */
function randomSuperPacket(rng: Rng): SuperPacket {
  const version = rng.chance(0.5) ? 4 : 6;
  const fields = randomTcpFields(rng, version, {
    // Any flags: the kernel segments whatever TCP gave it; CWR/ECE/FIN/PSH/URG matter.
    flags: rng.chance(0.5) ? TCP_ACK | (rng.int(256) & (TCP_FIN | TCP_PSH | TCP_CWR | TCP_ECE)) : rng.int(256),
    urgent: rng.chance(0.9) ? 0 : rng.int(0x10000),
    ipOptions: version === 4 && rng.chance(0.2) ? rng.bytes(rng.range(1, 10) * 4) : new Uint8Array(0),
    extension: version === 6 && rng.chance(0.15) ? rng.bytes(rng.range(1, 3) * 8) : new Uint8Array(0),
  });
  const gsoSize = rng.chance(0.3) ? rng.pick([1, 2, 536, 1220, 1240, 1380, 1420, 1448, 1460]) : rng.range(1, 1460);
  const headers = headerLength(fields);
  const maxPayload = version === 4 ? MAX_PACKET - headers : MAX_PACKET - (headers - 40);
  let payload: number;
  const shape = rng.int(10);
  if (shape === 0) payload = 0;
  else if (shape <= 2) payload = rng.range(1, 3 * gsoSize);
  else if (shape <= 4) payload = Math.min(maxPayload, gsoSize * rng.range(1, 50) + rng.pick([-1, 0, 0, 1]));
  else payload = rng.range(0, maxPayload);
  // Keep the segment count (and the test's time) bounded; small gso sizes get proportionally shorter payloads.
  payload = Math.max(0, Math.min(payload, gsoSize * MAX_SEGMENTS_PER_SUPER_PACKET, maxPayload));
  fields.payload = rng.bytes(payload);
  // Sequence numbers and IPv4 IDs near their wrap, often.
  if (rng.chance(0.4)) fields.seq = (TWO_32 - rng.range(1, payload + 2 * gsoSize)) % TWO_32;
  if (rng.chance(0.4)) fields.id = 0x10000 - rng.range(1, 40);
  return { fields, gsoSize, csumStart: headers - 20 - fields.options.length };
}

/** The segments the kernel's software GSO makes of `superPacket`, built independently from the fields. */
function expectedSegments({ fields, gsoSize }: SuperPacket): Uint8Array[] {
  const payload = fields.payload;
  const count = payload.length === 0 ? 1 : Math.ceil(payload.length / gsoSize);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const offset = i * gsoSize;
    const last = i === count - 1;
    let flags = fields.flags;
    if (!last) flags &= ~(TCP_FIN | TCP_PSH);
    if (i > 0) flags &= ~TCP_CWR;
    out.push(
      buildTcpPacket({
        ...fields,
        seq: (fields.seq + offset) % TWO_32,
        id: (fields.id + i) % 0x10000,
        flags,
        payload: payload.subarray(offset, Math.min(offset + gsoSize, payload.length)),
      }),
    );
  }
  return out;
}

/**
 * A buffer holding the super-packet at `start` and `slots` spare slots after
 * it, like the ring: the sink hands out slot offsets round robin and keeps a
 * copy of each committed segment (as the device would have sent it).
 */
class SlotSink implements SegmentSink {
  readonly segments: Uint8Array[] = [];
  reserved = 0;
  private pendingOffset = -1;

  constructor(
    readonly bytes: Uint8Array,
    private readonly slotOffsets: number[],
  ) {}

  reserve(): number {
    if (this.pendingOffset !== -1) throw new Error('reserve() twice without commit()');
    this.pendingOffset = this.slotOffsets[this.reserved++ % this.slotOffsets.length]!;
    return this.pendingOffset;
  }

  commit(length: number): void {
    if (this.pendingOffset === -1) throw new Error('commit() without reserve()');
    this.segments.push(this.bytes.slice(this.pendingOffset, this.pendingOffset + length));
    this.pendingOffset = -1;
  }
}

interface SplitRun {
  result: number;
  sink: SlotSink;
  /** The super-packet's bytes were not changed. */
  inputIntact: boolean;
}

/** Lay `packet` out in one buffer with garbage around it and spare slots after it, then split it. */
function splitInBuffer(rng: Rng, packet: Uint8Array, csumStart: number, gsoSize: number, slotSize: number): SplitRun {
  const start = rng.range(0, 40);
  const slotCount = rng.range(1, 8);
  const slotsAt = start + packet.length + rng.range(0, 40);
  const slotOffsets = Array.from({ length: slotCount }, (_, i) => slotsAt + i * slotSize);
  const bytes = rng.bytes(slotsAt + slotCount * slotSize); // garbage everywhere: stale bytes must never leak into a segment
  bytes.set(packet, start);
  const sink = new SlotSink(bytes, slotOffsets);
  const result = splitTcpSegments(bytes, start, packet.length, csumStart, gsoSize, sink);
  return { result, sink, inputIntact: bytesEqual(bytes.subarray(start, start + packet.length), packet) };
}

/** The packet as the kernel leaves a TSO super-packet: IPv4 header and TCP checksums are not to be trusted. */
function asKernelSuperPacket(rng: Rng, superPacket: SuperPacket): Uint8Array {
  const packet = buildTcpPacket(superPacket.fields);
  put16(packet, superPacket.csumStart + 16, rng.int(0x10000));
  if (superPacket.fields.version === 4 && rng.chance(0.5)) put16(packet, 10, rng.int(0x10000));
  return packet;
}

describe('splitTcpSegments against the segments built from the expected fields', () => {
  it('thousands of random super-packets: every segment is exactly the expected packet, valid, in order', () => {
    const rng = rngFor(10);
    let segmentsChecked = 0;
    let wraps = 0;
    const versions = new Set<number>();
    for (let i = 0; i < SPLIT_CASES; i++) {
      const superPacket = randomSuperPacket(rng);
      const { fields, gsoSize, csumStart } = superPacket;
      const packet = asKernelSuperPacket(rng, superPacket);
      const slotSize = headerLength(fields) + gsoSize + rng.range(0, 8);
      const run = splitInBuffer(rng, packet, csumStart, gsoSize, slotSize);
      const expected = expectedSegments(superPacket);
      const context = `case ${i}, v${fields.version}, payload ${fields.payload.length}, gso ${gsoSize}, flags ${fields.flags.toString(16)}, seed ${SEED}`;
      expect(run.result, context).toBe(expected.length);
      expect(run.sink.reserved, context).toBe(expected.length);
      expect(run.sink.segments.length, context).toBe(expected.length);
      expect(run.inputIntact, `input changed: ${context}`).toBe(true);
      const payloads: Uint8Array[] = [];
      for (let s = 0; s < expected.length; s++) {
        const segment = run.sink.segments[s]!;
        if (!bytesEqual(segment, expected[s]!)) {
          expect.fail(`segment ${s} differs: ${context}\n got ${shortHex(segment)}\nwant ${shortHex(expected[s]!)}`);
        }
        const parsed = parseTcp(segment);
        expect(parsed.lengthValid && parsed.headerChecksumValid && parsed.transportChecksumValid, context).toBe(true);
        expect(parsed.seq).toBe((fields.seq + s * gsoSize) % TWO_32);
        if (parsed.seq < fields.seq) wraps++;
        payloads.push(parsed.payload);
        segmentsChecked++;
      }
      expect(bytesEqual(concat(...payloads), fields.payload), context).toBe(true);
      versions.add(fields.version);
    }
    expect(versions.size).toBe(2);
    expect(segmentsChecked).toBeGreaterThan(10_000);
    expect(wraps, 'some runs crossed the 2^32 sequence wrap').toBeGreaterThan(0);
    console.log(`splitTcpSegments: ${SPLIT_CASES} super-packets, ${segmentsChecked} segments`);
  });

  it('gso size 1 over a few thousand bytes, payloads that are exact multiples, and an empty payload keeping FIN/PSH/CWR', () => {
    const rng = rngFor(11);
    const cases: Array<[payload: number, gso: number, flags: number]> = [
      [3000, 1, TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR],
      [1460 * 44, 1460, TCP_ACK | TCP_PSH],
      [1448 * 45, 1448, TCP_ACK | TCP_CWR | TCP_ECE],
      [1460 * 44 + 1, 1460, TCP_ACK],
      [1, 1460, TCP_ACK | TCP_FIN],
      [0, 1460, TCP_ACK | TCP_FIN | TCP_PSH | TCP_CWR],
      [0, 1, TCP_ACK],
    ];
    for (const version of [4, 6] as const) {
      for (const [payloadLength, gsoSize, flags] of cases) {
        const fields = randomTcpFields(rng, version, { flags, payload: rng.bytes(payloadLength) });
        const superPacket: SuperPacket = { fields, gsoSize, csumStart: version === 4 ? 20 : 40 };
        const run = splitInBuffer(rng, asKernelSuperPacket(rng, superPacket), superPacket.csumStart, gsoSize, headerLength(fields) + gsoSize);
        const expected = expectedSegments(superPacket);
        expect(run.result).toBe(payloadLength === 0 ? 1 : Math.ceil(payloadLength / gsoSize));
        expect(run.sink.segments.length).toBe(expected.length);
        for (let s = 0; s < expected.length; s++) expect(bytesEqual(run.sink.segments[s]!, expected[s]!), `v${version} ${payloadLength}/${gsoSize} segment ${s}`).toBe(true);
        const flagsOf = run.sink.segments.map((segment) => parseTcp(segment).flags);
        expect(flagsOf[0]! & TCP_CWR).toBe(flags & TCP_CWR);
        expect(flagsOf.slice(1).every((f) => (f & TCP_CWR) === 0)).toBe(true);
        expect(flagsOf.slice(0, -1).every((f) => (f & (TCP_FIN | TCP_PSH)) === 0)).toBe(true);
        expect(flagsOf.at(-1)! & (TCP_FIN | TCP_PSH)).toBe(flags & (TCP_FIN | TCP_PSH));
      }
    }
  });

  it('malformed super-packets return 0 and emit nothing', () => {
    const rng = rngFor(12);
    for (let i = 0; i < 500; i++) {
      const version = rng.chance(0.5) ? 4 : 6;
      const fields = randomTcpFields(rng, version, { payload: rng.bytes(rng.range(0, 4000)) });
      let packet = buildTcpPacket(fields);
      const ipLength = version === 4 ? 20 : 40;
      let csumStart = ipLength;
      let gsoSize = rng.range(1, 1460);
      const defect = rng.int(5);
      switch (defect) {
        case 0:
          gsoSize = 0;
          break;
        case 1:
          csumStart = rng.range(packet.length - 19, packet.length + 100); // no room for a TCP header there
          break;
        case 2:
          packet[ipLength + 12] = (rng.range(0, 4) << 4) | (packet[ipLength + 12]! & 0x0f); // data offset < 5
          break;
        case 3:
          packet[0] = (rng.pick([0, 1, 2, 3, 5, 7, 8, 15]) << 4) | (packet[0]! & 0x0f);
          break;
        default: {
          // A data offset that points past the end: cut the packet to at most 56 bytes of TCP, claim more.
          packet = packet.slice(0, ipLength + 20 + rng.range(0, Math.max(0, fields.options.length - 4)));
          const available = packet.length - ipLength;
          packet[ipLength + 12] = (rng.range(Math.floor(available / 4) + 1, 15) << 4) | (packet[ipLength + 12]! & 0x0f);
        }
      }
      const run = splitInBuffer(rng, packet, csumStart, gsoSize, 2048);
      const context = `defect ${defect}, v${version}, seed ${SEED}`;
      expect(run.result, context).toBe(0);
      expect(run.sink.reserved, context).toBe(0);
      expect(run.sink.segments.length, context).toBe(0);
      expect(run.inputIntact, context).toBe(true);
    }
  });
});

describe('OffloadReader refuses super-packets whose virtio header would make one read cost thousands of sends', () => {
  /** Read `packet` through an OffloadReader as if the TUN gave it with a TCP GSO header of `gsoSize`; returns what the device got. */
  /** Room before the packet as a device that builds a 16-byte header there asks for it; the virtio header takes its last 10 bytes. */
  const LAYOUT = { headroom: 16, tailroom: 31 };

  function readThrough(packet: Uint8Array, gsoSize: number, csumStart: number): { delivered: number; reader: OffloadReader<RingSlot> } {
    const ring = new PacketRingConsumer(createPacketRingMemory(LAYOUT, 0, 4, 4), -1, plainSlot);
    let delivered = 0;
    const reader = new OffloadReader(ring, () => delivered++, () => undefined);
    const slot = ring.slots[0]!;
    const header = LAYOUT.headroom - VIRTIO_NET_HDR_SIZE;
    slot.bytes.fill(0, header, LAYOUT.headroom);
    slot.bytes[header + GSO_TYPE] = (packet[0]! >> 4) === 4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
    setField(slot.bytes, header + GSO_SIZE, gsoSize);
    setField(slot.bytes, header + CSUM_START, csumStart);
    slot.bytes.set(packet, LAYOUT.headroom);
    reader.packet(slot, packet.length);
    return { delivered, reader };
  }

  it(`gso_size below ${GSO_MIN_SIZE}, or more than ${GSO_MAX_SEGMENTS} segments: dropped and counted, nothing cut; the limits themselves pass`, () => {
    const rng = rngFor(13);
    const cases: Array<[payload: number, gso: number, segments: number]> = [
      [65_000, 1, 0],
      [3000, 2, 0],
      [100, GSO_MIN_SIZE - 1, 0],
      [GSO_MIN_SIZE * GSO_MAX_SEGMENTS + 1, GSO_MIN_SIZE, 0],
      [400 * (GSO_MAX_SEGMENTS + 1), 400, 0],
      [GSO_MIN_SIZE * GSO_MAX_SEGMENTS, GSO_MIN_SIZE, GSO_MAX_SEGMENTS],
      [1380 * 47 + 1, 1380, 48],
    ];
    for (const version of [4, 6] as const) {
      for (const [payloadLength, gsoSize, segments] of cases) {
        const packet = buildTcpPacket(randomTcpFields(rng, version, { payload: rng.bytes(payloadLength) }));
        const { delivered, reader } = readThrough(packet, gsoSize, version === 4 ? 20 : 40);
        const context = `v${version} ${payloadLength}/${gsoSize}`;
        expect(delivered, context).toBe(segments);
        expect(reader.dropped, context).toBe(segments === 0 ? 1 : 0);
        expect(reader.oversegmented, context).toBe(segments === 0 ? 1 : 0);
      }
    }
  });

  it('needs headroom for its virtio header: a ring with less is refused at once, with the reason', () => {
    const ring = new PacketRingConsumer(createPacketRingMemory({ headroom: VIRTIO_NET_HDR_SIZE - 1, tailroom: 0 }, 0, 1, 4), -1, plainSlot);
    expect(() => new OffloadReader(ring, () => undefined, () => undefined)).toThrow(/no room for the 10-byte virtio_net_hdr/);
    const fits = new PacketRingConsumer(createPacketRingMemory({ headroom: VIRTIO_NET_HDR_SIZE, tailroom: 0 }, 0, 1, 4), -1, plainSlot);
    expect(new OffloadReader(fits, () => undefined, () => undefined).dropped).toBe(0);
  });
});

// ---------------------------------------------------------------- 3. completeChecksum

interface NeedsCsumPacket {
  packet: Uint8Array;
  csumStart: number;
  csumOffset: number;
}

/**
 * A TCP or UDP packet as the kernel hands over a CHECKSUM_PARTIAL packet:
 * the checksum field holds the folded, uncomplemented pseudo-header sum.
 */
function randomNeedsCsumPacket(rng: Rng, protocol: number, version: 4 | 6, payload: Uint8Array): NeedsCsumPacket {
  const base = randomTcpFields(rng, version, { payload, ipOptions: version === 4 && rng.chance(0.2) ? rng.bytes(8) : new Uint8Array(0) });
  const packet = protocol === IPPROTO_TCP ? buildTcpPacket(base) : buildUdpPacket(base as UdpFields);
  const ip = parseIp(packet);
  const csumOffset = protocol === IPPROTO_TCP ? 16 : 6;
  const transportLength = packet.length - ip.transportOffset;
  put16(packet, ip.transportOffset + csumOffset, referenceFold(onesComplementSum(pseudoHeader(ip.source, ip.destination, protocol, transportLength))));
  return { packet, csumStart: ip.transportOffset, csumOffset };
}

/** Copy into a larger buffer at `start` with garbage around, run completeChecksum, return the result and the region. */
function completeInBuffer(rng: Rng, { packet, csumStart, csumOffset }: NeedsCsumPacket, length = packet.length) {
  const start = rng.range(0, 33);
  const bytes = rng.bytes(start + packet.length + rng.range(0, 33));
  bytes.set(packet, start);
  const before = bytes.slice();
  const ok = completeChecksum(bytes, start, length, csumStart, csumOffset);
  const changed: number[] = [];
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== before[i]) changed.push(i - start);
  return { ok, packet: bytes.slice(start, start + packet.length), changed };
}

describe('completeChecksum finishes NEEDS_CSUM packets', () => {
  it('TCP and UDP, IPv4 and IPv6, random sizes: the checksum verifies afterwards and only its field changed', () => {
    const rng = rngFor(20);
    for (let i = 0; i < 2_000; i++) {
      const protocol = rng.chance(0.5) ? IPPROTO_TCP : IPPROTO_UDP;
      const version = rng.chance(0.5) ? 4 : 6;
      const payload = rng.bytes(rng.chance(0.05) ? rng.range(0, 65_000) : rng.range(0, 1500));
      const needs = randomNeedsCsumPacket(rng, protocol, version, payload);
      const result = completeInBuffer(rng, needs);
      const context = `proto ${protocol} v${version} payload ${payload.length}, seed ${SEED}`;
      expect(result.ok, context).toBe(true);
      expect(parseIp(result.packet).transportChecksumValid, context).toBe(true);
      expect(result.changed.every((at) => at === needs.csumStart + needs.csumOffset || at === needs.csumStart + needs.csumOffset + 1), context).toBe(true);
      const value = get16(result.packet, needs.csumStart + needs.csumOffset);
      const zeroed = result.packet.slice(needs.csumStart);
      put16(zeroed, needs.csumOffset, 0);
      const ip = parseIp(result.packet);
      const expected = referenceChecksum(concat(pseudoHeader(ip.source, ip.destination, protocol, zeroed.length), zeroed));
      expect(value, context).toBe(expected === 0 ? 0xffff : expected);
    }
  });

  it('a checksum that computes to 0 is written as 0xffff (UDP: 0 would mean "no checksum")', () => {
    const rng = rngFor(21);
    for (const protocol of [IPPROTO_UDP, IPPROTO_TCP]) {
      for (const version of [4, 6] as const) {
        for (let i = 0; i < 50; i++) {
          // Choose the last payload word so that the whole sum is all ones: the checksum computes to 0.
          const payload = rng.bytes(2 * rng.range(1, 200));
          const needs = randomNeedsCsumPacket(rng, protocol, version, payload);
          const last = needs.packet.length - 2;
          put16(needs.packet, last, 0);
          const partial = onesComplementSum(needs.packet.subarray(needs.csumStart)); // includes the pseudo-header sum in the field
          put16(needs.packet, last, 0xffff - partial);
          expect(referenceFold(onesComplementSum(needs.packet.subarray(needs.csumStart)))).toBe(0xffff);
          const result = completeInBuffer(rng, needs);
          expect(result.ok).toBe(true);
          expect(get16(result.packet, needs.csumStart + needs.csumOffset), `proto ${protocol} v${version}`).toBe(0xffff);
          expect(parseIp(result.packet).transportChecksumValid).toBe(true);
        }
      }
    }
  });

  it('offsets that do not fit the packet return false and change nothing', () => {
    const rng = rngFor(22);
    for (let i = 0; i < 500; i++) {
      const protocol = rng.chance(0.5) ? IPPROTO_TCP : IPPROTO_UDP;
      const needs = randomNeedsCsumPacket(rng, protocol, rng.chance(0.5) ? 4 : 6, rng.bytes(rng.range(0, 200)));
      const length = needs.packet.length;
      const bad = rng.int(3);
      const csumStart = bad === 0 ? rng.range(length - 1, length + 100) : bad === 1 ? needs.csumStart : rng.range(0, length);
      const csumOffset = bad === 0 ? needs.csumOffset : bad === 1 ? rng.range(length - csumStart - 1, 0xffff) : length - csumStart - 1;
      const result = completeInBuffer(rng, { ...needs, csumStart, csumOffset });
      expect(result.ok, `start ${csumStart} offset ${csumOffset} length ${length}`).toBe(false);
      expect(result.changed).toEqual([]);
    }
    // The packet's own length counts, not the buffer's: the field may not lie in the bytes after it.
    const needs = randomNeedsCsumPacket(rng, IPPROTO_UDP, 4, rng.bytes(10));
    const result = completeInBuffer(rng, needs, needs.csumStart + needs.csumOffset + 1);
    expect(result.ok).toBe(false);
    expect(result.changed).toEqual([]);
  });
});

// ---------------------------------------------------------------- 4. TcpCoalescer

/** One write(2) the coalescer made: the virtio_net_hdr fields and the packet behind it. */
interface Written {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  packet: Uint8Array;
}

function recordingCoalescer(): { coalescer: TcpCoalescer; writes: Written[] } {
  const writes: Written[] = [];
  const coalescer = new TcpCoalescer((bytes, length) => {
    const copy = bytes.slice(0, length);
    writes.push({
      flags: copy[FLAGS]!,
      gsoType: copy[GSO_TYPE]!,
      hdrLen: getField(copy, HDR_LEN),
      gsoSize: getField(copy, GSO_SIZE),
      csumStart: getField(copy, CSUM_START),
      csumOffset: getField(copy, CSUM_OFFSET),
      packet: copy.subarray(VIRTIO_NET_HDR_SIZE),
    });
  });
  return { coalescer, writes };
}

/**
 * The segments a write stands for, checked on the way: a plain write has an
 * all-zero header; a joined one has the GSO header of (a), and after the
 * kernel's checksum (computed here with the reference) is cut back with
 * splitTcpSegments.
 */
function expandWrite(rng: Rng, written: Written, context: string): Uint8Array[] {
  if (written.gsoType === VIRTIO_NET_HDR_GSO_NONE) {
    expect([written.flags, written.hdrLen, written.gsoSize, written.csumStart, written.csumOffset], `plain write header, ${context}`).toEqual([0, 0, 0, 0, 0]);
    return [written.packet];
  }
  const packet = written.packet;
  const tcp = parseTcp(packet);
  const ipHeaderLength = tcp.version === 4 ? 20 : 40;
  expect(written.flags, context).toBe(VIRTIO_NET_HDR_F_NEEDS_CSUM);
  expect(written.gsoType, context).toBe(tcp.version === 4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6);
  expect(written.hdrLen, context).toBe(ipHeaderLength + tcp.headerLength);
  expect(written.csumStart, context).toBe(ipHeaderLength);
  expect(written.csumOffset, context).toBe(16);
  expect(tcp.transportOffset, context).toBe(ipHeaderLength);
  expect(tcp.lengthValid, `IP length field, ${context}`).toBe(true);
  expect(tcp.headerChecksumValid, `IPv4 header checksum, ${context}`).toBe(true);
  expect(packet.length, context).toBeLessThanOrEqual(MAX_PACKET);
  // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum over the new length, not complemented.
  const pseudo = referenceFold(onesComplementSum(pseudoHeader(tcp.source, tcp.destination, IPPROTO_TCP, packet.length - ipHeaderLength)));
  expect(tcp.checksum, `partial checksum, ${context}`).toBe(pseudo);
  expect(tcp.payload.length, `more than one segment's worth, ${context}`).toBeGreaterThan(written.gsoSize);
  // What the kernel does with it: finish the checksum from csum_start on, then segment it.
  const completed = packet.slice();
  put16(completed, written.csumStart + written.csumOffset, ~onesComplementSum(completed.subarray(written.csumStart)) & 0xffff);
  expect(parseTcp(completed).transportChecksumValid, `completed checksum, ${context}`).toBe(true);
  const run = splitInBuffer(rng, completed, written.csumStart, written.gsoSize, written.hdrLen + written.gsoSize);
  expect(run.result, context).toBeGreaterThan(1);
  return run.sink.segments;
}

/** A TCP packet's flow; anything else is keyed by its bytes (equal packets share a group, harmlessly). */
function flowOf(packet: Uint8Array): string {
  return tcpFlowKey(packet) ?? `other ${Buffer.from(packet).toString('hex')}`;
}

/** Group packets by TCP flow (non-TCP packets each their own group), keeping order. */
function byFlow(packets: Uint8Array[]): Map<string, Uint8Array[]> {
  const flows = new Map<string, Uint8Array[]>();
  packets.forEach((packet) => {
    const key = flowOf(packet);
    let list = flows.get(key);
    if (list === undefined) flows.set(key, (list = []));
    list.push(packet);
  });
  return flows;
}

interface Flow {
  fields: TcpFields;
  mss: number;
  segments: Uint8Array[];
  headerLength: number;
}

/** A bulk flow: `count` segments of `mss` (the last maybe shorter, maybe PSH), contiguous seq and incrementing IPv4 IDs. */
function bulkFlow(rng: Rng, options: { version?: 4 | 6; mss?: number; count?: number; shortLast?: boolean; pshLast?: boolean; options?: Uint8Array } = {}): Flow {
  const version = options.version ?? (rng.chance(0.5) ? 4 : 6);
  const fields = randomTcpFields(rng, version, options.options === undefined ? {} : { options: options.options });
  if (rng.chance(0.5)) fields.seq = (TWO_32 - rng.range(1, 30_000)) % TWO_32; // cross the wrap now and then
  const mss = options.mss ?? (rng.chance(0.5) ? rng.pick([1, 100, 1220, 1380, 1448, 1460]) : rng.range(1, 1460));
  const count = options.count ?? rng.range(1, 60);
  const shortLast = options.shortLast ?? rng.chance(0.4);
  const pshLast = options.pshLast ?? rng.chance(0.5);
  const segments: Uint8Array[] = [];
  let seq = fields.seq;
  for (let i = 0; i < count; i++) {
    const last = i === count - 1;
    const length = last && shortLast && mss > 1 ? rng.range(1, mss - 1) : mss;
    segments.push(buildTcpPacket({ ...fields, seq, id: (fields.id + i) % 0x10000, flags: last && pshLast ? TCP_ACK | TCP_PSH : TCP_ACK, payload: rng.bytes(length) }));
    seq = (seq + length) % TWO_32;
  }
  return { fields, mss, segments, headerLength: headerLength(fields) };
}

/** Merge the flows' segments in a random interleaving that keeps each flow's order. */
function interleave(rng: Rng, flows: Flow[]): Uint8Array[] {
  const next = flows.map(() => 0);
  const out: Uint8Array[] = [];
  for (;;) {
    const open = flows.map((flow, i) => (next[i]! < flow.segments.length ? i : -1)).filter((i) => i >= 0);
    if (open.length === 0) return out;
    const i = rng.pick(open);
    out.push(flows[i]!.segments[next[i]!++]!);
  }
}

/**
 * The GRO rules as a plain model for well-formed bulk flows: per flow, a run
 * grows while it is open, the segment follows it, is no larger than its
 * first, and keeps the packet within 64 KB; a PSH or a shorter segment closes
 * it, and so does a flush. Returns, per flow key, the sizes of its runs in order.
 */
function modelRuns(packets: Array<Uint8Array | 'flush'>): Map<string, number[]> {
  interface Open {
    length: number;
    gso: number;
    open: boolean;
    count: number;
  }
  const open = new Map<string, Open>();
  const result = new Map<string, number[]>();
  const close = (key: string) => {
    const run = open.get(key);
    if (run === undefined) return;
    result.get(key)!.push(run.count);
    open.delete(key);
  };
  for (const packet of packets) {
    if (packet === 'flush') {
      for (const key of [...open.keys()]) close(key);
      continue;
    }
    const key = tcpFlowKey(packet)!;
    if (!result.has(key)) result.set(key, []);
    const tcp = parseTcp(packet);
    const run = open.get(key);
    const payload = tcp.payload.length;
    if (run !== undefined && run.open && payload <= run.gso && run.length + payload <= MAX_PACKET) {
      run.length += payload;
      run.count++;
      if ((tcp.flags & TCP_PSH) !== 0 || payload < run.gso) run.open = false;
      continue;
    }
    close(key);
    open.set(key, { length: packet.length, gso: payload, open: (tcp.flags & TCP_PSH) === 0, count: 1 });
  }
  for (const key of [...open.keys()]) close(key);
  return result;
}

/** Feed `input` ('flush' = the end of an event-loop turn), then flush; returns what was written. */
function coalesce(input: Array<Uint8Array | 'flush'>): Written[] {
  const { coalescer, writes } = recordingCoalescer();
  for (const item of input) {
    if (item === 'flush') coalescer.flush();
    else coalescer.add(item);
    expect(coalescer.pending).toBeLessThanOrEqual(MAX_PENDING);
  }
  coalescer.flush();
  expect(coalescer.pending).toBe(0);
  return writes;
}

/**
 * The round trip: every write expanded back into segments must give, per
 * flow, exactly the input packets in their order. Returns, per flow, how many
 * segments each of its writes held.
 */
function expectRoundTrip(rng: Rng, input: Uint8Array[], writes: Written[], context: string): Map<string, number[]> {
  const sizes = new Map<string, number[]>();
  const expanded: Uint8Array[] = [];
  writes.forEach((written, w) => {
    const segments = expandWrite(rng, written, `write ${w}, ${context}`);
    const key = flowOf(segments[0]!);
    if (segments.length > 1) {
      for (const segment of segments) expect(tcpFlowKey(segment), context).toBe(key);
    }
    if (!sizes.has(key)) sizes.set(key, []);
    sizes.get(key)!.push(segments.length);
    expanded.push(...segments);
  });
  expect(expanded.length, `segments in = segments out, ${context}`).toBe(input.length);
  const want = byFlow(input);
  const got = byFlow(expanded);
  expect([...got.keys()].sort(), context).toEqual([...want.keys()].sort());
  for (const [key, packets] of want) {
    const mine = got.get(key)!;
    expect(mine.length, `flow ${key}, ${context}`).toBe(packets.length);
    for (let i = 0; i < packets.length; i++) {
      if (!bytesEqual(mine[i]!, packets[i]!)) expect.fail(`flow ${key} packet ${i} differs, ${context}\n got ${shortHex(mine[i]!)}\nwant ${shortHex(packets[i]!)}`);
    }
  }
  return sizes;
}

describe('TcpCoalescer', () => {
  it('random interleaved bulk flows: runs as the GRO model predicts, GSO headers right, and a lossless round trip', () => {
    const rng = rngFor(30);
    let joined = 0;
    for (let i = 0; i < 300; i++) {
      // At most 3 flows of at most 60 segments: each flow's open run is always within the coalescer's look-back.
      const flows = Array.from({ length: rng.range(1, 3) }, () => bulkFlow(rng));
      const packets = interleave(rng, flows);
      const input: Array<Uint8Array | 'flush'> = [];
      for (const packet of packets) {
        if (rng.chance(0.02)) input.push('flush');
        input.push(packet);
      }
      const context = `case ${i}, flows ${flows.map((f) => `v${f.fields.version}/mss ${f.mss}/${f.segments.length}`).join(' ')}, seed ${SEED}`;
      const writes = coalesce(input);
      const sizes = expectRoundTrip(rng, packets, writes, context);
      const model = modelRuns(input);
      for (const [key, runs] of model) expect(sizes.get(key), `runs of ${key}, ${context}`).toEqual(runs);
      const mssOf = new Map(flows.map((flow) => [tcpFlowKey(flow.segments[0]!)!, flow.mss]));
      for (const written of writes.filter((w) => w.gsoType !== VIRTIO_NET_HDR_GSO_NONE)) {
        expect(written.gsoSize, `gso_size is the flow's MSS, ${context}`).toBe(mssOf.get(tcpFlowKey(written.packet)!));
        joined++;
      }
    }
    expect(joined, 'some runs were joined').toBeGreaterThan(100);
  });

  it('one flow of full-size segments fills 64 KB packets: 1460-byte MSS, no options, gives 44 per write over IPv4 and IPv6', () => {
    const rng = rngFor(31);
    for (const version of [4, 6] as const) {
      const flow = bulkFlow(rng, { version, mss: 1460, count: 100, shortLast: false, pshLast: false, options: new Uint8Array(0) });
      const writes = coalesce(flow.segments);
      const sizes = expectRoundTrip(rng, flow.segments, writes, `v${version}, seed ${SEED}`);
      // IPv4: 20 + 20 + 44 * 1460 = 64280 ≤ 65535 < 64280 + 1460; IPv6 the same with 60 bytes of headers.
      expect([...sizes.values()]).toEqual([[44, 44, 12]]);
      expect(writes.map((w) => w.packet.length)).toEqual([flow.headerLength + 44 * 1460, flow.headerLength + 44 * 1460, flow.headerLength + 12 * 1460]);
      expect(writes.map((w) => w.gsoSize)).toEqual([1460, 1460, 1460]);
    }
  });
});

/** Two consecutive full segments of one flow; `change` alters the second one's fields (or both, via `both`). */
interface PairCase {
  name: string;
  versions: ReadonlyArray<4 | 6>;
  /** Applied to the second segment's fields. */
  second?: (fields: TcpFields, rng: Rng) => void;
  /** Applied to both segments' fields. */
  both?: (fields: TcpFields, rng: Rng) => void;
  /** Applied to the first segment's fields. */
  first?: (fields: TcpFields, rng: Rng) => void;
  /** Applied to the second packet's bytes after building. */
  secondBytes?: (packet: Uint8Array) => Uint8Array;
}

const BOTH = [4, 6] as const;
const flip = (bytes: Uint8Array, at: number): Uint8Array => {
  const copy = bytes.slice();
  copy[at]! ^= 1;
  return copy;
};

const MUST_NOT_JOIN: PairCase[] = [
  { name: 'another source port', versions: BOTH, second: (f) => void (f.sourcePort ^= 1) },
  { name: 'another destination port', versions: BOTH, second: (f) => void (f.destinationPort ^= 0x100) },
  { name: 'another source address', versions: BOTH, second: (f) => void (f.source = flip(f.source, f.source.length - 1)) },
  { name: 'another destination address', versions: BOTH, second: (f) => void (f.destination = flip(f.destination, 0)) },
  { name: 'a gap in the sequence', versions: BOTH, second: (f) => void (f.seq = (f.seq + 1) % TWO_32) },
  { name: 'an overlapping sequence (retransmission)', versions: BOTH, second: (f) => void (f.seq = (f.seq + TWO_32 - 1) % TWO_32) },
  { name: 'another ACK number', versions: BOTH, second: (f) => void (f.ack = (f.ack + 1) % TWO_32) },
  { name: 'another window', versions: BOTH, second: (f) => void (f.window ^= 1) },
  { name: 'another TTL / hop limit', versions: BOTH, second: (f) => void (f.ttl ^= 1) },
  { name: 'another TOS / traffic class', versions: BOTH, second: (f) => void (f.tos ^= 0x04) },
  { name: 'another DF bit', versions: [4], second: (f) => void (f.fragment ^= IPV4_DF) },
  { name: 'another flow label', versions: [6], second: (f) => void (f.flowLabel ^= 1) },
  { name: 'other TCP option bytes', versions: BOTH, both: (f, rng) => void (f.options = rng.bytes(12)), second: (f) => void (f.options = flip(f.options, 5)) },
  { name: 'another TCP option length', versions: BOTH, second: (f) => void (f.options = f.options.length < 40 ? concat(f.options, Uint8Array.of(1, 1, 1, 1)) : f.options.subarray(4)) },
  { name: 'SYN on the second', versions: BOTH, second: (f) => void (f.flags |= TCP_SYN) },
  { name: 'FIN on the second', versions: BOTH, second: (f) => void (f.flags |= TCP_FIN) },
  { name: 'RST on the second', versions: BOTH, second: (f) => void (f.flags |= TCP_RST) },
  { name: 'URG on the second', versions: BOTH, second: (f) => void ((f.flags |= TCP_URG), (f.urgent = 10)) },
  { name: 'an urgent pointer without URG', versions: BOTH, second: (f) => void (f.urgent = 10) },
  { name: 'ECE on the second', versions: BOTH, second: (f) => void (f.flags |= TCP_ECE) },
  { name: 'CWR on the second', versions: BOTH, second: (f) => void (f.flags |= TCP_CWR) },
  { name: 'no ACK flag on the second', versions: BOTH, second: (f) => void (f.flags = 0) },
  { name: 'SYN on the first', versions: BOTH, first: (f) => void (f.flags |= TCP_SYN) },
  { name: 'FIN on the first', versions: BOTH, first: (f) => void (f.flags |= TCP_FIN) },
  { name: 'PSH on the first', versions: BOTH, first: (f) => void (f.flags |= TCP_PSH) },
  { name: 'a pure ACK second (no payload)', versions: BOTH, second: (f) => void (f.payload = new Uint8Array(0)) },
  { name: 'a pure ACK first (no payload)', versions: BOTH, first: (f) => void (f.payload = new Uint8Array(0)) },
  { name: 'a larger second (the first was short)', versions: BOTH, first: (f) => void (f.payload = f.payload.subarray(0, f.payload.length - 1)) },
  { name: 'IPv4 options on both', versions: [4], both: (f) => void (f.ipOptions = Uint8Array.of(1, 1, 1, 0)) },
  { name: 'IPv4 More Fragments on both', versions: [4], both: (f) => void (f.fragment = IPV4_MF) },
  { name: 'IPv4 fragment offsets', versions: [4], both: (f) => void (f.fragment = 0x10), second: (f) => void (f.fragment = 0x10 + 0x20) },
  { name: 'an IPv6 extension header on both', versions: [6], both: (f) => void (f.extension = new Uint8Array(8)) },
  { name: 'a second whose IP length disagrees with its size (a trailing byte)', versions: BOTH, secondBytes: (p) => concat(p, Uint8Array.of(0)) },
];

/** Two segments that would be joined but for the case's change. */
function pairFor(rng: Rng, c: PairCase, version: 4 | 6): [Uint8Array, Uint8Array] {
  const mss = rng.range(2, 1460);
  const base = randomTcpFields(rng, version, { payload: rng.bytes(mss) });
  c.both?.(base, rng);
  const first: TcpFields = { ...base };
  c.first?.(first, rng);
  const second: TcpFields = { ...base, seq: (base.seq + first.payload.length) % TWO_32, id: (base.id + 1) % 0x10000, payload: rng.bytes(mss) };
  c.second?.(second, rng);
  const secondPacket = buildTcpPacket(second);
  return [buildTcpPacket(first), c.secondBytes === undefined ? secondPacket : c.secondBytes(secondPacket)];
}

describe('TcpCoalescer: what must not be joined is written alone, in order', () => {
  it('the control: without a change, the pair is joined', () => {
    const rng = rngFor(40);
    for (const version of BOTH) {
      const writes = coalesce(pairFor(rng, { name: 'none', versions: BOTH }, version));
      expect(writes.length).toBe(1);
      expect(writes[0]!.gsoType).toBe(version === 4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6);
    }
  });

  for (const c of MUST_NOT_JOIN) {
    it(c.name, () => {
      const rng = rngFor(41);
      for (const version of c.versions) {
        for (let i = 0; i < 5; i++) {
          const pair = pairFor(rng, c, version);
          const writes = coalesce(pair);
          expect(writes.length, `v${version}: written separately`).toBe(2);
          writes.forEach((written, w) => {
            expect(written.gsoType).toBe(VIRTIO_NET_HDR_GSO_NONE);
            expect(written.flags).toBe(0);
            expect(bytesEqual(written.packet, pair[w]!), `v${version}: packet ${w} unchanged and in order`).toBe(true);
          });
        }
      }
    });
  }

  it('nothing joins after a shorter segment or after a PSH, and a run ends before 65535 bytes', () => {
    const rng = rngFor(42);
    for (const version of BOTH) {
      // full, short, full: the first two join, the third starts anew.
      const mss = rng.range(10, 1460);
      const f = randomTcpFields(rng, version);
      const seg = (i: number, seq: number, length: number, flags = TCP_ACK) => buildTcpPacket({ ...f, seq: seq % TWO_32, id: (f.id + i) % 0x10000, flags, payload: rng.bytes(length) });
      const afterShort = [seg(0, f.seq, mss), seg(1, f.seq + mss, mss - 1), seg(2, f.seq + 2 * mss - 1, mss)];
      expect([...expectRoundTrip(rng, afterShort, coalesce(afterShort), `after short v${version}`).values()]).toEqual([[2, 1]]);
      const afterPsh = [seg(0, f.seq, mss), seg(1, f.seq + mss, mss, TCP_ACK | TCP_PSH), seg(2, f.seq + 2 * mss, mss)];
      const pshWrites = coalesce(afterPsh);
      expect([...expectRoundTrip(rng, afterPsh, pshWrites, `after PSH v${version}`).values()]).toEqual([[2, 1]]);
      expect(parseTcp(pshWrites[0]!.packet).flags).toBe(TCP_ACK | TCP_PSH); // the joined run carries the PSH
      // k segments fill the packet up to the limit; the (k+1)th does not fit.
      const headers = headerLength(f);
      const k = Math.floor((MAX_PACKET - headers) / mss);
      const overflow = Array.from({ length: k + 1 }, (_, i) => seg(i, f.seq + i * mss, mss));
      const overflowWrites = coalesce(overflow);
      expect([...expectRoundTrip(rng, overflow, overflowWrites, `overflow v${version}`).values()]).toEqual([[k, 1]]);
      expect(overflowWrites[0]!.packet.length).toBe(headers + k * mss);
      // A last, shorter segment that fills the packet to exactly 65535 bytes still joins.
      const rest = MAX_PACKET - headers - k * mss;
      if (rest > 0) {
        const exact = [...overflow.slice(0, k), seg(k, f.seq + k * mss, rest)];
        const exactWrites = coalesce(exact);
        expect([...expectRoundTrip(rng, exact, exactWrites, `exact fit v${version}`).values()]).toEqual([[k + 1]]);
        expect(exactWrites[0]!.packet.length).toBe(MAX_PACKET);
      }
    }
  });

  it('UDP, ICMP, short and non-IP packets pass through unchanged behind a zero header, in order, among joined TCP runs', () => {
    const rng = rngFor(43);
    for (let i = 0; i < 100; i++) {
      const flow = bulkFlow(rng, { count: rng.range(2, 30) });
      const others: Uint8Array[] = [];
      const otherCount = rng.range(1, 20);
      for (let o = 0; o < otherCount; o++) {
        const version = rng.chance(0.5) ? 4 : 6;
        const kind = rng.int(4);
        if (kind === 0) others.push(buildUdpPacket({ ...randomTcpFields(rng, version), payload: rng.bytes(rng.range(0, 1400)) }));
        else if (kind === 1) others.push(rng.bytes(rng.range(1, 19))); // shorter than any IP header
        else if (kind === 2) {
          const junk = rng.bytes(rng.range(20, 1500));
          junk[0] = (rng.pick([0, 1, 5, 7, 15]) << 4) | (junk[0]! & 0x0f);
          others.push(junk);
        } else {
          const icmp = buildUdpPacket({ ...randomTcpFields(rng, 4), payload: rng.bytes(rng.range(0, 100)) });
          icmp[9] = 1;
          others.push(icmp);
        }
      }
      const input = interleave(rng, [flow, { fields: flow.fields, mss: 0, segments: others, headerLength: 0 }]);
      const writes = coalesce(input);
      const context = `case ${i}, seed ${SEED}`;
      expectRoundTrip(rng, input, writes, context);
      const passed = writes.filter((w) => tcpFlowKey(w.packet) === null);
      expect(passed.length, context).toBe(others.length);
      passed.forEach((w, o) => {
        expect(w.gsoType).toBe(VIRTIO_NET_HDR_GSO_NONE);
        expect(bytesEqual(w.packet, others[o]!), `other packet ${o}, ${context}`).toBe(true);
      });
    }
  });

  it(`more than MAX_PENDING (${MAX_PENDING}) runs: written early, nothing lost or reordered`, () => {
    const rng = rngFor(44);
    // 150 flows of 3 segments each, one flow after the other: every flow joins into one run; the 65th run forces a write.
    const flows = Array.from({ length: 150 }, () => bulkFlow(rng, { count: 3, shortLast: false, pshLast: false }));
    const { coalescer, writes } = recordingCoalescer();
    const input = flows.flatMap((flow) => flow.segments);
    let writtenBeforeFlush = 0;
    input.forEach((packet) => {
      coalescer.add(packet);
      expect(coalescer.pending).toBeLessThanOrEqual(MAX_PENDING);
    });
    writtenBeforeFlush = writes.length;
    coalescer.flush();
    expect(writtenBeforeFlush, 'runs written before flush()').toBeGreaterThanOrEqual(MAX_PENDING);
    const sizes = expectRoundTrip(rng, input, writes, `sequential flows, seed ${SEED}`);
    expect([...sizes.values()].every((runs) => runs.length === 1 && runs[0] === 3)).toBe(true);
    // The same flows round robin: every flow's run is far out of reach, so nothing joins; order per flow still holds.
    const roundRobin = [0, 1, 2].flatMap((i) => flows.map((flow) => flow.segments[i]!));
    const roundRobinWrites = coalesce(roundRobin);
    expect(roundRobinWrites.length).toBe(roundRobin.length);
    expectRoundTrip(rng, roundRobin, roundRobinWrites, `round robin, seed ${SEED}`);
    // Random interleavings of many flows: whatever joins, nothing is lost or reordered.
    for (let i = 0; i < 20; i++) {
      const many = Array.from({ length: rng.range(10, 120) }, () => bulkFlow(rng, { count: rng.range(1, 8) }));
      const mixed = interleave(rng, many);
      expectRoundTrip(rng, mixed, coalesce(mixed), `many flows ${i}, seed ${SEED}`);
    }
  });
});

/**
 * Regressions of two bugs these tests found in gro.ts: a same-flow packet that cannot be joined (a pure ACK, a
 * RST) must close the flow's open run, so the order is kept (Linux GRO flushes the held flow first); and a
 * segment whose TCP checksum is wrong must not be joined (the joined packet is CHECKSUM_PARTIAL, so the kernel
 * would trust it; wireguard-go's tcpGRO checks tcpChecksumValid too).
 */
describe('TcpCoalescer: per-flow order and checksums (where Linux GRO and wireguard-go are stricter)', () => {
  /** data, then a packet of the same flow with no payload (pure ACK or RST), then the next data segment. */
  function dataControlData(rng: Rng, version: 4 | 6, controlFlags: number): Uint8Array[] {
    const mss = rng.range(10, 1460);
    const f = randomTcpFields(rng, version);
    const next = (f.seq + mss) % TWO_32;
    return [
      buildTcpPacket({ ...f, payload: rng.bytes(mss) }),
      buildTcpPacket({ ...f, seq: next, id: (f.id + 1) % 0x10000, flags: controlFlags, payload: new Uint8Array(0) }),
      buildTcpPacket({ ...f, seq: next, id: (f.id + 2) % 0x10000, payload: rng.bytes(mss) }),
    ];
  }

  for (const [name, flags] of [
    ['pure ACK', TCP_ACK],
    ['RST', TCP_RST | TCP_ACK],
  ] as const) {
    it(`a ${name} between two data segments of the flow stays between them`, () => {
      const rng = rngFor(50);
      for (const version of BOTH) {
        const input = dataControlData(rng, version, flags);
        const writes = coalesce(input);
        expectRoundTrip(rng, input, writes, `v${version} data, ${name}, data; seed ${SEED}`);
      }
    });
  }

  it('a segment whose TCP checksum is wrong is not joined (the kernel trusts a joined payload; alone, it drops it)', () => {
    const rng = rngFor(51);
    for (const version of BOTH) {
      for (const which of [0, 1]) {
        const pair = pairFor(rng, { name: 'none', versions: BOTH }, version);
        const bad = pair[which]!;
        const at = bad.length - 1;
        bad[at]! ^= 0x01; // one payload bit: the checksum no longer verifies
        expect(parseTcp(bad).transportChecksumValid).toBe(false);
        const writes = coalesce(pair);
        expect(writes.length, `v${version}, bad checksum on segment ${which}`).toBe(2);
        writes.forEach((written, w) => expect(bytesEqual(written.packet, pair[w]!)).toBe(true));
      }
    }
  });
});

// ---------------------------------------------------------------- 5. through the kernel

/** Seconds per iperf3 run. */
const IPERF_SECONDS = 3;
/**
 * Segments a sender may retransmit over one run with offloads because they were lost: a handful, not a storm (a
 * GSO/GRO path that corrupts or loses segments gives hundreds to thousands). Retransmissions the receiver reports as
 * duplicates (D-SACK) are not counted: on a loaded machine a stalled daemon makes TCP send tail-loss probes and early
 * retransmissions of segments that were only late, and those say nothing about the path.
 */
const MAX_RETRANSMITS = 20;
/**
 * When tswg falls behind (one packet per syscall without offloads, or a loaded machine) the kernel drops packets at
 * the TUN queue (the sender's tswg interface counts them as TX dropped) and TCP retransmits them as for any lossy
 * link. Those drops are counted, so they are allowed for: each one a whole packet, with offloads a super-packet of
 * up to 64 KiB of segments (MSS 1360 at the 1420-byte MTU over IPv6).
 */
const SEGMENTS_PER_TUN_PACKET = { offload: Math.ceil(65_535 / 1360), plain: 1 };

/** An absolute kernel MIB counter (nstat) in `node`'s namespace; -s keeps nstat's history file untouched. */
function counter(node: WgNode, name: string): number {
  const output = execIn(node.namespace, 'nstat', ['-asz', name]);
  const line = output.split('\n').find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`nstat has no ${name} in ${node.namespace}:\n${output}`);
  return Number(line.split(/\s+/)[1]);
}

/** Packets the kernel dropped on their way to tswg (the interface's TX dropped). */
function tunTxDropped(node: WgNode): number {
  const [link] = JSON.parse(execIn(node.namespace, 'ip', ['-j', '-s', 'link', 'show', 'dev', node.interfaceName])) as Array<{ stats64: { tx: { dropped: number } } }>;
  return link!.stats64.tx.dropped;
}

/** `ip -d link show` of the node's tswg interface says vnet_hdr on/off. */
function vnetHeader(node: WgNode): string {
  const output = execIn(node.namespace, 'ip', ['-d', 'link', 'show', 'dev', node.interfaceName]);
  const match = /vnet_hdr (on|off)/.exec(output);
  if (match === null) throw new Error(`no vnet_hdr in ip -d link show ${node.interfaceName}:\n${output}`);
  return match[1]!;
}

interface TcpResult {
  bitsPerSecond: number;
  retransmits: number;
  segmentsOut: number;
  tunDropped: number;
  udpRcvbufErrors: number;
  /** Retransmitted segments the receiver said it already had (D-SACK): late, not lost. */
  spurious: number;
  /** TCP segments the receiver dropped for a bad checksum. */
  receiverChecksumErrors: number;
}

/** Retransmissions of segments lost (or dropped as corrupt) where nothing counted a drop: inside tswg or on its wire. */
function unexplainedLosses(r: TcpResult, offload: boolean): number {
  const countedDrops = r.tunDropped * (offload ? SEGMENTS_PER_TUN_PACKET.offload : SEGMENTS_PER_TUN_PACKET.plain) + r.udpRcvbufErrors;
  return Math.max(0, r.retransmits - r.spurious - countedDrops);
}

/** iperf3 TCP for IPERF_SECONDS from `sender` to `receiver` (reverse mode when the sender is the server), with the sender's counters. */
async function tcpRun(pair: Pair, sender: WgNode, receiver: WgNode, family: 4 | 6): Promise<TcpResult> {
  const retransmitsBefore = counter(sender, 'TcpRetransSegs');
  const segmentsBefore = counter(sender, 'TcpOutSegs');
  const droppedBefore = tunTxDropped(sender);
  const rcvbufBefore = counter(receiver, 'UdpRcvbufErrors');
  const spuriousBefore = counter(sender, 'TcpExtTCPDSACKRecvSegs');
  const checksumErrorsBefore = counter(receiver, 'TcpInCsumErrors');
  // The client is always node a; when b sends, a asks for reverse mode.
  const reverse = sender === pair.b;
  const server = pair.b;
  const address = family === 4 ? server.inner4 : server.inner6;
  const run: IperfRun = await runIperf(server, pair.a, address, ['-t', String(IPERF_SECONDS), ...(reverse ? ['-R'] : [])]);
  const result = {
    bitsPerSecond: run.report.end.sum_received?.bits_per_second ?? 0,
    retransmits: counter(sender, 'TcpRetransSegs') - retransmitsBefore,
    segmentsOut: counter(sender, 'TcpOutSegs') - segmentsBefore,
    tunDropped: tunTxDropped(sender) - droppedBefore,
    udpRcvbufErrors: counter(receiver, 'UdpRcvbufErrors') - rcvbufBefore,
    spurious: counter(sender, 'TcpExtTCPDSACKRecvSegs') - spuriousBefore,
    receiverChecksumErrors: counter(receiver, 'TcpInCsumErrors') - checksumErrorsBefore,
  };
  expect(run.report.error, `iperf3 error ${sender.interfaceName} → ${receiver.interfaceName}`).toBeUndefined();
  return result;
}

function describeRun(r: TcpResult): string {
  return `${(r.bitsPerSecond / 1e6).toFixed(0)} Mbit/s, ${r.retransmits} of ${r.segmentsOut} segments retransmitted (${r.spurious} of them reported as duplicates), ${r.receiverChecksumErrors} bad checksums at the receiver, ${r.tunDropped} dropped at the TUN queue, ${r.udpRcvbufErrors} outer UDP receive-buffer drops`;
}

describe('through the kernel: two tswg daemons, offloads on and off', () => {
  beforeAll(() => {
    requireRoot('test/tun/offload.test.ts (TUN offloads through the kernel)');
    requireCommands('wg', 'ip', 'iperf3', 'nstat', 'ss', 'ping');
  });
  afterAll(() => cleanup());

  const variants = [
    { offload: true, reader: 'adaptive', name: 'offloads on, the packet reader following the load (the defaults)' },
    { offload: false, reader: 'I/O thread', name: 'TSWG_TUN_OFFLOAD=0, TSWG_MAIN_POLL=0 (the I/O thread reads)' },
    { offload: true, reader: 'I/O thread', name: 'offloads on, TSWG_MAIN_POLL=0 (the I/O thread reads)' },
    { offload: true, reader: 'main thread', name: 'offloads on, TSWG_MAIN_POLL=1 (the main thread polls the TUN fd and UDP sockets)' },
  ] as const;
  for (const { offload, reader, name } of variants) {
    const mainPoll = reader !== 'I/O thread';
    describe(name, () => {
      let pair: Pair | undefined;
      const setUp = (): Pair => {
        if (pair === undefined) throw new Error('the pair was not set up (see the beforeAll failure)');
        return pair;
      };
      beforeAll(async () => {
        pair = await createPair({ left: 'tswg', right: 'tswg', env: { TSWG_TUN_OFFLOAD: offload ? '1' : '0', TSWG_MAIN_POLL: { adaptive: '', 'main thread': '1', 'I/O thread': '0' }[reader] } });
        ping(pair.a, pair.b.inner4, 2);
      });

      it(`the main thread's event loop ${mainPoll ? 'watches' : 'does not watch'} the TUN fd and the UDP sockets, and pings pass both ways`, () => {
        const { a, b } = setUp();
        for (const node of [a, b]) {
          const watched = mainLoopWatches(node);
          expect(watched.tun, `${node.interfaceName}: TUN fd in the main loop's epoll set`).toBe(mainPoll);
          expect(watched.udp, `${node.interfaceName}: UDP sockets in the main loop's epoll set`).toBe(mainPoll ? 2 : 0);
        }
        ping(a, b.inner4, 5);
        ping(b, a.inner6, 5);
      });
      afterAll(async () => {
        if (pair !== undefined) await destroyPair(pair);
      });

      it(`ip -d link show says vnet_hdr ${offload ? 'on' : 'off'} on both interfaces`, () => {
        const { a, b } = setUp();
        expect(vnetHeader(a)).toBe(offload ? 'on' : 'off');
        expect(vnetHeader(b)).toBe(offload ? 'on' : 'off');
      });

      if (reader === 'adaptive') {
        it('under an iperf3 TCP run the busy side hands its fds to the I/O thread; once idle the main thread polls them again', async () => {
          const p = setUp();
          // Each sample: are the sender's TUN fd and the receiver's UDP sockets in their main loops?
          const samples: string[] = [];
          const sampler = setInterval(() => samples.push(`${Number(mainLoopWatches(p.a).tun)}${mainLoopWatches(p.b).udp}`), 100);
          try {
            await tcpRun(p, p.a, p.b, 4);
          } finally {
            clearInterval(sampler);
          }
          expect(samples.length, 'samples taken during the run').toBeGreaterThan(5);
          const moved = samples.filter((sample) => sample !== '12');
          expect(moved.length, `samples with a busy side's fds on its I/O thread (sender TUN watched, receiver UDP sockets watched: ${samples.join(' ')})`).toBeGreaterThan(0);
          for (const node of [p.a, p.b]) {
            const polledByMain = () => {
              const watched = mainLoopWatches(node);
              return watched.tun && watched.udp === 2;
            };
            for (let waited = 0; !polledByMain(); waited += 100) {
              if (waited > 5000) throw new Error(`${node.interfaceName}: the main loop does not poll the fds again 5 s after the run`);
              await new Promise((resolve) => setTimeout(resolve, 100));
            }
          }
          ping(p.a, p.b.inner4, 3);
        });
      }

      it(`iperf3 TCP a → b over IPv4 and b → a over IPv6, ${IPERF_SECONDS} s each: data moves, no retransmission storm`, async () => {
        const p = setUp();
        const forward = await tcpRun(p, p.a, p.b, 4);
        const backward = await tcpRun(p, p.b, p.a, 6);
        console.log(`offload ${offload ? 'on' : 'off'}: a → b IPv4 ${describeRun(forward)}; b → a IPv6 ${describeRun(backward)}`);
        for (const [name, result] of [['a → b', forward], ['b → a', backward]] as const) {
          expect(result.bitsPerSecond, `${name} throughput`).toBeGreaterThan(0);
          expect(result.receiverChecksumErrors, `${name} TcpInCsumErrors on the receiver (${describeRun(result)})`).toBe(0);
          expect(unexplainedLosses(result, offload), `${name} TcpRetransSegs less D-SACKed segments and counted drops (${describeRun(result)})`).toBeLessThanOrEqual(MAX_RETRANSMITS);
        }
      });

      if (offload) {
        it('iperf3 UDP (the kernel leaves the checksums to tswg): datagrams arrive, none with a bad checksum', async () => {
          const p = setUp();
          for (const family of [4, 6] as const) {
            const csumErrorsBefore = counter(p.b, family === 4 ? 'UdpInCsumErrors' : 'Udp6InCsumErrors');
            const run = await runIperf(p.b, p.a, family === 4 ? p.b.inner4 : p.b.inner6, ['-u', '-b', '200M', '-l', '1200', '-t', '2']);
            const csumErrors = counter(p.b, family === 4 ? 'UdpInCsumErrors' : 'Udp6InCsumErrors') - csumErrorsBefore;
            expect(run.report.error, `iperf3 UDP v${family}`).toBeUndefined();
            const sum = run.report.end.sum!;
            const received = sum.packets! - (sum.lost_packets ?? 0);
            console.log(`UDP v${family}: ${sum.packets} sent, ${sum.lost_packets} lost, ${csumErrors} checksum errors at the receiver`);
            expect(received, `UDP v${family} datagrams received`).toBeGreaterThan(0);
            expect(csumErrors, `UDP v${family} checksum errors at the receiver`).toBe(0);
          }
        });
      }

      if (mainPoll) {
        // Last in this pair: it ends b.
        it('deleting the interface under the main thread\'s poll handle ends the daemon cleanly and at once', async () => {
          const { b } = setUp();
          ip(b.namespace, 'link', 'del', 'dev', b.interfaceName);
          const status = await b.process.waitForExit(5_000);
          expect(status, b.process.output()).toEqual({ code: 0, signal: null });
        });
      }
    });
  }
});
