/**
 * `sudo npm run bench:hops`: where a ping's round trip goes through a
 * tswg↔tswg pair. Both daemons run with TSWG_HOP_TRACE (platform/hop-trace.ts),
 * which times every batch's hops between the I/O thread and the main thread;
 * a wireguard-go↔wireguard-go pair is pinged in the same rounds, alternately,
 * as the reference. Per round: LATENCY_HOPS_WARMUP pings, then
 * LATENCY_HOPS_PINGS at LATENCY_HOPS_INTERVAL_SECONDS; the traces keep the
 * newest samples, so what they report is the measured pings. A round whose
 * pings fail or outlast their time limit (bench/lib/time-limits.ts) counts as
 * failed (`n=2/3`) and the run goes on.
 *
 * --variant NAME=VALUE adds a traced tswg↔tswg pair run with that
 * environment variable (repeatable), pinged in the same rounds.
 *
 *   npm run build && node dist/bench/latency-hops.js [--rounds N] [--variant NAME=VALUE]...
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanup, requireCommands, requireRoot, setNamePrefix } from '../scripts/lib/netns.js';
import { reapLeftovers } from '../scripts/lib/reap-leftovers.js';
import { createPair, ping, type Pair } from '../scripts/lib/topology.js';
import { LATENCY_HOPS_INTERVAL_SECONDS, LATENCY_HOPS_NAME_PREFIX, LATENCY_HOPS_PINGS, LATENCY_HOPS_ROUNDS_DEFAULT, LATENCY_HOPS_WARMUP } from './constants.js';
import { parseBenchArgs } from './lib/command-line.js';
import { parseVariable } from './lib/e2e-pairings.js';
import { pingSummaryLines } from './lib/hops-report.js';
import { runPing } from './lib/iperf.js';
import type { Samples } from './lib/samples.js';
import { median } from './lib/stats.js';
import { describePingTimeLimit } from './lib/time-limits.js';

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
    // The trace stores batch sizes ×1000 so that its µs rounding keeps them whole: its summary reads as packets.
    console.log(`    ${side} ${ring} [${hops.packets!.n} batches, p90 ${hops.packets!.p90} packets]: ${cells.join(', ')} µs`);
  }
}

async function pingP50(pair: Pair, count: number): Promise<number> {
  const result = await runPing(pair.a.namespace, pair.b.inner4, count, LATENCY_HOPS_INTERVAL_SECONDS);
  if (result.rttsMs.length === 0) throw new Error(`no ping replies (${count} sent)`);
  return median(result.rttsMs)!;
}

const loadLine = (): string => `load average ${loadavg().map((load) => load.toFixed(2)).join(' ')}`;

async function main(): Promise<void> {
  const { values } = parseBenchArgs({
    npmScript: 'bench:hops',
    measures: "where a ping's round trip goes through a tswg↔tswg pair, hop by hop, beside wireguard-go↔wireguard-go (root)",
    options: {
      rounds: { type: 'string', value: 'N', default: String(LATENCY_HOPS_ROUNDS_DEFAULT), description: 'rounds of pings, each pair in turn' },
      variant: { type: 'string', multiple: true, default: [], value: 'NAME=VALUE', description: 'add a traced tswg↔tswg pair run with this environment variable; repeatable' },
    },
  });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);
  requireRoot('bench:hops');
  requireCommands('ping', 'wg', 'wireguard-go');
  setNamePrefix(LATENCY_HOPS_NAME_PREFIX);
  // What an earlier, killed run of this benchmark left behind goes first.
  reapLeftovers(LATENCY_HOPS_NAME_PREFIX);
  const directory = mkdtempSync(join(tmpdir(), 'tswg-hops-'));
  const prefix = join(directory, 'trace');
  try {
    const pairs: { name: string; pair: Pair; traced: boolean }[] = [];
    pairs.push({ name: 'tswg', pair: await createPair({ left: 'tswg', right: 'tswg', env: { TSWG_HOP_TRACE: prefix } }), traced: true });
    for (const variant of values.variant) {
      pairs.push({ name: `tswg ${variant}`, pair: await createPair({ left: 'tswg', right: 'tswg', env: { TSWG_HOP_TRACE: prefix, ...parseVariable(variant) } }), traced: true });
    }
    pairs.push({ name: 'wireguard-go', pair: await createPair({ left: 'wireguard-go', right: 'wireguard-go' }), traced: false });
    for (const { pair } of pairs) ping(pair.a, pair.b.inner4);
    console.log(`time limit per ping run: warm-up ${describePingTimeLimit(LATENCY_HOPS_WARMUP, LATENCY_HOPS_INTERVAL_SECONDS)}, measured ${describePingTimeLimit(LATENCY_HOPS_PINGS, LATENCY_HOPS_INTERVAL_SECONDS)}`);
    console.log(`start: ${loadLine()}`);
    const p50s = new Map<string, Samples>(pairs.map(({ name }) => [name, []]));
    for (let round = 1; round <= rounds; round++) {
      // The order rotates each round, so that load that comes and goes hits every pair alike.
      const order = pairs.map((_, i) => pairs[(i + round - 1) % pairs.length]!);
      for (const { name, pair, traced } of order) {
        let p50: number;
        try {
          await pingP50(pair, LATENCY_HOPS_WARMUP);
          p50 = await pingP50(pair, LATENCY_HOPS_PINGS);
        } catch (error) {
          // One slow or failed round is a failed sample, never the end of the run.
          p50s.get(name)!.push(null);
          console.log(`round ${round} ${name}: FAILED: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}; ${loadLine()}`);
          continue;
        }
        p50s.get(name)!.push(p50);
        console.log(`round ${round} ${name}: ping p50 ${p50.toFixed(3)} ms; ${loadLine()}`);
        if (!traced) continue;
        await new Promise((resolve) => setTimeout(resolve, REPORT_WAIT_MS));
        for (const [side, pid] of [['left ', pair.a.process.pid], ['right', pair.b.process.pid]] as const) {
          try {
            printTrace(side, readTrace(prefix, pid));
          } catch (error) {
            console.log(`    ${side} trace not readable: ${error instanceof Error ? error.message : String(error)}`);
          }
        }
      }
    }
    console.log(`end: ${loadLine()}`);
    for (const line of pingSummaryLines(p50s, 'wireguard-go')) console.log(line);
  } finally {
    cleanup();
    rmSync(directory, { recursive: true, force: true });
  }
}

await main();
