/**
 * `sudo npm run bench:e2e`: the end-to-end benchmark of issue 5. Three
 * two-namespace pairs (scripts/lib/topology.ts createPair) are built once
 * and measured in ONE run, alternating pairing by pairing within every test
 * of every round, so machine noise hits all three alike:
 *
 *   wireguard-go↔wireguard-go (the reference), tswg↔tswg, tswg↔wireguard-go
 *
 * Per pairing: iperf3 TCP with 1 and 4 streams each way; iperf3 UDP at full
 * speed (-b 0) with 64-byte and 1372-byte datagrams each way (received
 * packets/s, loss); ping RTT through the tunnel (avg, p50); CPU seconds of
 * each WireGuard process during each test (/proc/PID/stat utime+stime); peak
 * RSS of each WireGuard process (VmHWM). "→" is left to right (the left side
 * is the iperf3 client), "←" the reverse (-R). With several rounds each
 * figure is the median over the rounds. Every figure is also shown as a
 * ratio to wireguard-go↔wireguard-go.
 *
 *   npm run build && node dist/bench/e2e.js [--duration S] [--rounds N] [--only PAIRING] [--json FILE]
 *
 * PAIRING: go-go, tswg-tswg or tswg-go (repeatable). Everything it creates
 * (namespaces, veths, daemons, iperf3, keys) is removed on every exit path,
 * Ctrl-C included (scripts/lib/netns.ts cleanup registry).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { cleanup, requireCommands, requireRoot } from '../scripts/lib/netns.js';
import { createPair, ping, type Implementation, type Pair } from '../scripts/lib/topology.js';
import {
  E2E_DURATION_SECONDS_DEFAULT,
  E2E_PING_COUNT,
  E2E_PING_INTERVAL_SECONDS,
  E2E_ROUNDS_DEFAULT,
  E2E_SETTLE_MS,
  E2E_TCP_STREAMS,
  E2E_UDP_FULL,
  E2E_UDP_SMALL,
} from './constants.js';
import { Iperf3Server, runIperf3, runPing, type Iperf3Test } from './lib/iperf.js';
import { machineInfo, machineLine } from './lib/machine.js';
import { cpuSeconds, memory, MIB } from './lib/proc.js';
import { mean, median } from './lib/stats.js';
import { formatTable, markdownTable, type Cell } from './lib/table.js';

interface Pairing {
  id: string;
  label: string;
  left: Implementation;
  right: Implementation;
}

const PAIRINGS: Pairing[] = [
  { id: 'go-go', label: 'wireguard-go↔wireguard-go', left: 'wireguard-go', right: 'wireguard-go' },
  { id: 'tswg-tswg', label: 'tswg↔tswg', left: 'tswg', right: 'tswg' },
  { id: 'tswg-go', label: 'tswg↔wireguard-go', left: 'tswg', right: 'wireguard-go' },
];
const REFERENCE = 'go-go';

interface Measurement {
  name: string;
  iperf3?: Iperf3Test;
  ping?: true;
}

const arrow = (reverse: boolean): string => (reverse ? '←' : '→');
const MEASUREMENTS: Measurement[] = [
  ...[1, E2E_TCP_STREAMS].flatMap((streams) =>
    [false, true].map((reverse) => ({ name: `TCP ×${streams} ${arrow(reverse)}`, iperf3: { protocol: 'tcp' as const, streams, reverse } })),
  ),
  ...[E2E_UDP_SMALL, E2E_UDP_FULL].flatMap((udpLength) =>
    [false, true].map((reverse) => ({ name: `UDP ${udpLength} B ${arrow(reverse)}`, iperf3: { protocol: 'udp' as const, streams: 1, reverse, udpLength } })),
  ),
  { name: 'ping', ping: true },
];

/** One figure of one pairing; a list because every round adds one value. */
type Figures = Map<string, number[]>;

interface Running {
  pairing: Pairing;
  pair: Pair;
  server: Iperf3Server;
  figures: Figures;
}

function record(figures: Figures, name: string, value: number | null): void {
  if (value === null) return;
  const values = figures.get(name) ?? [];
  values.push(value);
  figures.set(name, values);
}

function parseOptions(): { duration: number; rounds: number; pairings: Pairing[]; json: string | undefined } {
  const { values } = parseArgs({
    options: { duration: { type: 'string' }, rounds: { type: 'string' }, only: { type: 'string', multiple: true }, json: { type: 'string' } },
  });
  const duration = Number(values.duration ?? E2E_DURATION_SECONDS_DEFAULT);
  const rounds = Number(values.rounds ?? E2E_ROUNDS_DEFAULT);
  if (!Number.isInteger(duration) || duration < 1 || duration > 600) throw new Error(`--duration must be 1..600 seconds, got ${values.duration}`);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) throw new Error(`--rounds must be 1..100, got ${values.rounds}`);
  const only = values.only ?? [];
  for (const id of only) {
    if (!PAIRINGS.some((p) => p.id === id)) throw new Error(`--only ${id}: unknown pairing (one of ${PAIRINGS.map((p) => p.id).join(', ')})`);
  }
  const pairings = only.length === 0 ? PAIRINGS : PAIRINGS.filter((p) => only.includes(p.id));
  return { duration, rounds, pairings, json: values.json };
}

async function setUp(pairing: Pairing): Promise<Running> {
  const pair = await createPair({ left: pairing.left, right: pairing.right });
  ping(pair.a, pair.b.inner4); // completes the handshake; throws if the tunnel does not carry packets
  const server = new Iperf3Server(pair.b.namespace, pair.b.inner4);
  await server.start();
  return { pairing, pair, server, figures: new Map() };
}

async function measure(running: Running, measurement: Measurement, duration: number): Promise<string> {
  const { pair, figures } = running;
  const cpuBefore = [cpuSeconds(pair.a.process.pid), cpuSeconds(pair.b.process.pid)];
  let summary: string;
  if (measurement.ping) {
    const result = await runPing(pair.a.namespace, pair.b.inner4, E2E_PING_COUNT, E2E_PING_INTERVAL_SECONDS);
    record(figures, 'ping avg (ms)', mean(result.rttsMs));
    record(figures, 'ping p50 (ms)', median(result.rttsMs));
    record(figures, 'ping lost (%)', (100 * (result.sent - result.rttsMs.length)) / result.sent);
    summary = `avg ${mean(result.rttsMs)?.toFixed(3)} ms, p50 ${median(result.rttsMs)?.toFixed(3)} ms, ${result.rttsMs.length}/${result.sent} replies`;
  } else {
    const test = measurement.iperf3!;
    try {
      const result = await runIperf3(pair.a.namespace, pair.b.inner4, test, duration);
      if (test.protocol === 'tcp') {
        record(figures, `${measurement.name} (Mbit/s)`, result.mbitPerSecond);
        summary = `${result.mbitPerSecond.toFixed(0)} Mbit/s`;
      } else {
        record(figures, `${measurement.name} (kpps received)`, result.receivedPacketsPerSecond! / 1000);
        record(figures, `${measurement.name} loss (%)`, result.lossPercent);
        summary = `${(result.receivedPacketsPerSecond! / 1000).toFixed(1)} kpps received, ${result.lossPercent!.toFixed(1)} % lost`;
      }
    } catch (error) {
      // One failed test (e.g. the control connection starved) must not end the run: note it, restart the server.
      summary = `FAILED: ${error instanceof Error ? error.message : String(error)}`;
      await running.server.restart();
    }
  }
  const cpu = [cpuSeconds(pair.a.process.pid) - cpuBefore[0]!, cpuSeconds(pair.b.process.pid) - cpuBefore[1]!];
  record(figures, `CPU s left, ${measurement.name}`, cpu[0]!);
  record(figures, `CPU s right, ${measurement.name}`, cpu[1]!);
  await new Promise((resolve) => setTimeout(resolve, E2E_SETTLE_MS));
  return `${summary}; CPU s ${cpu[0]!.toFixed(2)} / ${cpu[1]!.toFixed(2)}`;
}

function recordMemory(running: Running): void {
  const { pair, figures } = running;
  record(figures, 'peak RSS left (MiB)', memory(pair.a.process.pid).hwm / MIB);
  record(figures, 'peak RSS right (MiB)', memory(pair.b.process.pid).hwm / MIB);
}

/** Figure names in measurement order: throughput and latency first, then CPU, then memory. */
function figureNames(runs: Running[]): string[] {
  const names: string[] = [];
  for (const run of runs) for (const name of run.figures.keys()) if (!names.includes(name)) names.push(name);
  const rank = (name: string): number => (name.startsWith('CPU') ? 1 : name.startsWith('peak') ? 2 : 0);
  return names.sort((a, b) => rank(a) - rank(b));
}

function table(runs: Running[]): { headers: string[]; rows: Cell[][] } {
  const reference = runs.find((run) => run.pairing.id === REFERENCE);
  const others = runs.filter((run) => run !== reference);
  const headers = ['figure', ...runs.map((run) => run.pairing.label), ...(reference ? others.map((run) => `${run.pairing.label} / ref`) : [])];
  const rows = figureNames(runs).map((name) => {
    const medians = runs.map((run) => median(run.figures.get(name) ?? []));
    const ref = reference ? median(reference.figures.get(name) ?? []) : null;
    const ratios = reference
      ? others.map((run) => {
          const value = median(run.figures.get(name) ?? []);
          return value === null || ref === null || ref === 0 ? null : `${(value / ref).toFixed(2)}×`;
        })
      : [];
    return [name, ...medians, ...ratios];
  });
  return { headers, rows };
}

async function main(): Promise<void> {
  const options = parseOptions();
  requireRoot('bench:e2e');
  requireCommands('ip', 'wg', 'wireguard-go', 'iperf3', 'ping', 'ss');
  const machine = machineInfo();
  const started = Date.now();
  console.log(`bench:e2e — ${machineLine(machine)}`);
  console.log(`${options.rounds} round(s), ${options.duration} s per iperf3 test, pairings: ${options.pairings.map((p) => p.label).join(', ')}`);

  const runs: Running[] = [];
  for (const pairing of options.pairings) {
    runs.push(await setUp(pairing));
    console.log(`  set up ${pairing.label}`);
  }
  // Warm-up (JIT, socket buffers), not recorded.
  for (const run of runs) {
    await runIperf3(run.pair.a.namespace, run.pair.b.inner4, { protocol: 'tcp', streams: 1, reverse: false }, 1).catch(() => run.server.restart());
  }

  for (let round = 0; round < options.rounds; round++) {
    for (const measurement of MEASUREMENTS) {
      // Rotate the order every round, so no pairing is always first after a pause.
      for (let i = 0; i < runs.length; i++) {
        const run = runs[(i + round) % runs.length]!;
        const summary = await measure(run, measurement, options.duration);
        console.log(`  round ${round + 1}  ${measurement.name.padEnd(12)}  ${run.pairing.label.padEnd(26)} ${summary}`);
      }
    }
  }
  for (const run of runs) recordMemory(run);

  const { headers, rows } = table(runs);
  const elapsed = (Date.now() - started) / 1000;
  console.log(`\n${formatTable(headers, rows)}\n\n(${elapsed.toFixed(0)} s; medians over ${options.rounds} round(s); "left" is the first-named side, the iperf3 client)`);
  console.log(`\nmarkdown:\n\nMachine: ${machineLine(machine)}. \`bench:e2e --duration ${options.duration} --rounds ${options.rounds}\`.\n\n${markdownTable(headers, rows)}`);
  if (options.json !== undefined) {
    const raw = Object.fromEntries(runs.map((run) => [run.pairing.id, Object.fromEntries(run.figures)]));
    writeFileSync(options.json, `${JSON.stringify({ machine, options: { ...options, pairings: options.pairings.map((p) => p.id) }, elapsedSeconds: elapsed, headers, rows, raw }, null, 2)}\n`);
    console.log(`\nJSON written to ${options.json}`);
  }
}

try {
  await main();
} finally {
  cleanup();
}
