/**
 * `sudo npm run bench:e2e`: the end-to-end benchmark. Every pairing gets its
 * own two-namespace pair (scripts/lib/topology.ts createPair), all built
 * once and measured in ONE run, alternating pairing by pairing within every
 * test of every round (the order rotates each round), so machine noise hits
 * them alike:
 *
 *   wireguard-go↔wireguard-go (the reference), tswg↔tswg, tswg↔wireguard-go
 *   and, with --ablate / --variant, tswg↔tswg with environment variables set
 *
 * Per pairing: iperf3 TCP with 1 and 4 streams each way; iperf3 UDP at full
 * speed (-b 0) with 64-byte and MTU-sized datagrams each way (received
 * packets/s, loss); ping RTT through the tunnel (p50, avg); CPU seconds of
 * each WireGuard process during each test (/proc/PID/stat utime+stime); peak
 * RSS of each WireGuard process (VmHWM). "→" is left to right (the left side
 * is the iperf3 client), "←" the reverse (-R). Every figure is the median
 * over the rounds with its min–max; a failed measurement stays in the count
 * (`n=4/5`). Ratios are to wireguard-go↔wireguard-go.
 *
 *   npm run build && node dist/bench/e2e.js [--rounds N] [--duration S] [--mtu N]
 *       [--only PAIRING]... [--test tcp|udp|ping]... [--ablate] [--variant NAME=VALUE[,NAME=VALUE]...]...
 *       [--json FILE] [--baseline FILE] [--counters]
 *
 * PAIRING: go-go, tswg-tswg, tswg-go or a variant's id (printed at start).
 * --json writes one document (versions, options, every sample); --baseline
 * reads such a document and prints this run's medians over its. --counters
 * prints, after every UDP test, where its datagrams were dropped (the
 * kernel's counters on both sides, bench/lib/drop-counters.ts). Everything
 * the run creates (namespaces, veths, daemons, iperf3, keys) is removed on
 * every exit path, Ctrl-C included (scripts/lib/netns.ts cleanup registry).
 */
import { writeFileSync } from 'node:fs';
import { cleanup, requireCommands, requireRoot, setNamePrefix } from '../scripts/lib/netns.js';
import { reapLeftovers } from '../scripts/lib/reap-leftovers.js';
import { createPair, ping, type Pair } from '../scripts/lib/topology.js';
import {
  E2E_ABLATIONS,
  E2E_DURATION_SECONDS_DEFAULT,
  E2E_INNER_UDP_OVERHEAD,
  E2E_MTU_DEFAULT,
  E2E_MTU_MAX,
  E2E_MTU_MIN,
  E2E_NAME_PREFIX,
  E2E_PING_COUNT,
  E2E_PING_INTERVAL_SECONDS,
  E2E_ROUNDS_DEFAULT,
  E2E_SETTLE_MS,
  E2E_TCP_STREAMS,
  E2E_UDP_SMALL,
} from './constants.js';
import { parseBenchArgs } from './lib/command-line.js';
import { difference, dropLine, readSide, type SideNames } from './lib/drop-counters.js';
import { BASE_PAIRINGS, REFERENCE_PAIRING, parseVariable, tswgVariant, type Pairing } from './lib/e2e-pairings.js';
import { E2E_DOCUMENT_KIND, baselineTable, readE2eDocument, resultTable, type E2eDocument, type PairingResult } from './lib/e2e-report.js';
import { Iperf3Server, runIperf3, runPing, type Iperf3Test } from './lib/iperf.js';
import { machineInfo, machineLine } from './lib/machine.js';
import { cpuSeconds, memory, MIB } from './lib/proc.js';
import { mean, median } from './lib/stats.js';
import { formatTable, markdownTable } from './lib/table.js';
import { describeIperf3TimeLimit, describePingTimeLimit } from './lib/time-limits.js';
import { setTunnelMtu } from './lib/tunnel-mtu.js';

const TEST_GROUPS = ['tcp', 'udp', 'ping'] as const;
type TestGroup = (typeof TEST_GROUPS)[number];

interface Measurement {
  name: string;
  group: TestGroup;
  iperf3?: Iperf3Test;
  /** The figures this measurement adds each round (besides CPU). */
  figures: string[];
}

const arrow = (reverse: boolean): string => (reverse ? '←' : '→');
const cpuFigures = (name: string): string[] => [`CPU s left, ${name}`, `CPU s right, ${name}`];

function measurements(mtu: number, groups: readonly TestGroup[]): Measurement[] {
  const tcp = [1, E2E_TCP_STREAMS].flatMap((streams) =>
    [false, true].map((reverse): Measurement => {
      const name = `TCP ×${streams} ${arrow(reverse)}`;
      return { name, group: 'tcp', iperf3: { protocol: 'tcp', streams, reverse }, figures: [`${name} (Mbit/s)`] };
    }),
  );
  const udp = [E2E_UDP_SMALL, mtu - E2E_INNER_UDP_OVERHEAD].flatMap((udpLength) =>
    [false, true].map((reverse): Measurement => {
      const name = `UDP ${udpLength} B ${arrow(reverse)}`;
      return { name, group: 'udp', iperf3: { protocol: 'udp', streams: 1, reverse, udpLength }, figures: [`${name} (kpps received)`, `${name} loss (%)`] };
    }),
  );
  const pings: Measurement[] = [{ name: 'ping', group: 'ping', figures: ['ping p50 (ms)', 'ping avg (ms)', 'ping lost (%)'] }];
  return [...tcp, ...udp, ...pings].filter((measurement) => groups.includes(measurement.group));
}

interface Options {
  duration: number;
  rounds: number;
  mtu: number;
  pairings: Pairing[];
  groups: TestGroup[];
  json: string | undefined;
  baseline: E2eDocument | undefined;
  counters: boolean;
}

function integerOption(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  const value = Number(text ?? fallback);
  if (!Number.isInteger(value) || value < min || value > max) throw new Error(`--${name} must be an integer ${min}..${max}, got ${text}`);
  return value;
}

function parseOptions(): Options {
  const { values } = parseBenchArgs({
    npmScript: 'bench:e2e',
    measures: 'throughput, packet rate, ping RTT, CPU and memory of tswg and wireguard-go pairs in network namespaces (root)',
    options: {
      duration: { type: 'string', value: 'S', description: 'seconds per iperf3 test, 1..600', shownDefault: String(E2E_DURATION_SECONDS_DEFAULT) },
      rounds: { type: 'string', value: 'N', description: 'rounds, 1..100', shownDefault: String(E2E_ROUNDS_DEFAULT) },
      mtu: { type: 'string', value: 'N', description: `interface MTU, ${E2E_MTU_MIN}..${E2E_MTU_MAX}`, shownDefault: String(E2E_MTU_DEFAULT) },
      only: { type: 'string', multiple: true, value: 'PAIRING', description: `measure only this pairing (${BASE_PAIRINGS.map((pairing) => pairing.id).join(', ')} or a variant's id); repeatable`, shownDefault: 'all' },
      test: { type: 'string', multiple: true, value: 'GROUP', description: `run only these tests (${TEST_GROUPS.join(', ')}); repeatable`, shownDefault: 'all' },
      ablate: { type: 'boolean', description: 'add tswg↔tswg variants that switch off one piece of the data path each' },
      variant: { type: 'string', multiple: true, value: 'NAME=VALUE', description: 'add a tswg↔tswg pairing with this environment variable set; repeatable' },
      json: { type: 'string', value: 'FILE', description: 'write every sample, the options and the versions to FILE' },
      baseline: { type: 'string', value: 'FILE', description: "print this run's medians over those of an earlier --json FILE" },
      counters: { type: 'boolean', description: 'after every UDP test, print where its datagrams were dropped (kernel counters on both sides)' },
    },
  });
  const variants = [...(values.ablate ? E2E_ABLATIONS : []), ...(values.variant ?? []).map(parseVariable)].map(tswgVariant);
  const all = [...BASE_PAIRINGS, ...variants];
  const only = values.only ?? [];
  for (const id of only) {
    if (!all.some((pairing) => pairing.id === id)) throw new Error(`--only ${id}: unknown pairing (one of ${all.map((pairing) => pairing.id).join(', ')})`);
  }
  const groups = (values.test ?? [...TEST_GROUPS]) as TestGroup[];
  for (const group of groups) if (!TEST_GROUPS.includes(group)) throw new Error(`--test ${group}: one of ${TEST_GROUPS.join(', ')}`);
  return {
    duration: integerOption('duration', values.duration, E2E_DURATION_SECONDS_DEFAULT, 1, 600),
    rounds: integerOption('rounds', values.rounds, E2E_ROUNDS_DEFAULT, 1, 100),
    mtu: integerOption('mtu', values.mtu, E2E_MTU_DEFAULT, E2E_MTU_MIN, E2E_MTU_MAX),
    pairings: only.length === 0 ? all : all.filter((pairing) => only.includes(pairing.id)),
    groups,
    json: values.json,
    baseline: values.baseline === undefined ? undefined : readE2eDocument(values.baseline),
    counters: values.counters === true,
  };
}

interface Running {
  pairing: Pairing;
  pair: Pair;
  server: Iperf3Server;
  figures: Record<string, (number | null)[]>;
}

function record(running: Running, name: string, value: number | null): void {
  (running.figures[name] ??= []).push(value);
}

async function setUp(pairing: Pairing, mtu: number): Promise<Running> {
  const pair = await createPair({ left: pairing.left, right: pairing.right, env: pairing.env });
  ping(pair.a, pair.b.inner4); // completes the handshake; throws if the tunnel does not carry packets
  if (mtu !== E2E_MTU_DEFAULT) setTunnelMtu(pair, mtu);
  const server = new Iperf3Server(pair.b.namespace, pair.b.inner4);
  await server.start();
  return { pairing, pair, server, figures: {} };
}

/** A server that does not come back leaves the next tests failed (each tries again), not the run dead. */
async function restartServer(running: Running): Promise<void> {
  await running.server.restart().catch((error: unknown) => {
    console.log(`  iperf3 server of ${running.pairing.label} did not restart: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
  });
}

function sides(pair: Pair): [SideNames, SideNames] {
  return [
    { namespace: pair.a.namespace, tunnel: pair.a.interfaceName, veth: pair.veth.a, port: pair.a.port },
    { namespace: pair.b.namespace, tunnel: pair.b.interfaceName, veth: pair.veth.b, port: pair.b.port },
  ];
}

async function measure(running: Running, measurement: Measurement, duration: number, counters: boolean): Promise<string> {
  const { pair } = running;
  const [left, right] = sides(pair);
  const countersBefore = counters && measurement.group === 'udp' ? [readSide(left), readSide(right)] : null;
  let drops = '';
  const cpuBefore = [cpuSeconds(pair.a.process.pid), cpuSeconds(pair.b.process.pid)];
  let values: (number | null)[];
  let summary: string;
  let failed = false;
  if (measurement.iperf3 === undefined) {
    try {
      const result = await runPing(pair.a.namespace, pair.b.inner4, E2E_PING_COUNT, E2E_PING_INTERVAL_SECONDS);
      const lost = (100 * (result.sent - result.rttsMs.length)) / result.sent;
      values = [median(result.rttsMs), mean(result.rttsMs), lost];
      failed = result.rttsMs.length === 0;
      summary = `p50 ${values[0]?.toFixed(3)} ms, avg ${values[1]?.toFixed(3)} ms, ${result.rttsMs.length}/${result.sent} replies`;
    } catch (error) {
      // A ping run past its time limit is a failed sample, and the run goes on.
      values = measurement.figures.map(() => null);
      failed = true;
      summary = `FAILED: ${error instanceof Error ? error.message : String(error)}`;
    }
  } else {
    const test = measurement.iperf3;
    try {
      const result = await runIperf3(pair.a.namespace, pair.b.inner4, test, duration);
      if (test.protocol === 'tcp') {
        values = [result.mbitPerSecond];
        summary = `${result.mbitPerSecond.toFixed(0)} Mbit/s`;
      } else {
        values = [result.receivedPacketsPerSecond! / 1000, result.lossPercent];
        summary = `${values[0]!.toFixed(1)} kpps received, ${result.lossPercent!.toFixed(1)} % lost`;
        if (countersBefore !== null) {
          const [leftDelta, rightDelta] = [difference(readSide(left), countersBefore[0]!), difference(readSide(right), countersBefore[1]!)];
          const [sender, receiver] = test.reverse ? [rightDelta, leftDelta] : [leftDelta, rightDelta];
          const sent = result.sentPackets!;
          drops = `\n      drops: ${dropLine(sender, receiver, sent, sent * (1 - result.lossPercent! / 100))}`;
        }
      }
    } catch (error) {
      // A failed test (e.g. the control connection starved) is counted as failed, and the run goes on.
      values = measurement.figures.map(() => null);
      failed = true;
      summary = `FAILED: ${error instanceof Error ? error.message : String(error)}`;
      await restartServer(running);
    }
  }
  const cpu = [cpuSeconds(pair.a.process.pid) - cpuBefore[0]!, cpuSeconds(pair.b.process.pid) - cpuBefore[1]!];
  measurement.figures.forEach((name, i) => record(running, name, values[i] ?? null));
  cpuFigures(measurement.name).forEach((name, i) => record(running, name, failed ? null : cpu[i]!));
  await new Promise((resolve) => setTimeout(resolve, E2E_SETTLE_MS));
  return `${summary}; CPU s ${cpu[0]!.toFixed(2)} / ${cpu[1]!.toFixed(2)}${drops}`;
}

function recordMemory(running: Running): void {
  record(running, 'peak RSS left (MiB)', memory(running.pair.a.process.pid).hwm / MIB);
  record(running, 'peak RSS right (MiB)', memory(running.pair.b.process.pid).hwm / MIB);
}

function result(running: Running): PairingResult {
  const { id, label, left, right, env } = running.pairing;
  return { id, label, left, right, env, figures: running.figures };
}

async function main(): Promise<void> {
  const options = parseOptions();
  requireRoot('bench:e2e');
  setNamePrefix(E2E_NAME_PREFIX);
  // What an earlier, killed run of this benchmark left behind goes first.
  reapLeftovers(E2E_NAME_PREFIX);
  requireCommands('ip', 'wg', 'wireguard-go', 'iperf3', 'ping', 'ss');
  const machine = machineInfo();
  const startedAt = new Date();
  const plan = measurements(options.mtu, options.groups);
  console.log(`bench:e2e — ${machineLine(machine)}`);
  console.log(`${options.rounds} round(s), ${options.duration} s per iperf3 test, MTU ${options.mtu}, tests: ${options.groups.join(', ')}`);
  console.log(`time limits: ${describeIperf3TimeLimit(options.duration)}, ${describePingTimeLimit(E2E_PING_COUNT, E2E_PING_INTERVAL_SECONDS)}; a run past its limit counts as failed`);
  console.log(`pairings: ${options.pairings.map((pairing) => `${pairing.label} [${pairing.id}]`).join(', ')}`);

  const runs: Running[] = [];
  for (const pairing of options.pairings) {
    runs.push(await setUp(pairing, options.mtu));
    console.log(`  set up ${pairing.label}`);
  }
  // Warm-up (JIT, socket buffers, TCP metrics), not recorded.
  for (const run of runs) {
    await runIperf3(run.pair.a.namespace, run.pair.b.inner4, { protocol: 'tcp', streams: 1, reverse: false }, 1).catch(async (error: unknown) => {
      console.log(`  warm-up of ${run.pairing.label} failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
      await restartServer(run);
    });
  }

  // The harness's own CPU while it measures (it shares the cores with what it measures): printed, so it can be ruled out.
  const harnessCpuBefore = process.cpuUsage();
  const measuringSince = Date.now();
  for (let round = 0; round < options.rounds; round++) {
    for (const measurement of plan) {
      // Rotate the order every round, so no pairing is always first after a pause.
      for (let i = 0; i < runs.length; i++) {
        const run = runs[(i + round) % runs.length]!;
        const summary = await measure(run, measurement, options.duration, options.counters);
        console.log(`  round ${round + 1}  ${measurement.name.padEnd(12)}  ${run.pairing.label.padEnd(26)} ${summary}`);
      }
    }
  }
  for (const run of runs) recordMemory(run);
  const harnessCpu = process.cpuUsage(harnessCpuBefore);
  const harnessCpuSeconds = (harnessCpu.user + harnessCpu.system) / 1e6;
  const measuringSeconds = (Date.now() - measuringSince) / 1000;

  const elapsedSeconds = (Date.now() - startedAt.getTime()) / 1000;
  const document: E2eDocument = {
    kind: E2E_DOCUMENT_KIND,
    machine,
    options: { rounds: options.rounds, duration: options.duration, mtu: options.mtu, pairings: options.pairings.map((p) => p.id), tests: options.groups },
    startedAt: startedAt.toISOString(),
    elapsedSeconds,
    harnessCpuSeconds,
    pairings: runs.map(result),
  };
  const { headers, rows } = resultTable(document, REFERENCE_PAIRING);
  console.log(`\n${formatTable(headers, rows)}\n`);
  console.log(`(${elapsedSeconds.toFixed(0)} s; median (min–max) over ${options.rounds} round(s), n=ok/attempted where a test failed; "left" is the first-named side, the iperf3 client)`);
  console.log(`the harness itself used ${harnessCpuSeconds.toFixed(2)} CPU s in ${measuringSeconds.toFixed(0)} s of measuring (${((100 * harnessCpuSeconds) / measuringSeconds).toFixed(2)} % of one core)`);
  const command = `bench:e2e --rounds ${options.rounds} --duration ${options.duration} --mtu ${options.mtu}`;
  console.log(`\nmarkdown:\n\n${machineLine(machine)}. \`${command}\`.\n\n${markdownTable(headers, rows)}`);
  if (options.baseline !== undefined) {
    const comparison = baselineTable(document, options.baseline);
    console.log(`\nagainst the baseline (${machineLine(options.baseline.machine)}, ${options.baseline.startedAt}):\n\n${formatTable(comparison.headers, comparison.rows)}`);
  }
  if (options.json !== undefined) {
    writeFileSync(options.json, `${JSON.stringify(document, null, 2)}\n`);
    console.log(`\nJSON written to ${options.json}`);
  }
}

try {
  await main();
} finally {
  cleanup();
}
