/**
 * etcd membership figures (for BENCHMARKS.md), against a real etcd that this
 * benchmark starts on 127.0.0.1 and removes at the end (no root needed):
 *
 *  (a) join propagation: a simulator writes slice and node records in the
 *      node's own format (records.ts) for N nodes, one after another, while
 *      WATCHERS real EtcdMembership instances watch; the figure is the time
 *      from sending a node's record to the watcher's peer callback (the
 *      point where the daemon programs the device), p50 and p99 per round,
 *      median and min–max over rounds. A node not seen within
 *      PROPAGATION_TIMEOUT_MS is a failure.
 *  (b) steady state: WATCHERS members, their records published, re-published
 *      unchanged every MEMBERSHIP_PUBLISH_CHECK_MS as the daemon does, for
 *      --seconds: etcd writes and lease keep-alives per node per minute,
 *      counted in the client (every gateway call) and cross-checked with
 *      etcd's own /metrics (etcd_mvcc_put_total, etcd_mvcc_txn_total,
 *      etcd_mvcc_delete_total, etcd_debugging_lease_renewed_total).
 *  (c) RSS of one watcher in its own process (bench/lib/membership-watcher.ts)
 *      with no peers and with --members peers.
 *
 *   npm run bench:membership [-- --seconds 60] [-- --rounds 3] [-- --sizes 10,50,200] [-- --members 1000]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseCidr } from '../src/device/addr.js';
import { MEMBERSHIP_PUBLISH_CHECK_MS } from '../src/overlay/constants.js';
import { EtcdClient, type WatchMessage } from '../src/overlay/membership/etcd-client.js';
import { EtcdMembership } from '../src/overlay/membership/etcd.js';
import type { LocalRecord } from '../src/overlay/membership/membership.js';
import { encodeNodeRecord, encodeSliceRecord, KeyLayout, slicesOf } from '../src/overlay/membership/records.js';
import { startEtcdCluster, type EtcdCluster } from '../scripts/lib/etcd.js';
import { cleanup, createTempDir, requireCommands, waitUntil } from '../scripts/lib/netns.js';
import { parseBenchArgs } from './lib/command-line.js';
import { machineLine } from './lib/machine.js';
import { MIB } from './lib/proc.js';
import { median, percentile } from './lib/stats.js';
import { formatTable, markdownTable, type Cell } from './lib/table.js';

const PREFIX = '/tswg-bench';
const CLUSTER = '10.0.0.0/8';
const SLICE_LENGTH = 26;
/** Slices the watchers may take (they pick among the first free ones): the simulator starts above them. */
const SIMULATOR_FIRST_SLICE = 256;
const WATCHERS = 3;
const PRESENCE_TTL_SECS = 30;
/** The simulator's records live on one lease this long (they need no keep-alive during a run). */
const SIMULATOR_LEASE_SECS = 900;
const PROPAGATION_TIMEOUT_MS = 15_000;
const SETTLE_MS = 2000;
const SECONDS_DEFAULT = 30;
const ROUNDS_DEFAULT = 3;
const SIZES_DEFAULT = '10,50,200';
const MEMBERS_DEFAULT = 1000;

interface Options {
  seconds: number;
  rounds: number;
  sizes: number[];
  members: number;
}

function parseOptions(): Options {
  const { values } = parseBenchArgs({
    npmScript: 'bench:membership',
    measures: 'etcd membership: join propagation to watchers, steady-state etcd writes and keep-alives per node, watcher RSS',
    options: {
      seconds: { type: 'string', default: String(SECONDS_DEFAULT), value: 'S', description: 'seconds of the steady-state phase, 5..3600' },
      rounds: { type: 'string', default: String(ROUNDS_DEFAULT), value: 'N', description: 'propagation rounds per size, 1..20' },
      sizes: { type: 'string', default: SIZES_DEFAULT, value: 'N,N,...', description: 'how many nodes join, one propagation figure per size' },
      members: { type: 'string', default: String(MEMBERS_DEFAULT), value: 'N', description: 'peers of the watcher whose RSS is measured, 1..100000' },
    },
  });
  const options: Options = { seconds: Number(values.seconds), rounds: Number(values.rounds), sizes: values.sizes.split(',').map(Number), members: Number(values.members) };
  if (!(options.seconds >= 5 && options.seconds <= 3600)) throw new Error('--seconds must be 5..3600');
  if (!Number.isInteger(options.rounds) || options.rounds < 1 || options.rounds > 20) throw new Error('--rounds must be 1..20');
  if (!Number.isInteger(options.members) || options.members < 1 || options.members > 100_000) throw new Error('--members must be 1..100000');
  if (options.sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 10_000)) throw new Error('--sizes must be integers 1..10000');
  return options;
}

// ---- counting the gateway calls ------------------------------------------------

type CallKind = 'put' | 'txn' | 'delete' | 'grant' | 'keepalive' | 'revoke' | 'range' | 'watch';

/** The node's client, counting each gateway call it makes (successful or not). */
class CountingClient extends EtcdClient {
  readonly calls = new Map<CallKind, number>();
  private count(kind: CallKind): void {
    this.calls.set(kind, (this.calls.get(kind) ?? 0) + 1);
  }
  override put(key: string, value: string, lease?: string): Promise<number> {
    this.count('put');
    return super.put(key, value, lease);
  }
  override createIfAbsent(key: string, value: string, lease?: string): ReturnType<EtcdClient['createIfAbsent']> {
    this.count('txn');
    return super.createIfAbsent(key, value, lease);
  }
  override replaceIfUnchanged(key: string, value: string, modRevision: number, lease?: string): Promise<boolean> {
    this.count('txn');
    return super.replaceIfUnchanged(key, value, modRevision, lease);
  }
  override delete(key: string): Promise<void> {
    this.count('delete');
    return super.delete(key);
  }
  override leaseGrant(ttl: number): ReturnType<EtcdClient['leaseGrant']> {
    this.count('grant');
    return super.leaseGrant(ttl);
  }
  override leaseKeepAlive(id: string): Promise<number> {
    this.count('keepalive');
    return super.leaseKeepAlive(id);
  }
  override leaseRevoke(id: string): Promise<void> {
    this.count('revoke');
    return super.leaseRevoke(id);
  }
  override range(key: string, options?: Parameters<EtcdClient['range']>[1]): ReturnType<EtcdClient['range']> {
    this.count('range');
    return super.range(key, options);
  }
  override watch(prefix: string, start: number, onMessage: (m: WatchMessage) => void, signal: AbortSignal): Promise<void> {
    this.count('watch');
    return super.watch(prefix, start, onMessage, signal);
  }
  /** Writes to the key space: puts, transactions, deletes. */
  get writes(): number {
    return (this.calls.get('put') ?? 0) + (this.calls.get('txn') ?? 0) + (this.calls.get('delete') ?? 0);
  }
  get keepAlives(): number {
    return this.calls.get('keepalive') ?? 0;
  }
}

// ---- watchers and the simulator -----------------------------------------------

interface Watcher {
  nodeId: string;
  membership: EtcdMembership;
  client: CountingClient;
  /** nodeId → when the peer callback first saw it (performance.now()). */
  seen: Map<string, number>;
  record: LocalRecord;
}

async function startWatcher(etcd: EtcdCluster, deployment: string, index: number): Promise<Watcher> {
  const client = new CountingClient({ endpoints: etcd.endpoints });
  const nodeId = `watcher-${index}`;
  const membership = new EtcdMembership({
    config: { endpoints: etcd.endpoints, prefix: PREFIX, leaseTtlSeconds: PRESENCE_TTL_SECS, sliceLength: SLICE_LENGTH },
    dataDir: createTempDir('tswg-bench-membership-'),
    log: { verbose: () => undefined, error: (message) => console.error(`${nodeId}: ${message}`) },
    client,
  });
  const seen = new Map<string, number>();
  await membership.start({ deployment, nodeId, publicKey: randomBytes(32).toString('base64'), clusterCidr: CLUSTER, wgPort: 51820 });
  await membership.onPeers({
    add: async (id) => {
      if (!seen.has(id)) seen.set(id, performance.now());
    },
    remove: async (id) => void seen.delete(id),
  });
  const record: LocalRecord = { endpoint: `192.0.2.${index + 1}:51820`, candidates: [], serviceSubnets: [] };
  await membership.publish(record);
  return { nodeId, membership, client, seen, record };
}

/** Writes simulated nodes' slice and node records on one lease; `sentAt` is when each node record was sent. */
class Simulator {
  private readonly client: EtcdClient;
  private readonly layout: KeyLayout;
  private readonly slices: Generator<string>;
  private lease: string | null = null;
  readonly sentAt = new Map<string, number>();

  constructor(etcd: EtcdCluster, deployment: string) {
    this.client = new EtcdClient({ endpoints: etcd.endpoints });
    this.layout = new KeyLayout(PREFIX, deployment);
    this.slices = slicesOf(parseCidr(CLUSTER), SLICE_LENGTH);
    for (let i = 0; i < SIMULATOR_FIRST_SLICE; i++) this.slices.next();
  }

  async join(count: number): Promise<void> {
    this.lease ??= (await this.client.leaseGrant(SIMULATOR_LEASE_SECS)).id;
    for (let i = 0; i < count; i++) {
      const nodeId = `sim-${this.sentAt.size}`;
      const publicKey = randomBytes(32).toString('base64');
      let slice: string;
      for (;;) {
        slice = this.slices.next().value as string;
        if ((await this.client.createIfAbsent(this.layout.sliceKey(slice), encodeSliceRecord({ nodeId, publicKey }), this.lease)).created) break;
      }
      this.sentAt.set(nodeId, performance.now());
      const endpoint = `198.51.${100 + ((i >> 8) & 0xff)}.${i & 0xff}:51820`;
      await this.client.put(this.layout.nodeKey(nodeId), encodeNodeRecord({ publicKey, slice, endpoint, candidates: [], serviceSubnets: [] }), this.lease);
    }
  }

  /** Every simulated record goes (they share the lease). */
  async leave(): Promise<void> {
    if (this.lease !== null) await this.client.leaseRevoke(this.lease);
    this.lease = null;
    this.client.close();
  }
}

// ---- (a) propagation -----------------------------------------------------------

interface PropagationRound {
  p50: number | null;
  p99: number | null;
  samples: number;
  failures: number;
}

async function propagationRound(etcd: EtcdCluster, size: number, round: number): Promise<PropagationRound> {
  const deployment = `prop${size}r${round}x${process.pid}`;
  const watchers: Watcher[] = [];
  for (let i = 0; i < WATCHERS; i++) watchers.push(await startWatcher(etcd, deployment, i));
  const simulator = new Simulator(etcd, deployment);
  try {
    await simulator.join(size);
    const all = (): boolean => watchers.every((w) => [...simulator.sentAt.keys()].every((id) => w.seen.has(id)));
    await waitUntil(all, `${size} nodes to reach every watcher`, PROPAGATION_TIMEOUT_MS, 20).catch(() => undefined);
    const latencies: number[] = [];
    let failures = 0;
    for (const watcher of watchers) {
      for (const [id, sent] of simulator.sentAt) {
        const seen = watcher.seen.get(id);
        if (seen === undefined) failures++;
        else latencies.push(seen - sent);
      }
    }
    return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), samples: latencies.length, failures };
  } finally {
    await simulator.leave();
    await Promise.all(watchers.map((w) => w.membership.stop(true)));
  }
}

// ---- (b) steady state ------------------------------------------------------------

/** The counters etcd keeps about itself (the ones this benchmark compares with). */
async function etcdCounters(etcd: EtcdCluster): Promise<Map<string, number>> {
  const text = await (await fetch(`${etcd.endpoints[0]}/metrics`)).text();
  const wanted = ['etcd_mvcc_put_total', 'etcd_mvcc_txn_total', 'etcd_mvcc_delete_total', 'etcd_debugging_lease_renewed_total', 'etcd_debugging_lease_granted_total'];
  const counters = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [name, value] = line.split(' ');
    if (name !== undefined && wanted.includes(name)) counters.set(name, Number(value));
  }
  return counters;
}

interface SteadyFigures {
  clientWrites: number[];
  clientKeepAlives: number[];
  etcd: Map<string, number>;
  seconds: number;
}

async function steadyState(etcd: EtcdCluster, seconds: number): Promise<SteadyFigures> {
  const deployment = `steady${process.pid}`;
  const watchers: Watcher[] = [];
  for (let i = 0; i < WATCHERS; i++) watchers.push(await startWatcher(etcd, deployment, i));
  // The daemon re-checks its record this often; an unchanged one must write nothing.
  const republish = setInterval(() => {
    for (const w of watchers) void w.membership.publish({ ...w.record });
  }, MEMBERSHIP_PUBLISH_CHECK_MS);
  try {
    await waitUntil(() => watchers.every((w) => w.seen.size === WATCHERS - 1), 'the watchers to see each other', 10_000);
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const writesBefore = watchers.map((w) => w.client.writes);
    const keepAlivesBefore = watchers.map((w) => w.client.keepAlives);
    const etcdBefore = await etcdCounters(etcd);
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const elapsed = (performance.now() - started) / 1000;
    const etcdAfter = await etcdCounters(etcd);
    const perMinute = (count: number): number => (count / elapsed) * 60;
    const delta = new Map([...etcdAfter].map(([name, value]) => [name, value - (etcdBefore.get(name) ?? 0)]));
    return {
      clientWrites: watchers.map((w, i) => perMinute(w.client.writes - writesBefore[i]!)),
      clientKeepAlives: watchers.map((w, i) => perMinute(w.client.keepAlives - keepAlivesBefore[i]!)),
      etcd: new Map([...delta].map(([name, value]) => [name, perMinute(value) / WATCHERS])),
      seconds: elapsed,
    };
  } finally {
    clearInterval(republish);
    await Promise.all(watchers.map((w) => w.membership.stop(true)));
  }
}

// ---- (c) RSS of a watcher with many members ---------------------------------------

interface WatcherMemory {
  peers: number;
  rss: number;
  heapUsed: number;
}

async function watcherMemory(etcd: EtcdCluster, members: number): Promise<{ empty: WatcherMemory; full: WatcherMemory; joinSeconds: number; afterLastWriteSeconds: number }> {
  const deployment = `rss${process.pid}`;
  const script = fileURLToPath(new URL('./lib/membership-watcher.js', import.meta.url));
  const child = spawn(process.execPath, ['--expose-gc', script, etcd.endpoints[0]!, PREFIX, deployment, 'watcher'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, unknown>> => {
    const { value, done } = await lines.next();
    if (done === true) throw new Error('the watcher process ended early');
    return JSON.parse(value as string) as Record<string, unknown>;
  };
  const ask = async (): Promise<WatcherMemory> => {
    child.stdin!.write('rss\n');
    return (await next()) as unknown as WatcherMemory;
  };
  const simulator = new Simulator(etcd, deployment);
  try {
    await next();
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const empty = await ask();
    const started = performance.now();
    await simulator.join(members);
    const written = performance.now();
    let full = await ask();
    const deadline = Date.now() + 60_000;
    while (full.peers < members && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      full = await ask();
    }
    const joinSeconds = (performance.now() - started) / 1000;
    const afterLastWriteSeconds = (performance.now() - written) / 1000;
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const samples = [await ask(), await ask(), await ask()];
    full = { peers: samples[0]!.peers, rss: median(samples.map((s) => s.rss))!, heapUsed: median(samples.map((s) => s.heapUsed))! };
    child.stdin!.write('stop\n');
    await next();
    return { empty, full, joinSeconds, afterLastWriteSeconds };
  } finally {
    child.kill();
    await simulator.leave();
  }
}

// ---- main ------------------------------------------------------------------------

function spread(values: Array<number | null>): { median: number | null; min: number | null; max: number | null } {
  const known = values.filter((v): v is number => v !== null);
  return { median: median(known), min: known.length === 0 ? null : Math.min(...known), max: known.length === 0 ? null : Math.max(...known) };
}

function print(title: string, headers: string[], rows: Cell[][]): void {
  console.log(`\n${title}\n${formatTable(headers, rows)}\n\n${markdownTable(headers, rows)}`);
}

async function main(): Promise<void> {
  const options = parseOptions();
  requireCommands('etcd', 'etcdctl');
  console.log(`bench:membership — ${machineLine()}; etcd on 127.0.0.1, ${WATCHERS} watchers, ${options.rounds} round(s)`);
  const etcd = await startEtcdCluster();
  try {
    const propagationRows: Cell[][] = [];
    for (const size of options.sizes) {
      const rounds: PropagationRound[] = [];
      for (let round = 0; round < options.rounds; round++) rounds.push(await propagationRound(etcd, size, round));
      const p50 = spread(rounds.map((r) => r.p50));
      const p99 = spread(rounds.map((r) => r.p99));
      const samples = rounds.reduce((sum, r) => sum + r.samples, 0);
      const failures = rounds.reduce((sum, r) => sum + r.failures, 0);
      propagationRows.push([`${size} nodes`, p50.median, `${formatMs(p50.min)}–${formatMs(p50.max)}`, p99.median, `${formatMs(p99.min)}–${formatMs(p99.max)}`, String(samples), String(failures)]);
      console.error(`propagation ${size}: ${JSON.stringify(rounds)}`);
    }
    print('(a) join propagation: record sent → peer callback on each watcher (ms; median over rounds, min–max)', ['joining', 'p50 ms', 'p50 range', 'p99 ms', 'p99 range', 'samples', 'failures'], propagationRows);

    const steady = await steadyState(etcd, options.seconds);
    const w = spread(steady.clientWrites);
    const k = spread(steady.clientKeepAlives);
    const etcdValue = (name: string): number | null => steady.etcd.get(name) ?? null;
    const writeCounters = ['etcd_mvcc_put_total', 'etcd_mvcc_txn_total', 'etcd_mvcc_delete_total'];
    const missing = [...writeCounters, 'etcd_debugging_lease_renewed_total'].filter((name) => !steady.etcd.has(name));
    if (missing.length > 0) console.error(`etcd /metrics lacks ${missing.join(', ')}`);
    const etcdWrites = writeCounters.some((name) => steady.etcd.has(name)) ? writeCounters.reduce((sum, name) => sum + (etcdValue(name) ?? 0), 0) : null;
    print(
      `(b) steady state over ${steady.seconds.toFixed(0)} s, per node per minute (client: median over ${WATCHERS} nodes, min–max; etcd: its counters ÷ ${WATCHERS})`,
      ['what', 'client', 'client range', 'etcd /metrics'],
      [
        ['writes (put, txn, delete)', w.median, `${formatCount(w.min)}–${formatCount(w.max)}`, etcdWrites],
        ['lease keep-alives', k.median, `${formatCount(k.min)}–${formatCount(k.max)}`, etcdValue('etcd_debugging_lease_renewed_total')],
        ['lease grants', null, '', etcdValue('etcd_debugging_lease_granted_total')],
      ],
    );

    const memory = await watcherMemory(etcd, options.members);
    print(
      `(c) one watcher process (after a full GC): RSS and heap with no peers and with ${options.members} (all ${memory.full.peers === options.members ? 'seen' : `NOT seen: ${memory.full.peers}`}, ${memory.joinSeconds.toFixed(1)} s from the first write, ${memory.afterLastWriteSeconds.toFixed(2)} s after the last)`,
      ['peers', 'RSS MiB', 'heap used MiB'],
      [
        [String(memory.empty.peers), memory.empty.rss / MIB, memory.empty.heapUsed / MIB],
        [String(memory.full.peers), memory.full.rss / MIB, memory.full.heapUsed / MIB],
        ['difference', (memory.full.rss - memory.empty.rss) / MIB, (memory.full.heapUsed - memory.empty.heapUsed) / MIB],
      ],
    );
  } finally {
    for (const member of etcd.members) await etcd.stop(member);
    cleanup();
  }
}

function formatMs(value: number | null): string {
  return value === null ? '–' : value.toFixed(value >= 100 ? 0 : 1);
}

function formatCount(value: number | null): string {
  return value === null ? '–' : value.toFixed(1);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : String(error));
  cleanup();
  process.exit(1);
});
