/**
 * `sudo npm run bench:hops`: where a ping's round trip goes through a
 * tswg↔tswg pair. Both daemons run with TSWG_HOP_TRACE (platform/hop-trace.ts),
 * which times every batch's hops between the I/O thread and the main thread;
 * a wireguard-go↔wireguard-go pair is pinged in the same rounds, alternately,
 * as the reference. Per round: LATENCY_HOPS_WARMUP pings, then
 * LATENCY_HOPS_PINGS at LATENCY_HOPS_INTERVAL_SECONDS; the traces keep the
 * newest samples, so what they report is the measured pings.
 *
 *   npm run build && node dist/bench/latency-hops.js [--rounds N]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cleanup, requireCommands, requireRoot, setNamePrefix } from '../scripts/lib/netns.js';
import { createPair, ping, type Pair } from '../scripts/lib/topology.js';
import { LATENCY_HOPS_INTERVAL_SECONDS, LATENCY_HOPS_NAME_PREFIX, LATENCY_HOPS_PINGS, LATENCY_HOPS_WARMUP } from './constants.js';
import { runPing } from './lib/iperf.js';
import { median } from './lib/stats.js';

/** The trace writes its report every second: wait for one that covers the last pings. */
const REPORT_WAIT_MS = 1_500;

interface HopSummary {
  n: number;
  p10: number;
  p50: number;
  p90: number;
}
type RingReport = Record<string, HopSummary>;

function readTrace(prefix: string, pid: number): Record<string, RingReport> {
  const document = JSON.parse(readFileSync(`${prefix}.${pid}.json`, 'utf8')) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(document).filter(([, value]) => typeof value === 'object')) as Record<string, RingReport>;
}

function printTrace(side: string, trace: Record<string, RingReport>): void {
  for (const [ring, hops] of Object.entries(trace)) {
    if ((hops.packets?.n ?? 0) === 0) continue;
    const cells = Object.entries(hops)
      .filter(([hop]) => hop !== 'packets')
      .map(([hop, summary]) => `${hop} ${summary.p50} (${summary.p10}–${summary.p90})`);
    console.log(`    ${side} ${ring} [${hops.packets!.n} batches, p90 ${hops.packets!.p90 / 1000} packets]: ${cells.join(', ')} µs`);
  }
}

async function pingP50(pair: Pair, count: number): Promise<number> {
  const result = await runPing(pair.a.namespace, pair.b.inner4, count, LATENCY_HOPS_INTERVAL_SECONDS);
  if (result.rttsMs.length === 0) throw new Error('no ping replies');
  return median(result.rttsMs)!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
  const rounds = Number(values.rounds);
  requireRoot('bench:hops');
  requireCommands('ping', 'wg', 'wireguard-go');
  setNamePrefix(LATENCY_HOPS_NAME_PREFIX);
  const directory = mkdtempSync(join(tmpdir(), 'tswg-hops-'));
  const prefix = join(directory, 'trace');
  try {
    const tswg = await createPair({ left: 'tswg', right: 'tswg', env: { TSWG_HOP_TRACE: prefix } });
    const go = await createPair({ left: 'wireguard-go', right: 'wireguard-go' });
    for (const pair of [tswg, go]) ping(pair.a, pair.b.inner4);
    const p50s: Record<string, number[]> = { tswg: [], go: [] };
    for (let round = 1; round <= rounds; round++) {
      for (const [name, pair] of Object.entries({ tswg, go }).sort(() => (round % 2 === 0 ? -1 : 1))) {
        await pingP50(pair, LATENCY_HOPS_WARMUP);
        const p50 = await pingP50(pair, LATENCY_HOPS_PINGS);
        p50s[name]!.push(p50);
        console.log(`round ${round} ${name}: ping p50 ${p50.toFixed(3)} ms`);
        if (name !== 'tswg') continue;
        await new Promise((resolve) => setTimeout(resolve, REPORT_WAIT_MS));
        printTrace('left ', readTrace(prefix, pair.a.process.pid));
        printTrace('right', readTrace(prefix, pair.b.process.pid));
      }
    }
    const middle = (name: string) => median(p50s[name]!)!;
    const summary = (name: string) => `${middle(name).toFixed(3)} ms (${Math.min(...p50s[name]!).toFixed(3)}–${Math.max(...p50s[name]!).toFixed(3)})`;
    console.log(`ping p50, median of ${rounds} rounds: tswg↔tswg ${summary('tswg')}, wireguard-go↔wireguard-go ${summary('go')}, ratio ${(middle('tswg') / middle('go')).toFixed(2)}×`);
  } finally {
    cleanup();
    rmSync(directory, { recursive: true, force: true });
  }
}

await main();
