/**
 * bench:crypto — the packet AEAD inline on the main thread (--workers 0)
 * and on crypto workers (CryptoPool + TransportBatch, the device's path
 * with TSWG_CRYPTO_WORKERS=N): a stream of full-size packets spread over
 * several peers, sealed in batches in shared slots as the TUN ring hands
 * them over, then opened in batches as the UDP ring would. Pure CPU: no
 * root, no network, no I/O thread (on a device that thread takes a core
 * of its own).
 *
 *   npm run bench:crypto -- --workers 0,1,2,4,8 --rounds 3 --packets 200000 --peers 4 [--json]
 *
 * Prints packets/s and Gbit/s (payload bytes) for sealing, opening and both
 * (one packet sealed and opened), the median and min–max over the rounds.
 */
import { availableParallelism } from 'node:os';
import { TransportBatch } from '../src/device/crypto-batch.js';
import { CryptoPool } from '../src/device/crypto-pool.js';
import { silentLogger } from '../src/device/logger.js';
import { ManualClock } from '../src/noise/clock.js';
import { defaultPrimitives } from '../src/noise/default-backend.js';
import { StaticIdentity } from '../src/noise/identity.js';
import { generatePrivateKey } from '../src/noise/keys.js';
import { TransportSlot } from '../src/noise/transport-slot.js';
import { Tunnel } from '../src/noise/tunnel.js';
import {
  CRYPTO_BENCH_BATCH,
  CRYPTO_BENCH_PACKETS_DEFAULT,
  CRYPTO_BENCH_PEERS_DEFAULT,
  CRYPTO_BENCH_ROUNDS_DEFAULT,
  CRYPTO_BENCH_WARMUP_PACKETS,
  CRYPTO_BENCH_WORKERS_DEFAULT,
  PACKET_SIZE,
  TUNNEL_MTU,
} from './constants.js';
import { parseBenchArgs } from './lib/command-line.js';
import { machineLine } from './lib/machine.js';
import { median } from './lib/stats.js';
import { formatNumber, formatTable, type Cell } from './lib/table.js';

/** Room for a full-size packet, its padding and the transport overhead. */
const SLOT_BYTES = 2048;

interface Options {
  workers: number[];
  rounds: number;
  packets: number;
  peers: number;
  json: boolean;
}

function parseOptions(): Options {
  const { values } = parseBenchArgs({
    npmScript: 'bench:crypto',
    measures: 'packets/s and Gbit/s of the packet AEAD inline on the main thread and on crypto workers (pure CPU)',
    options: {
      workers: { type: 'string', default: CRYPTO_BENCH_WORKERS_DEFAULT, value: 'N,N,...', description: 'worker counts to measure, 0 meaning inline' },
      rounds: { type: 'string', default: String(CRYPTO_BENCH_ROUNDS_DEFAULT), value: 'N', description: 'rounds per worker count' },
      packets: { type: 'string', default: String(CRYPTO_BENCH_PACKETS_DEFAULT), value: 'N', description: `packets per round, at least ${CRYPTO_BENCH_BATCH}` },
      peers: { type: 'string', default: String(CRYPTO_BENCH_PEERS_DEFAULT), value: 'N', description: 'peers the packets are spread over' },
      json: { type: 'boolean', default: false, description: 'print the figures as one JSON document' },
    },
  });
  const whole = (text: string, what: string, min: number): number => {
    const value = Number(text);
    if (!/^\d+$/.test(text.trim()) || value < min) throw new Error(`--${what} ${text}: expected a whole number of at least ${min}`);
    return value;
  };
  return {
    workers: values.workers.split(',').map((part) => whole(part, 'workers', 0)),
    rounds: whole(values.rounds, 'rounds', 1),
    packets: whole(values.packets, 'packets', CRYPTO_BENCH_BATCH),
    peers: whole(values.peers, 'peers', 1),
    json: values.json,
  };
}

/** Two tunnels after a handshake (A initiated, B confirmed), on a frozen clock: no rekey during a run. */
function connectedPair(): { a: Tunnel; b: Tunnel } {
  const clock = new ManualClock();
  const idA = new StaticIdentity(generatePrivateKey(), defaultPrimitives, clock);
  const idB = new StaticIdentity(generatePrivateKey(), defaultPrimitives, clock);
  const a = new Tunnel({ identity: idA, peerPublicKey: idB.publicKey, clock, jitter: () => 0, mtu: TUNNEL_MTU });
  const b = new Tunnel({ identity: idB, peerPublicKey: idA.publicKey, clock, jitter: () => 0, mtu: TUNNEL_MTU });
  const response = b.decapsulate(a.initiateHandshake().network[0]!).network[0]!;
  const keepalive = a.decapsulate(response).network[0]!;
  if (b.decapsulate(keepalive).error !== null) throw new Error('handshake did not complete');
  return { a, b };
}

function sharedSlots(count: number): TransportSlot[] {
  const memory = new SharedArrayBuffer(count * SLOT_BYTES);
  return Array.from({ length: count }, (_, i) => new TransportSlot(new Uint8Array(memory, i * SLOT_BYTES, SLOT_BYTES)));
}

/** Seal and open one batch; the two phases' durations are added to `time`. */
type BatchRunner = (count: number, time: { seal: number; open: number }) => void;

interface Harness {
  runBatch: BatchRunner;
  /** Packets opened intact so far (a check that the path did its work). */
  delivered(): number;
  ready(): Promise<void>;
  close(): Promise<void>;
}

function harness(workers: number, peers: number): Harness {
  const pairs = Array.from({ length: peers }, connectedPair);
  const sendSlots = sharedSlots(CRYPTO_BENCH_BATCH);
  const receiveSlots = sharedSlots(CRYPTO_BENCH_BATCH);
  const lengths = new Int32Array(CRYPTO_BENCH_BATCH);
  const payload = new Uint8Array(PACKET_SIZE).map((_, i) => i & 0xff);
  payload[0] = 0x45;
  let delivered = 0;
  let next = 0;
  const fill = (count: number) => {
    for (let i = 0; i < count; i++) sendSlots[i]!.packetArea.set(payload);
  };
  const carry = (count: number) => {
    for (let i = 0; i < count; i++) receiveSlots[i]!.bytes.set(sendSlots[i]!.bytes.subarray(0, lengths[i]!));
  };
  const peerOf = (i: number) => pairs[(next + i) % peers]!;

  if (workers === 0) {
    return {
      runBatch(count, time) {
        fill(count);
        let start = performance.now();
        for (let i = 0; i < count; i++) lengths[i] = peerOf(i).a.sealTransport(sendSlots[i]!, PACKET_SIZE);
        time.seal += performance.now() - start;
        carry(count);
        start = performance.now();
        for (let i = 0; i < count; i++) if (peerOf(i).b.openTransport(receiveSlots[i]!, lengths[i]!) === PACKET_SIZE) delivered++;
        time.open += performance.now() - start;
        next += count;
      },
      delivered: () => delivered,
      ready: async () => undefined,
      close: async () => undefined,
    };
  }

  const pool = new CryptoPool({ workers, log: silentLogger });
  const batch = new TransportBatch<number, null>(pool, {
    sealed: (index, _slot, length) => (lengths[index] = length),
    opened: (_index, _slot, length) => length === PACKET_SIZE && delivered++,
    dropped: () => undefined,
  });
  return {
    runBatch(count, time) {
      fill(count);
      let start = performance.now();
      for (let i = 0; i < count; i++) batch.seal(peerOf(i).a, sendSlots[i]!, PACKET_SIZE, i, null);
      batch.finish();
      time.seal += performance.now() - start;
      carry(count);
      start = performance.now();
      for (let i = 0; i < count; i++) batch.open(peerOf(i).b, receiveSlots[i]!, lengths[i]!, i, null);
      batch.finish();
      time.open += performance.now() - start;
      next += count;
    },
    delivered: () => delivered,
    ready: () => pool.ready(),
    close: () => pool.close(),
  };
}

interface Figure {
  median: number;
  min: number;
  max: number;
}

interface WorkerResult {
  workers: number;
  /** Packets per second. */
  seal: Figure;
  open: Figure;
  /** Packets sealed and opened per second (one packet's both halves). */
  both: Figure;
}

function figure(values: number[]): Figure {
  return { median: median(values)!, min: Math.min(...values), max: Math.max(...values) };
}

function stream(h: Harness, packets: number): { seal: number; open: number } {
  const time = { seal: 0, open: 0 };
  for (let done = 0; done < packets; done += CRYPTO_BENCH_BATCH) h.runBatch(Math.min(CRYPTO_BENCH_BATCH, packets - done), time);
  return time;
}

async function measure(workers: number, options: Options): Promise<WorkerResult> {
  const h = harness(workers, options.peers);
  try {
    await h.ready();
    stream(h, CRYPTO_BENCH_WARMUP_PACKETS);
    const seal: number[] = [];
    const open: number[] = [];
    const both: number[] = [];
    for (let round = 0; round < options.rounds; round++) {
      const before = h.delivered();
      const time = stream(h, options.packets);
      if (h.delivered() - before !== options.packets) throw new Error(`${workers} worker(s): ${h.delivered() - before} of ${options.packets} packets came through intact`);
      seal.push(options.packets / (time.seal / 1000));
      open.push(options.packets / (time.open / 1000));
      both.push(options.packets / ((time.seal + time.open) / 1000));
    }
    return { workers, seal: figure(seal), open: figure(open), both: figure(both) };
  } finally {
    await h.close();
  }
}

const gbps = (packetsPerSecond: number) => (packetsPerSecond * PACKET_SIZE * 8) / 1e9;

function cells(f: Figure): Cell[] {
  return [f.median, `${formatNumber(f.min)}–${formatNumber(f.max)}`, Number(gbps(f.median).toFixed(2))];
}

async function main(): Promise<void> {
  const options = parseOptions();
  const results: WorkerResult[] = [];
  for (const workers of options.workers) results.push(await measure(workers, options));
  const setup = { packetSize: PACKET_SIZE, peers: options.peers, packetsPerRound: options.packets, rounds: options.rounds, batch: CRYPTO_BENCH_BATCH, backend: defaultPrimitives.name, cpus: availableParallelism() };
  if (options.json) {
    const withGbps = results.map((r) => ({
      ...r,
      sealGbps: gbps(r.seal.median),
      openGbps: gbps(r.open.median),
      bothGbps: gbps(r.both.median),
    }));
    process.stdout.write(`${JSON.stringify({ machine: machineLine(), ...setup, results: withGbps }, null, 2)}\n`);
    return;
  }
  console.log(machineLine());
  console.log(
    `${options.peers} peers, ${PACKET_SIZE}-byte packets in batches of ${CRYPTO_BENCH_BATCH}, ${options.packets} per round, ${options.rounds} round(s), backend ${defaultPrimitives.name}; packets/s median (min–max over rounds), Gbit/s of payload at the median\n`,
  );
  const headers = ['workers', 'seal pkt/s', 'min–max', 'Gbit/s', 'open pkt/s', 'min–max', 'Gbit/s', 'seal+open pkt/s', 'min–max', 'Gbit/s'];
  console.log(formatTable(headers, results.map((r) => [String(r.workers), ...cells(r.seal), ...cells(r.open), ...cells(r.both)])));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
