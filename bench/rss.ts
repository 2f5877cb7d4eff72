/**
 * Idle memory of the tswg daemons: `tswg -f INTERFACE` (the WireGuard daemon
 * wg-quick starts) on a real TUN in its own network namespace, and the overlay
 * node (`tswg node`). For each, the resident set (VmRSS) a few seconds after
 * start-up and the modules it loads (counted in a separate traced start, since
 * the tracing hooks take memory of their own).
 *
 *   node dist/bench/rss.js [--runs 5] [--settle-ms 3000] [--bin LABEL=PATH/bin/tswg ...] [--no-node]
 *
 * Several --bin builds (e.g. the unchanged one and this one) are started in
 * turn within each run, so a machine's drift falls on all of them alike.
 * Reports the median and min–max of the runs. Needs root (namespaces, TUN).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBenchArgs } from './lib/command-line.js';
import { machineLine } from './lib/machine.js';
import { median } from './lib/stats.js';

const KIB_PER_MIB = 1024;
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const POLL_MS = 50;

interface Options {
  runs: number;
  settleMs: number;
  bins: Array<{ label: string; path: string }>;
  node: boolean;
}

function parseOptions(): Options {
  const { values } = parseBenchArgs({
    npmScript: 'bench:rss',
    measures: "idle RSS and the tswg modules loaded of the WireGuard daemon and the node daemon, each build's runs alternated (root)",
    options: {
      runs: { type: 'string', value: 'N', default: '5', description: 'starts of each daemon per build' },
      'settle-ms': { type: 'string', value: 'MS', default: '3000', description: 'wait after the daemon serves before RSS is read' },
      'no-node': { type: 'boolean', description: 'measure the WireGuard daemon only' },
      bin: { type: 'string', multiple: true, default: [], value: 'LABEL=PATH', shownDefault: 'this build', description: "a build's bin/tswg to measure; repeatable" },
    },
  });
  const options: Options = { runs: Number(values.runs), settleMs: Number(values['settle-ms']), bins: [], node: values['no-node'] !== true };
  for (const bin of values.bin ?? []) {
    const [label, path] = bin.split('=');
    if (label === undefined || path === undefined) throw new Error('--bin wants LABEL=PATH');
    options.bins.push({ label, path });
  }
  if (!Number.isInteger(options.runs) || options.runs < 1) throw new Error('--runs wants a positive integer');
  if (options.bins.length === 0) options.bins.push({ label: 'this build', path: fileURLToPath(new URL('../../bin/tswg', import.meta.url)) });
  return options;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(check: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

/** A /proc/PID/status field in KiB (VmRSS, VmHWM), or null when the process is gone. */
function statusKib(pid: number, field: string): number | null {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? null : Number(match[1]);
  } catch {
    return null;
  }
}

type Daemon = 'wireguard' | 'node';

interface Start {
  rssMib: number;
  modules: number | null;
}

/** Starts one daemon of `bin` in a fresh namespace, waits until it serves and settles, reads what is asked, stops it. */
async function startOnce(bin: string, daemon: Daemon, tag: string, settleMs: number, traceFile: string | null): Promise<Start> {
  const namespace = `tswg-rss-${process.pid}-${tag}`;
  const scratch = mkdtempSync(join(tmpdir(), 'tswg-rss-'));
  const iface = `rss${tag}`.slice(0, 15);
  const uapiSocket = `/var/run/wireguard/${iface}.sock`;
  const controlSocket = join(scratch, 'node.sock');
  execFileSync('ip', ['netns', 'add', namespace]);
  let child: ChildProcess | null = null;
  try {
    const nodeArgs = traceFile === null ? [] : ['--import', fileURLToPath(new URL('./lib/module-trace.js', import.meta.url))];
    const tswgArgs = daemon === 'wireguard' ? ['-f', iface] : ['node', '--data-dir', join(scratch, 'data'), '--control', controlSocket];
    const env = { ...process.env, LOG_LEVEL: 'error', ...(traceFile === null ? {} : { MODULE_TRACE_FILE: traceFile }) };
    // nsenter execs node itself, so the child's PID is the daemon's.
    child = spawn('nsenter', [`--net=/run/netns/${namespace}`, process.execPath, ...nodeArgs, bin, ...tswgArgs], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    let spawnError: Error | null = null;
    child.once('error', (error) => {
      spawnError = error;
    });
    const exited = new Promise<void>((resolve) => child!.once('exit', () => resolve()));
    await waitFor(() => existsSync(daemon === 'wireguard' ? uapiSocket : controlSocket) || child!.exitCode !== null || spawnError !== null, `${daemon} daemon to serve`, START_TIMEOUT_MS);
    if (spawnError !== null) throw new Error(`cannot start nsenter: ${(spawnError as Error).message}`);
    if (child.exitCode !== null) throw new Error(`${bin} ${tswgArgs.join(' ')} exited ${child.exitCode} before serving`);
    await sleep(settleMs);
    const rssKib = statusKib(child.pid!, 'VmRSS');
    if (rssKib === null) throw new Error(`${daemon} daemon ended during the settle`);
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(STOP_TIMEOUT_MS)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    const modules = traceFile === null ? null : new Set(readFileSync(traceFile, 'utf8').split('\n').filter((url) => url.includes('/dist/src/'))).size;
    return { rssMib: rssKib / KIB_PER_MIB, modules };
  } finally {
    if (child !== null && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    execFileSync('ip', ['netns', 'del', namespace]);
    rmSync(scratch, { recursive: true, force: true });
    rmSync(uapiSocket, { force: true });
  }
}

function summary(values: number[], digits: number): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `${median(sorted)!.toFixed(digits)} (${sorted[0]!.toFixed(digits)}–${sorted[sorted.length - 1]!.toFixed(digits)})`;
}

async function main(): Promise<void> {
  const options = parseOptions();
  const daemons: Daemon[] = options.node ? ['wireguard', 'node'] : ['wireguard'];
  process.stdout.write(`${machineLine()}\n`);
  process.stdout.write(`idle RSS ${options.settleMs} ms after serving, ${options.runs} runs, builds alternated within each run\n`);
  const traceDir = mkdtempSync(join(tmpdir(), 'tswg-rss-trace-'));
  const results = new Map<string, { rss: number[]; modules: number }>();
  try {
    for (const daemon of daemons) {
      for (const [b, bin] of options.bins.entries()) {
        const traceFile = join(traceDir, `${daemon}-${b}.txt`);
        const { modules } = await startOnce(bin.path, daemon, `m${b}${daemon[0]}`, options.settleMs, traceFile);
        results.set(`${daemon}\t${bin.label}`, { rss: [], modules: modules! });
      }
    }
    for (let run = 0; run < options.runs; run++) {
      for (const daemon of daemons) {
        for (const [b, bin] of options.bins.entries()) {
          const { rssMib } = await startOnce(bin.path, daemon, `r${run}${b}${daemon[0]}`, options.settleMs, null);
          results.get(`${daemon}\t${bin.label}`)!.rss.push(rssMib);
        }
      }
    }
  } finally {
    rmSync(traceDir, { recursive: true, force: true });
  }
  process.stdout.write('daemon\tbuild\ttswg modules loaded\tidle RSS MiB median (min–max)\n');
  for (const [key, { rss, modules }] of results) process.stdout.write(`${key}\t${modules}\t${summary(rss, 1)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench rss: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
