/**
 * Helpers for the daemon-mode and stock-tool tests (test/device/daemon.test.ts,
 * test/device/wg-tools.test.ts): run tswg / wg / wg-quick to completion with
 * captured output, find the detached daemons they leave behind (by their
 * unique interface name), and register those daemons and their UAPI sockets
 * with the netns cleanup registry.
 *
 * Interface names come from uniqueName() (pid-based), so looking daemons up
 * by "an argument equals the interface name" only ever finds processes this
 * test run started.
 */
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { namespaceArgv, processGone, registerCleanup, run } from '../../scripts/lib/netns.js';
import { TSWG_BIN, UAPI_DIRECTORY } from '../../scripts/lib/topology.js';

export { TSWG_BIN, UAPI_DIRECTORY };

export interface CommandResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall-clock time until the command had exited AND closed its stdout/stderr pipes. */
  elapsedMs: number;
}

export interface CommandOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  input?: string;
}

/**
 * Run `command args` (inside `namespace`, or here for null) to completion with
 * stdout and stderr as pipes. Never throws for a non-zero exit: the caller
 * asserts on the result. spawnSync returns only once the pipes are closed, so
 * a daemon that kept them open would make this time out.
 */
export function runCommand(namespace: string | null, command: string, args: readonly string[], options: CommandOptions = {}): CommandResult {
  const [cmd, argv] = namespaceArgv(namespace, command, args);
  const started = Date.now();
  const result = spawnSync(cmd, argv, {
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
    input: options.input ?? '',
    // Only matters when a command hangs; two Node start-ups on a loaded 2-core machine can take over 15 s.
    timeout: options.timeoutMs ?? 40_000,
    killSignal: 'SIGKILL',
    env: options.env ?? process.env,
  });
  if (result.error !== undefined && (result.error as NodeJS.ErrnoException).code !== 'ETIMEDOUT') throw result.error;
  return {
    status: result.status,
    signal: result.signal,
    stdout: result.stdout ?? '',
    stderr: result.stderr ?? '',
    elapsedMs: Date.now() - started,
  };
}

/** One line for assertion messages. */
export function describeResult(result: CommandResult): string {
  return `status=${result.status} signal=${result.signal} after ${result.elapsedMs} ms\n--- stdout:\n${result.stdout}--- stderr:\n${result.stderr}`;
}

/** The environment tswg would get from a clean shell: none of the variables that change how it starts. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of ['LOG_LEVEL', 'WG_PROCESS_FOREGROUND', 'TSWG_READY_FD', 'WG_TUN_FD', 'WG_UAPI_FD']) delete env[key];
  return { ...env, ...extra };
}

/** `tswg args...` inside `namespace`, to completion. */
export function runTswg(namespace: string | null, args: readonly string[], options: CommandOptions = {}): CommandResult {
  return runCommand(namespace, TSWG_BIN, args, { ...options, env: options.env ?? cleanEnv() });
}

// ---- sockets ---------------------------------------------------------------

export function socketPath(interfaceName: string): string {
  return `${UAPI_DIRECTORY}/${interfaceName}.sock`;
}

/**
 * Make sure /var/run/wireguard exists (mode 0755, as wireguard-go and tswg create it). When this
 * call creates it, cleanup() removes it again if it is empty by then.
 */
export function ensureSocketDirectory(): void {
  if (pathExists(UAPI_DIRECTORY)) return;
  mkdirSync(UAPI_DIRECTORY, { recursive: true, mode: 0o755 });
  registerCleanup('other', `remove ${UAPI_DIRECTORY} if empty`, () => {
    try {
      rmdirSync(UAPI_DIRECTORY);
    } catch {
      // not empty: other interfaces use it
    }
  });
}

export function isSocket(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

export function pathExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

// ---- processes ---------------------------------------------------------------

export function processArgv(pid: number): string[] | null {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (raw === '') return null; // zombie or kernel thread
    return raw.replace(/\0$/, '').split('\0');
  } catch {
    return null;
  }
}

export { processGone };

/** Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, session, ...]. */
export function processStat(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).trim().split(' ');
  } catch {
    return null;
  }
}

/**
 * Live processes that serve `interfaceName`: tswg (bin/tswg ... IFNAME ..., also
 * its detached `--foreground IFNAME` copy) or wireguard-go (... IFNAME).
 */
export function daemonPids(interfaceName: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const argv = processArgv(pid);
    if (argv === null || !argv.slice(1).includes(interfaceName)) continue;
    const isTswg = argv.some((arg) => arg === TSWG_BIN || arg.endsWith('/bin/tswg'));
    const isWireguardGo = argv.some((arg) => arg === 'wireguard-go' || arg.endsWith('/wireguard-go'));
    if ((isTswg || isWireguardGo) && !processGone(pid)) pids.push(pid);
  }
  return pids;
}

/** The name of the network namespace `pid` lives in ('' when it is not a named one). */
export function namespaceOf(pid: number): string {
  return run('ip', ['netns', 'identify', String(pid)]).trim();
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

/** SIGTERM every process serving `interfaceName`, SIGKILL what is left after graceMs. Synchronous. */
export function killDaemons(interfaceName: string, graceMs = 3000): void {
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const pids = daemonPids(interfaceName);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
    const deadline = Date.now() + (signal === 'SIGTERM' ? graceMs : 5000);
    while (Date.now() < deadline && pids.some((pid) => !processGone(pid))) sleepSync(20);
  }
  const survivors = daemonPids(interfaceName);
  if (survivors.length > 0) throw new Error(`daemon(s) for ${interfaceName} survived SIGKILL: ${survivors.join(', ')}`);
}

/**
 * Register clean-up for a daemon that some command will start for
 * `interfaceName` (tswg in daemon mode, wg-quick): its processes are stopped
 * with the other processes, its socket removed with the files.
 */
export function trackDaemon(interfaceName: string): void {
  registerCleanup('process', `stop daemons of ${interfaceName}`, () => killDaemons(interfaceName));
  registerCleanup('file', `remove ${socketPath(interfaceName)}`, () => rmSync(socketPath(interfaceName), { force: true }));
}

/** Poll (asynchronously) until `condition` holds; returns the elapsed milliseconds, throws after timeoutMs. */
export async function waitFor(condition: () => boolean, description: string, timeoutMs = 5000, intervalMs = 20): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (condition()) return Date.now() - started;
    if (Date.now() - started >= timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

// ---- links -------------------------------------------------------------------

/** `ip -d link show NAME` in `namespace`, or null when there is no such link. */
export function linkDetails(namespace: string | null, name: string): string | null {
  const result = runCommand(null, 'ip', [...(namespace === null ? [] : ['-n', namespace]), '-d', 'link', 'show', 'dev', name]);
  return result.status === 0 ? result.stdout : null;
}

export function linkExists(namespace: string | null, name: string): boolean {
  return linkDetails(namespace, name) !== null;
}
