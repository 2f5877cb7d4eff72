/**
 * `npm run bench:alloc`: does the data path allocate per packet in steady
 * state? Runs N packets (default 1,000,000, 1420 bytes) through encrypt, and
 * separately N datagrams through decrypt, after a warm-up, and reports V8
 * heap bytes allocated per packet, GCs and GC pause per million packets.
 *
 *   npm run build && node --expose-gc dist/bench/alloc.js [--packets N] [--backend NAME]
 *
 * NAME: a crypto backend src/noise exports (node, noble, ...); default: the default one.
 *
 * What it calls is bench/lib/data-path.ts (`dataPath`): switch that adapter
 * to a new data-path API and this harness measures it unchanged.
 *
 * How bytes are counted: Node 20's v8.getHeapStatistics() has no
 * total_allocated_bytes (used when a Node has it), so allocation is
 * reconstructed from v8.GCProfiler: bytes allocated in a window =
 * heap used at its end - heap used at its start + what every GC inside the
 * window freed. A forced full GC before each window makes that exact up to
 * the profiler's own few hundred bytes. Buffer/ArrayBuffer *backing stores*
 * live outside the V8 heap and are not in the byte figure, but every one of
 * them comes with heap objects (JSArrayBuffer + view: ~180 bytes, the control row), so a
 * path that allocates none shows ~0 heap bytes per packet and no GCs.
 *
 * Decrypt needs a fresh datagram per packet (the replay window refuses a
 * counter twice), so datagrams are made in unmeasured chunks and each chunk
 * is decrypted in its own measured window. A chunk is large (~95 MB of
 * datagrams) so that each window spans several scavenges: the young
 * generation grows to 16 MB, and a small window after a forced GC would see
 * none and understate the GC count (the byte figure is exact either way).
 */
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { ALLOC_DECRYPT_CHUNK, ALLOC_PACKETS_DEFAULT, ALLOC_WARMUP_PACKETS, PACKET_SIZE } from './constants.js';
import * as noise from '../src/noise/index.js';
import type { Primitives } from '../src/noise/primitives.js';
import { parseBenchArgs } from './lib/command-line.js';
import { dataPaths, type DataPathPair } from './lib/data-path.js';
import { machineLine } from './lib/machine.js';
import { addressInTen, ipv4Packet } from './lib/packets.js';
import { formatNumber, formatTable, markdownTable, type Cell } from './lib/table.js';

interface WindowFigures {
  packets: number;
  allocatedBytes: number;
  scavenges: number;
  fullGcs: number;
  /** Microseconds of GC pause (GCProfiler's cost). */
  gcPauseUs: number;
  elapsedMs: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

function heapCounter(): number | null {
  const stats = v8.getHeapStatistics() as unknown as Record<string, number>;
  return typeof stats['total_allocated_bytes'] === 'number' ? stats['total_allocated_bytes'] : null;
}
const METHOD = heapCounter() !== null ? 'v8.getHeapStatistics().total_allocated_bytes' : 'v8.GCProfiler (used-heap deltas + bytes freed per GC)';

/** Measure `work` (which handles `packets` packets) in one window that starts on a clean heap. */
function measure(packets: number, work: () => void): WindowFigures {
  gc!();
  const profiler = new v8.GCProfiler();
  profiler.start();
  const counterBefore = heapCounter();
  const usedBefore = v8.getHeapStatistics().used_heap_size;
  const start = performance.now();
  work();
  const elapsedMs = performance.now() - start;
  const usedAfter = v8.getHeapStatistics().used_heap_size;
  const counterAfter = heapCounter();
  const { statistics } = profiler.stop();
  let freed = 0;
  let scavenges = 0;
  let fullGcs = 0;
  let gcPauseUs = 0;
  for (const event of statistics) {
    freed += event.beforeGC.heapStatistics.usedHeapSize - event.afterGC.heapStatistics.usedHeapSize;
    gcPauseUs += event.cost;
    if (event.gcType === 'Scavenge' || event.gcType === 'MinorMarkSweep') scavenges++;
    else fullGcs++;
  }
  const allocatedBytes = counterBefore !== null && counterAfter !== null ? counterAfter - counterBefore : usedAfter - usedBefore + freed;
  return { packets, allocatedBytes, scavenges, fullGcs, gcPauseUs, elapsedMs };
}

function add(total: WindowFigures, part: WindowFigures): WindowFigures {
  return {
    packets: total.packets + part.packets,
    allocatedBytes: total.allocatedBytes + part.allocatedBytes,
    scavenges: total.scavenges + part.scavenges,
    fullGcs: total.fullGcs + part.fullGcs,
    gcPauseUs: total.gcPauseUs + part.gcPauseUs,
    elapsedMs: total.elapsedMs + part.elapsedMs,
  };
}

const EMPTY: WindowFigures = { packets: 0, allocatedBytes: 0, scavenges: 0, fullGcs: 0, gcPauseUs: 0, elapsedMs: 0 };

function encryptPath(pair: DataPathPair, packet: Uint8Array, packets: number): WindowFigures {
  for (let i = 0; i < ALLOC_WARMUP_PACKETS; i++) pair.encrypt(packet);
  return measure(packets, () => {
    for (let i = 0; i < packets; i++) if (pair.encrypt(packet) === 0) throw new Error(`encrypt dropped packet ${i}`);
  });
}

/** Make `count` datagrams (unmeasured) for the decrypt windows. */
function datagrams(pair: DataPathPair, packet: Uint8Array, count: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    if (pair.encrypt(packet) === 0) throw new Error('encrypt dropped a packet while preparing datagrams');
    out.push(pair.lastDatagram());
  }
  return out;
}

function decryptPath(pair: DataPathPair, packet: Uint8Array, packets: number): WindowFigures {
  for (const datagram of datagrams(pair, packet, ALLOC_WARMUP_PACKETS)) pair.decrypt(datagram);
  let total = EMPTY;
  for (let done = 0; done < packets; ) {
    const chunk = datagrams(pair, packet, Math.min(ALLOC_DECRYPT_CHUNK, packets - done));
    total = add(
      total,
      measure(chunk.length, () => {
        for (let i = 0; i < chunk.length; i++) if (pair.decrypt(chunk[i]!) !== PACKET_SIZE) throw new Error(`decrypt dropped datagram ${done + i}`);
      }),
    );
    done += chunk.length;
  }
  return total;
}

/**
 * Calibration, so the meter itself is tested on every run: copying into a
 * reused buffer must read ~0 bytes per packet, and a new Uint8Array per
 * packet must read clearly more. Throws when the meter cannot tell them apart.
 */
function controls(packet: Uint8Array, packets: number): { reused: WindowFigures; fresh: WindowFigures } {
  const target = new Uint8Array(packet.length);
  const reused = measure(packets, () => {
    for (let i = 0; i < packets; i++) target.set(packet);
  });
  let keep: Uint8Array = target;
  const fresh = measure(packets, () => {
    for (let i = 0; i < packets; i++) keep = new Uint8Array(packet);
  });
  if (keep.length !== packet.length) throw new Error('unreachable');
  if (reused.allocatedBytes / packets >= 1 || fresh.allocatedBytes / packets < 32) {
    throw new Error(
      `allocation meter failed its calibration: reused buffer ${reused.allocatedBytes / packets} B/packet (want < 1), ` +
        `new Uint8Array ${fresh.allocatedBytes / packets} B/packet (want >= 32)`,
    );
  }
  return { reused, fresh };
}

function row(name: string, f: WindowFigures): Cell[] {
  const perMillion = 1e6 / f.packets;
  return [
    name,
    f.allocatedBytes / f.packets,
    f.scavenges * perMillion,
    f.fullGcs * perMillion,
    (f.gcPauseUs / 1000) * perMillion,
    (f.elapsedMs * 1e6) / f.packets,
    f.packets / (f.elapsedMs / 1000),
  ];
}

function main(): void {
  const { values } = parseBenchArgs({
    npmScript: 'bench:alloc',
    measures: 'V8 heap bytes allocated, GCs and GC pause per packet on the encrypt and decrypt paths (run with --expose-gc)',
    options: {
      packets: { type: 'string', value: 'N', description: 'packets per path, at least 1000', shownDefault: String(ALLOC_PACKETS_DEFAULT) },
      backend: { type: 'string', value: 'NAME', description: 'crypto backend that src/noise exports (node, noble, ...)', shownDefault: 'the default one' },
    },
  });
  const backends = Object.values(noise).filter((value): value is Primitives => typeof (value as Partial<Primitives> | null)?.aeadSeal === 'function');
  const backend = values.backend === undefined ? noise.defaultPrimitives : backends.find((b) => b.name === values.backend);
  if (backend === undefined) throw new Error(`--backend ${values.backend}: not one of ${[...new Set(backends.map((b) => b.name))].join(', ')}`);
  const packets = Number(values.packets ?? ALLOC_PACKETS_DEFAULT);
  if (!Number.isInteger(packets) || packets < 1000) throw new Error(`--packets must be an integer >= 1000, got ${values.packets}`);
  if (gc === undefined) throw new Error('bench:alloc needs a forced GC: run it as `node --expose-gc dist/bench/alloc.js` (npm run bench:alloc does)');

  console.log(`bench:alloc — ${packets.toLocaleString('en-US')} packets of ${PACKET_SIZE} B per path after ${ALLOC_WARMUP_PACKETS.toLocaleString('en-US')} warm-up`);
  console.log(`data paths: ${dataPaths.map((path, i) => `[${i + 1}] ${path.description}`).join('; ')}; crypto backend: ${backend.name}`);
  console.log(`allocation counted with ${METHOD}; ${machineLine()}`);
  const packet = ipv4Packet(PACKET_SIZE, addressInTen(1));
  const measured = dataPaths.map((path, i) => ({
    label: `[${i + 1}]`,
    encrypt: encryptPath(path.connect(backend), packet, packets),
    decrypt: decryptPath(path.connect(backend), packet, packets),
  }));

  const headers = ['path', 'heap B/packet', 'scavenges /M pkts', 'full GCs /M pkts', 'GC pause ms /M pkts', 'ns/packet', 'packets/s'];
  const control = controls(packet, packets);
  const rows = [
    ...measured.flatMap((m) => [row(`${m.label} encrypt ${PACKET_SIZE} B`, m.encrypt), row(`${m.label} decrypt ${PACKET_SIZE} B`, m.decrypt)]),
    row('control: copy into a reused buffer', control.reused),
    row('control: new Uint8Array per packet', control.fresh),
  ];
  console.log(`\n${formatTable(headers, rows)}\n`);
  for (const m of measured) {
    for (const [name, f] of [['encrypt', m.encrypt], ['decrypt', m.decrypt]] as const) {
      const perPacket = f.allocatedBytes / f.packets;
      // Below one byte per packet only the profiler's own bookkeeping is left.
      const verdict = perPacket >= 1 ? `ALLOCATES ~${formatNumber(perPacket)} heap bytes per packet in steady state` : 'allocates nothing per packet in steady state';
      console.log(`${m.label} ${name}: ${verdict}`);
    }
  }
  console.log(`\nmarkdown:\n\n${markdownTable(headers, rows)}`);
}

main();
