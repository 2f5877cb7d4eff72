/**
 * UDP GSO and GRO (src/platform/udp-gso.ts, udp-gro.ts,
 * udp-control-message.ts, udp-offload.ts; the device's use of them in
 * src/device/udp-batch.ts): which datagrams may leave as one send, the
 * control-message layouts checked against the real kernel on loopback (a
 * GSO send received joined with UDP_GRO on, and as separate datagrams
 * without), the splitter fuzzed against an independent reference, and a
 * GSO send the kernel refuses (segments over the path MTU), in a network
 * namespace of its own.
 */
import { closeSync, openSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { UdpBind } from '../../src/device/bind.js';
import { UdpBatchSender } from '../../src/device/udp-batch.js';
import { endpointFromSockaddr, sockaddrOf } from '../../src/device/sockaddr.js';
import { localSourceOf } from '../../src/device/sticky-source.js';
import type { Logger } from '../../src/device/logger.js';
import { TransportSlot } from '../../src/noise/transport-slot.js';
import { CLONE_NEWNET, MSG_DONTWAIT, loadLibc, loadNetlinkLibc } from '../../src/platform/libc.js';
import { MessageVector } from '../../src/platform/message-vector.js';
import { addressOf } from '../../src/platform/native-memory.js';
import {
  CONTROL_ROOM,
  NOT_COALESCED,
  SOL_UDP,
  UDP_GRO,
  emptyReceivedControl,
  parseReceivedControl,
  writePacketInfo,
  writeSegmentSize,
} from '../../src/platform/udp-control-message.js';
import { MALFORMED, SegmentSplitter, UdpReceiveCounters, segmentCount } from '../../src/platform/udp-gro.js';
import { UDP_GSO_MAX_SEGMENTS, gsoMaxBytes, gsoRunLength } from '../../src/platform/udp-gso.js';
import { enableUdpOffloads, enablePacketInfo, udpOffloadWanted } from '../../src/platform/udp-offload.js';
import { openRawUdpSocket } from '../../src/platform/udp-socket.js';
import { cleanup, createNamespace, ip, requireRoot, uniqueName } from '../../scripts/lib/netns.js';
import { Rng } from '../helpers/fuzz.js';

afterAll(() => cleanup());

describe('gsoRunLength: which datagrams leave as one send', () => {
  const route = (routes: number[]) => (a: number, b: number) => routes[a] === routes[b];
  const run = (lengths: number[], routes = lengths.map(() => 0), maxBytes = 65_507, start = 0) =>
    gsoRunLength(Int32Array.from(lengths), start, lengths.length, route(routes), maxBytes);

  it('takes same-size datagrams to one place, and a shorter last one', () => {
    expect(run([1000, 1000, 1000])).toBe(3);
    expect(run([1000, 1000, 400])).toBe(3);
    expect(run([1000, 400, 1000])).toBe(2); // only the last may be shorter
    expect(run([1000, 1200])).toBe(1); // none may be longer
    expect(run([1000, 1000, 1000], [0, 0, 1])).toBe(2); // another endpoint or source
    expect(run([500])).toBe(1);
    expect(run([1000, 1000, 1000, 1000], undefined, undefined, 2)).toBe(2);
  });

  it('stops at the kernel limits: UDP_GSO_MAX_SEGMENTS datagrams, one IP packet of payload', () => {
    expect(run(new Array<number>(100).fill(100))).toBe(UDP_GSO_MAX_SEGMENTS);
    expect(run(new Array<number>(64).fill(1500))).toBe(Math.floor(65_507 / 1500));
    expect(gsoMaxBytes(4)).toBe(65_507);
    expect(gsoMaxBytes(6)).toBe(65_527);
  });
});

describe('segmentCount', () => {
  it('counts segments, and refuses sizes that cannot describe the datagram', () => {
    expect(segmentCount(1000, NOT_COALESCED)).toBe(1);
    expect(segmentCount(0, NOT_COALESCED)).toBe(1);
    expect(segmentCount(3000, 1000)).toBe(3);
    expect(segmentCount(3001, 1000)).toBe(4);
    expect(segmentCount(1000, 1000)).toBe(1);
    expect(segmentCount(1000, 0)).toBe(MALFORMED);
    expect(segmentCount(1000, -5)).toBe(MALFORMED);
    expect(segmentCount(1000, 1001)).toBe(MALFORMED);
  });
});

describe('control messages', () => {
  it('packet info written for sending reads back the same (IPv4 and IPv6)', () => {
    const view = new DataView(new ArrayBuffer(CONTROL_ROOM));
    const out = emptyReceivedControl();
    const v4 = Uint8Array.of(198, 18, 0, 7);
    let length = writeSegmentSize(view, 0, 1200);
    length += writePacketInfo(view, length, { family: 4, address: v4, interfaceIndex: 3 });
    expect(length).toBeLessThanOrEqual(CONTROL_ROOM);
    parseReceivedControl(view, 0, length, out);
    expect([out.localFamily, [...out.localAddress.subarray(0, 4)], out.interfaceIndex]).toEqual([4, [...v4], 3]);
    expect(out.segmentSize).toBe(NOT_COALESCED); // UDP_SEGMENT is a send option; only UDP_GRO reports a size
    const v6 = Uint8Array.from({ length: 16 }, (_, i) => 0x20 + i);
    length = writePacketInfo(view, 0, { family: 6, address: v6, interfaceIndex: 9 });
    parseReceivedControl(view, 0, length, out);
    expect([out.localFamily, [...out.localAddress], out.interfaceIndex]).toEqual([6, [...v6], 9]);
  });

  it('a cut-short or nonsense control area yields nothing, never a throw', () => {
    const rng = new Rng(0x5eed);
    const out = emptyReceivedControl();
    for (let round = 0; round < 2000; round++) {
      const bytes = new Uint8Array(rng.range(0, CONTROL_ROOM));
      for (let i = 0; i < bytes.length; i++) bytes[i] = rng.int(256);
      if (bytes.length >= 16 && rng.chance(0.5)) bytes.set([rng.int(80), 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 104, 0, 0, 0]);
      parseReceivedControl(new DataView(bytes.buffer), 0, bytes.length, out);
      expect(out.localFamily === 0 || out.localFamily === 4 || out.localFamily === 6).toBe(true);
    }
  });
});

// ---- the splitter against a reference -------------------------------------------

const SLOT_SIZE = 2048;
/** Datagrams start this far into their slots (the ring's headroom), so a copy that ignores it shows. */
const HEADROOM = 16;
const META_SIZE = 16;

interface Received {
  payload: Uint8Array;
  segmentSize: number;
  truncated: boolean;
  meta: Uint8Array;
}

/** What the splitter should publish: each datagram cut into its segments, in order; bad ones left out; cut at `room`. */
function reference(batch: Received[], room: number): { datagrams: { bytes: Uint8Array; meta: Uint8Array }[]; malformed: number; truncated: number; overflow: number } {
  const datagrams: { bytes: Uint8Array; meta: Uint8Array }[] = [];
  let malformed = 0;
  let truncated = 0;
  for (const received of batch) {
    if (received.truncated) {
      truncated++;
      continue;
    }
    const size = received.segmentSize === NOT_COALESCED ? Math.max(received.payload.length, 1) : received.segmentSize;
    if (received.segmentSize !== NOT_COALESCED && (size <= 0 || size > received.payload.length)) {
      malformed++;
      continue;
    }
    if (received.payload.length === 0) datagrams.push({ bytes: received.payload, meta: received.meta });
    for (let at = 0; at < received.payload.length; at += size) datagrams.push({ bytes: received.payload.subarray(at, at + size), meta: received.meta });
  }
  const overflow = Math.max(0, datagrams.length - room);
  return { datagrams: datagrams.slice(0, room), malformed, truncated, overflow };
}

describe('SegmentSplitter (fuzz against the reference)', () => {
  it('publishes every segment in order, in place, with its meta; drops and counts the rest', () => {
    const rng = new Rng(0x6a0);
    const slotCount = 64;
    const capacity = 16;
    const slots = new Uint8Array(slotCount * SLOT_SIZE);
    const meta = new Uint8Array(slotCount * META_SIZE);
    const splitter = new SegmentSplitter({ slots, slotSize: SLOT_SIZE, headroom: HEADROOM, slotCount, meta, metaSize: META_SIZE }, capacity);
    const counters = new UdpReceiveCounters();
    let totals = { malformed: 0, truncated: 0, overflow: 0 };
    for (let round = 0; round < 3000; round++) {
      const first = rng.int(slotCount);
      const count = rng.range(0, capacity);
      const room = rng.range(count, slotCount);
      const batch: Received[] = [];
      for (let i = 0; i < count; i++) {
        const length = rng.chance(0.05) ? 0 : rng.range(1, SLOT_SIZE - HEADROOM);
        const payload = Uint8Array.from({ length }, () => rng.int(256));
        const kind = rng.int(10);
        const segmentSize =
          kind < 3 ? NOT_COALESCED : kind === 3 ? 0 : kind === 4 ? length + rng.range(1, 100) : kind === 5 ? -rng.range(1, 1000) : rng.range(1, Math.max(1, Math.min(length, 1 + rng.int(length + 1))));
        batch.push({ payload, segmentSize, truncated: rng.chance(0.05), meta: Uint8Array.from({ length: META_SIZE }, () => rng.int(256)) });
      }
      // Garbage where nothing was received, so a copy from the wrong place shows.
      for (let i = 0; i < slots.length; i += 97) slots[i] = rng.int(256);
      batch.forEach((received, i) => {
        const slot = (first + i) % slotCount;
        slots.set(received.payload, slot * SLOT_SIZE + HEADROOM);
        meta.set(received.meta, slot * META_SIZE);
        splitter.lengths[i] = received.payload.length;
        splitter.segmentSizes[i] = received.segmentSize;
        splitter.truncated[i] = received.truncated ? 1 : 0;
      });
      const filled = splitter.split(first, count, room);
      counters.add(splitter);
      const expected = reference(batch, room);
      expect(filled, `round ${round}`).toBe(expected.datagrams.length);
      expected.datagrams.forEach((datagram, k) => {
        const slot = (first + k) % slotCount;
        expect(splitter.out[k], `round ${round} datagram ${k} length`).toBe(datagram.bytes.length);
        expect(Buffer.from(slots.subarray(slot * SLOT_SIZE + HEADROOM, slot * SLOT_SIZE + HEADROOM + datagram.bytes.length)).equals(datagram.bytes), `round ${round} datagram ${k} bytes`).toBe(true);
        expect([...meta.subarray(slot * META_SIZE, (slot + 1) * META_SIZE)], `round ${round} datagram ${k} meta`).toEqual([...datagram.meta]);
      });
      expect([splitter.malformed, splitter.truncatedDrops, splitter.overflow], `round ${round}`).toEqual([expected.malformed, expected.truncated, expected.overflow]);
      totals = { malformed: totals.malformed + expected.malformed, truncated: totals.truncated + expected.truncated, overflow: totals.overflow + expected.overflow };
    }
    expect([counters.malformed, counters.truncated, counters.overflow]).toEqual([totals.malformed, totals.truncated, totals.overflow]);
    // The fuzz reached every kind of drop.
    expect(Math.min(totals.malformed, totals.truncated, totals.overflow)).toBeGreaterThan(0);
  });
});

// ---- the real kernel ------------------------------------------------------------

function sockaddr4(address: string, port: number): Uint8Array {
  return sockaddrOf({ family: 4, address, port });
}

/** Receive what is queued on `fd` (up to 64 datagrams) with control data: [length, control] each. */
function receiveAll(fd: number): { bytes: Uint8Array; segmentSize: number; local: string }[] {
  const vector = new MessageVector(64, CONTROL_ROOM);
  const buffers = new Uint8Array(new SharedArrayBuffer(64 * 65_536));
  const base = addressOf(buffers);
  for (let i = 0; i < 64; i++) {
    vector.resetForReceive(i);
    vector.setBuffer(i, base + i * 65_536, 65_536);
  }
  const received = loadLibc().recvmmsg(fd, vector.bytes, 64, MSG_DONTWAIT, null);
  const out = [];
  const control = emptyReceivedControl();
  for (let i = 0; i < Math.max(0, received); i++) {
    parseReceivedControl(vector.dataView, vector.controlOffset(i), vector.controlLength(i), control);
    out.push({
      bytes: buffers.slice(i * 65_536, i * 65_536 + vector.transferred(i)),
      segmentSize: control.segmentSize,
      local: control.localFamily === 4 ? [...control.localAddress.subarray(0, 4)].join('.') : '',
    });
  }
  return out;
}

async function settle(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 50));
}

describe('GSO and GRO on the real kernel (loopback)', () => {
  it('probes both on this kernel unless TSWG_UDP_OFFLOAD=0', () => {
    const socket = openRawUdpSocket(4, 0);
    try {
      const previous = process.env.TSWG_UDP_OFFLOAD;
      process.env.TSWG_UDP_OFFLOAD = '0';
      expect(udpOffloadWanted()).toBe(false);
      expect(enableUdpOffloads(socket.fd)).toEqual({ segmentation: false, coalescing: false });
      process.env.TSWG_UDP_OFFLOAD = '1';
      expect(udpOffloadWanted()).toBe(true);
      expect(enableUdpOffloads(socket.fd)).toEqual({ segmentation: true, coalescing: true });
      if (previous === undefined) delete process.env.TSWG_UDP_OFFLOAD;
      else process.env.TSWG_UDP_OFFLOAD = previous;
    } finally {
      loadLibc().close(socket.fd);
    }
  });

  it('one UDP_SEGMENT send arrives joined with its segment size (UDP_GRO on), or as separate datagrams (off)', async () => {
    const sender = openRawUdpSocket(4, 0);
    const joined = openRawUdpSocket(4, 0);
    const separate = openRawUdpSocket(4, 0);
    try {
      // Straight to the kernel, whatever TSWG_UDP_OFFLOAD says: this checks the layouts, not the switch.
      expect(loadLibc().setsockopt(joined.fd, SOL_UDP, UDP_GRO, Uint8Array.of(1, 0, 0, 0), 4)).toBe(0);
      expect(enablePacketInfo(joined.fd, 4)).toBeNull();
      const payload = new Uint8Array(new SharedArrayBuffer(10 * 1000 + 345));
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + (i >> 10)) & 0xff;
      const vector = new MessageVector(1, CONTROL_ROOM);
      for (const target of [joined, separate]) {
        vector.setBuffer(0, addressOf(payload), payload.length);
        vector.setName(0, sockaddr4('127.0.0.1', target.port));
        vector.setControlLength(0, writeSegmentSize(vector.dataView, vector.controlOffset(0), 1000));
        expect(loadLibc().sendmmsg(sender.fd, vector.bytes, 1, 0)).toBe(1);
      }
      await settle();
      const atJoined = receiveAll(joined.fd);
      expect(atJoined.map((d) => [d.bytes.length, d.segmentSize, d.local])).toEqual([[payload.length, 1000, '127.0.0.1']]);
      expect(Buffer.from(atJoined[0]!.bytes).equals(payload)).toBe(true);
      const atSeparate = receiveAll(separate.fd);
      expect(atSeparate.map((d) => [d.bytes.length, d.segmentSize])).toEqual([...new Array<number[]>(10).fill([1000, NOT_COALESCED]), [345, NOT_COALESCED]]);
      expect(Buffer.concat(atSeparate.map((d) => d.bytes)).equals(payload)).toBe(true);
    } finally {
      for (const socket of [sender, joined, separate]) loadLibc().close(socket.fd);
    }
  });

  it('the device sender makes runs to one endpoint into GSO sends; they arrive as the datagrams queued', async () => {
    const bind = new UdpBind({ datagram: () => undefined, flush: () => undefined }, silentTestLogger().logger);
    await bind.open(0);
    const receiver = openRawUdpSocket(4, 0);
    try {
      expect(bind.segmentation(4)).toBe(udpOffloadWanted());
      const sent: number[] = [];
      const sender = new UdpBatchSender<number>(bind, silentTestLogger().logger, (owner) => sent.push(owner));
      const endpoint = { family: 4 as const, address: '127.0.0.1', port: receiver.port };
      const other = { family: 4 as const, address: '127.0.0.1', port: receiver.port };
      const lengths = [900, 900, 900, 300, 900, 900, 100, 900];
      const memory = new Uint8Array(new SharedArrayBuffer(lengths.length * 1024));
      const slots = lengths.map((length, i) => {
        const bytes = memory.subarray(i * 1024, (i + 1) * 1024);
        bytes.fill(i + 1, 0, length);
        return new TransportSlot(bytes, addressOf(memory) + i * 1024);
      });
      // Datagram 5 goes to an equal but distinct endpoint object: its own send.
      lengths.forEach((length, i) => sender.add(slots[i]!, length, i === 5 ? other : endpoint, i));
      sender.flush();
      expect(sent).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      await settle();
      const arrived = receiveAll(receiver.fd);
      expect(arrived.map((d) => [d.bytes.length, d.bytes[0], d.bytes[d.bytes.length - 1]])).toEqual(lengths.map((length, i) => [length, i + 1, i + 1]));
    } finally {
      loadLibc().close(receiver.fd);
      await bind.close();
    }
  });
});

describe('the device UDP receive side (I/O thread) with GRO', () => {
  it('a joined datagram reaches the handler as the datagrams sent, each with the sender and the local address', async () => {
    const arrived: { bytes: Uint8Array; sender: string; local: string }[] = [];
    const bind = new UdpBind(
      {
        datagram: (slot, length, meta) => {
          const sender = endpointFromSockaddr(meta);
          const local = localSourceOf(meta, null);
          arrived.push({ bytes: slot.bytes.slice(0, length), sender: `${sender?.address}:${sender?.port}`, local: local === null ? '' : [...local.address].join('.') });
        },
        flush: () => undefined,
      },
      silentTestLogger().logger,
    );
    await bind.open(0);
    const sender = openRawUdpSocket(4, 0);
    try {
      const offload = udpOffloadWanted();
      const payload = new Uint8Array(new SharedArrayBuffer(20 * 1200 + 77));
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 13 + (i >> 8)) & 0xff;
      const vector = new MessageVector(1, CONTROL_ROOM);
      vector.setBuffer(0, addressOf(payload), payload.length);
      vector.setName(0, sockaddr4('127.0.0.1', bind.port));
      vector.setControlLength(0, writeSegmentSize(vector.dataView, vector.controlOffset(0), 1200));
      expect(loadLibc().sendmmsg(sender.fd, vector.bytes, 1, 0)).toBe(1);
      const deadline = Date.now() + 5000;
      while (arrived.length < 21 && Date.now() < deadline) await settle();
      expect(arrived.map((d) => d.bytes.length)).toEqual([...new Array<number>(20).fill(1200), 77]);
      expect(Buffer.concat(arrived.map((d) => d.bytes)).equals(payload)).toBe(true);
      expect(new Set(arrived.map((d) => `${d.sender} ${d.local}`))).toEqual(new Set([`127.0.0.1:${sender.port} 127.0.0.1`]));
      // With GRO on the kernel handed over one datagram and the I/O thread split it; without, 21 arrived.
      const counters = bind.receiveCounters;
      expect([counters.coalesced, counters.segments]).toEqual(offload ? [1, 21] : [0, 0]);
      expect([counters.malformed, counters.truncated, counters.overflow]).toEqual([0, 0, 0]);
    } finally {
      loadLibc().close(sender.fd);
      await bind.close();
    }
  });

  it('joined datagrams behind a full ring of single ones: all arrive, in order, none dropped for want of slots', async () => {
    // The ring fills with single datagrams while the handler holds the main thread; joined ones of 64 queue behind
    // them. Each read must take only as many as the free slots hold once split (a read sized by earlier batches of
    // single datagrams dropped most of each joined one).
    const SINGLES = 600;
    const JOINED = 20;
    const SEGMENT = 1000;
    const total = SINGLES + JOINED * UDP_GSO_MAX_SEGMENTS;
    const arrived: number[] = [];
    const sender = openRawUdpSocket(4, 0);
    let target: Uint8Array = new Uint8Array(0);
    const send = (first: number, segments: number) => {
      const payload = new Uint8Array(new SharedArrayBuffer(segments * SEGMENT));
      const view = new DataView(payload.buffer);
      for (let k = 0; k < segments; k++) view.setUint32(k * SEGMENT, first + k, true);
      const vector = new MessageVector(1, CONTROL_ROOM);
      vector.setBuffer(0, addressOf(payload), payload.length);
      vector.setName(0, target);
      vector.setControlLength(0, segments > 1 ? writeSegmentSize(vector.dataView, vector.controlOffset(0), SEGMENT) : 0);
      expect(loadLibc().sendmmsg(sender.fd, vector.bytes, 1, 0)).toBe(1);
    };
    const bind = new UdpBind(
      {
        datagram: (slot, length) => {
          arrived.push(length === SEGMENT ? slot.view.getUint32(0, true) : -length);
          if (arrived.length !== 1) return;
          // Hold the main thread: the I/O thread fills the ring with single datagrams, the rest wait in the socket.
          for (let i = 1; i <= SINGLES; i++) send(i, 1);
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
          for (let j = 0; j < JOINED; j++) send(1 + SINGLES + j * UDP_GSO_MAX_SEGMENTS, UDP_GSO_MAX_SEGMENTS);
        },
        flush: () => undefined,
      },
      silentTestLogger().logger,
    );
    await bind.open(0);
    target = sockaddr4('127.0.0.1', bind.port);
    try {
      send(0, 1);
      const deadline = Date.now() + 10_000;
      while (arrived.length < total + 1 && Date.now() < deadline) await settle();
      const counters = bind.receiveCounters;
      expect([counters.malformed, counters.truncated, counters.overflow]).toEqual([0, 0, 0]);
      expect(arrived.length).toBe(total + 1);
      expect(arrived.every((sequence, i) => sequence === i)).toBe(true);
      if (udpOffloadWanted()) expect([counters.coalesced, counters.segments]).toEqual([JOINED, JOINED * UDP_GSO_MAX_SEGMENTS]);
    } finally {
      loadLibc().close(sender.fd);
      await bind.close();
    }
  });
});

function silentTestLogger(): { logger: Logger; errors: string[] } {
  const errors: string[] = [];
  return { logger: { verbose: () => undefined, error: (message) => errors.push(message) }, errors };
}

/** Run `fn` with this thread in namespace `name` (sockets it opens stay there), then come back. */
function inNamespace<T>(name: string, fn: () => T): T {
  const own = openSync('/proc/thread-self/ns/net', 'r');
  const target = openSync(`/run/netns/${name}`, 'r');
  try {
    if (loadNetlinkLibc().setns(target, CLONE_NEWNET) !== 0) throw new Error(`cannot enter namespace ${name}`);
    try {
      return fn();
    } finally {
      if (loadNetlinkLibc().setns(own, CLONE_NEWNET) !== 0) throw new Error('cannot come back to the test namespace');
    }
  } finally {
    closeSync(own);
    closeSync(target);
  }
}

describe('a GSO send the kernel refuses', () => {
  it('segments larger than the path MTU (EMSGSIZE): those datagrams go one by one, GSO stays on', async () => {
    requireRoot('the GSO refusal test');
    const namespace = createNamespace(`udp${uniqueName()}`);
    const tun = 'udpmtu0';
    ip(namespace, 'tuntap', 'add', 'dev', tun, 'mode', 'tun');
    ip(namespace, 'link', 'set', tun, 'mtu', '1280');
    ip(namespace, 'address', 'add', '10.99.0.1/24', 'dev', tun);
    ip(namespace, 'link', 'set', tun, 'up');
    const { logger, errors } = silentTestLogger();
    const bind = new UdpBind({ datagram: () => undefined, flush: () => undefined }, logger);
    await inNamespace(namespace, () => bind.open(0));
    try {
      const offload = udpOffloadWanted();
      expect(bind.segmentation(4)).toBe(offload);
      const sent: number[] = [];
      const sender = new UdpBatchSender<number>(bind, logger, (owner) => sent.push(owner));
      const memory = new Uint8Array(new SharedArrayBuffer(8 * 2048));
      const endpoint = { family: 4 as const, address: '10.99.0.2', port: 51820 };
      // 1300-byte datagrams on a 1280-byte path: one GSO send is refused; one by one they are fragmented.
      for (let i = 0; i < 8; i++) sender.add(new TransportSlot(memory.subarray(i * 2048, (i + 1) * 2048), addressOf(memory) + i * 2048), 1300, endpoint, i);
      sender.flush();
      expect(sent).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(bind.segmentation(4)).toBe(offload);
      expect(errors).toEqual([]);
    } finally {
      await bind.close();
    }
  });
});
