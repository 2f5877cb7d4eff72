/**
 * Helpers for tests that need network namespaces, veth pairs and processes
 * running inside namespaces (interop tests against wireguard-go, later the
 * device and platform suites).
 *
 * Everything created through this module is recorded in a cleanup registry
 * and removed by cleanup(): call it from afterAll. As a last resort the
 * registry also runs on process 'exit', SIGINT, SIGTERM and SIGHUP, so a
 * crashed or interrupted run does not leave namespaces, links, processes or
 * secret files behind. cleanup() is synchronous and idempotent.
 * A run killed outright (SIGKILL, a CI timeout) still leaves them: reap-leftovers.ts
 * removes those when the next run starts.
 *
 * Names are unique per run: `tswgt-<pid base36>[.<worker thread id>]-<n base36>` (a
 * benchmark may set its own prefix: setNamePrefix),
 * at most 15 bytes so that they are valid interface names too.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';

export const NAME_PREFIX = 'tswgt-';
/** Longest prefix setNamePrefix accepts: as long as NAME_PREFIX, so names stay within IFNAMSIZ. */
const MAX_NAME_PREFIX = NAME_PREFIX.length;
let namePrefix = NAME_PREFIX;

/** Name what this process creates `<prefix><pid>-<n>` instead (a benchmark marks its namespaces as its own). */
export function setNamePrefix(prefix: string): void {
  if (!/^[a-z0-9-]+$/.test(prefix) || prefix.length > MAX_NAME_PREFIX) {
    throw new Error(`name prefix ${JSON.stringify(prefix)}: 1..${MAX_NAME_PREFIX} characters of a-z, 0-9 and -`);
  }
  namePrefix = prefix;
}
/** IFNAMSIZ - 1. */
const MAX_INTERFACE_NAME = 15;

// ---- names -----------------------------------------------------------------

/** Shared through globalThis so that two copies of this module in one process never hand out the same name. */
const counterKey = Symbol.for('tswg.test.netns.counter');
const globalState = globalThis as unknown as Record<symbol, number | undefined>;

/** A name no other run (and no earlier call) uses; valid as a namespace and as an interface name. */
export function uniqueName(): string {
  const n = (globalState[counterKey] ?? 0) + 1;
  globalState[counterKey] = n;
  const thread = threadId > 0 ? `.${threadId.toString(36)}` : '';
  const name = `${namePrefix}${process.pid.toString(36)}${thread}-${n.toString(36)}`;
  if (name.length > MAX_INTERFACE_NAME) {
    throw new Error(`generated test name ${name} is longer than ${MAX_INTERFACE_NAME} bytes (IFNAMSIZ)`);
  }
  return name;
}

// ---- preconditions ---------------------------------------------------------

/**
 * Fail (never skip) when not root: CI always runs these suites as root, and a
 * privileged suite that silently skips hides a broken environment.
 */
export function requireRoot(suite = 'this test suite'): void {
  const uid = process.getuid?.();
  if (uid !== 0) {
    throw new Error(
      `${suite} needs root (network namespaces, veth pairs, TUN devices) but runs as uid ${uid ?? 'unknown'}. ` +
        'Run it as root (e.g. `sudo npx vitest run test/interop/`); it deliberately fails instead of skipping.',
    );
  }
}

/** Fail with a clear message when one of the commands is not on PATH. */
export function requireCommands(...commands: string[]): void {
  const missing = commands.filter((command) => {
    try {
      execFileSync('sh', ['-c', 'command -v "$1"', 'sh', command], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) throw new Error(`required command(s) not found on PATH: ${missing.join(', ')}`);
}

// ---- cleanup registry ------------------------------------------------------

/** Lower runs first: processes must die before their namespace goes, files last. */
const PRIORITY = { process: 0, link: 1, namespace: 2, file: 3, other: 4 } as const;
export type CleanupKind = keyof typeof PRIORITY;

interface CleanupEntry {
  id: number;
  kind: CleanupKind;
  description: string;
  run: () => void;
}

let entries: CleanupEntry[] = [];
let nextEntryId = 1;
let handlersInstalled = false;
/** Every namespace this module created, also after cleanup: for leftover checks. */
const namespacesCreated: string[] = [];
const linksCreated: { name: string; namespace: string | null }[] = [];

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function onExit(): void {
  cleanupQuietly();
}

function onSignal(signal: NodeJS.Signals): void {
  cleanupQuietly();
  uninstallHandlers();
  // Re-raise so the default action (or the other listeners) still ends the process.
  process.kill(process.pid, signal);
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', onExit);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}

function uninstallHandlers(): void {
  if (!handlersInstalled) return;
  handlersInstalled = false;
  process.off('exit', onExit);
  for (const signal of SIGNALS) process.off(signal, onSignal);
}

/** Register a synchronous clean-up step. Returns a function that runs it now (once) and unregisters it. */
export function registerCleanup(kind: CleanupKind, description: string, run: () => void): () => void {
  const entry: CleanupEntry = { id: nextEntryId++, kind, description, run };
  entries.push(entry);
  installHandlers();
  return () => {
    const index = entries.indexOf(entry);
    if (index < 0) return;
    entries.splice(index, 1);
    entry.run();
  };
}

/**
 * Remove everything created so far: processes, then links, then namespaces,
 * then files (newest first within each kind). Idempotent. Every step runs even
 * when an earlier one fails; the failures are thrown together at the end.
 */
export function cleanup(): void {
  const pending = entries;
  entries = [];
  pending.sort((a, b) => PRIORITY[a.kind] - PRIORITY[b.kind] || b.id - a.id);
  const failures: string[] = [];
  for (const entry of pending) {
    try {
      entry.run();
    } catch (error) {
      failures.push(`${entry.description}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (entries.length === 0) uninstallHandlers();
  if (failures.length > 0) throw new Error(`test cleanup failed:\n  ${failures.join('\n  ')}`);
}

function cleanupQuietly(): void {
  try {
    cleanup();
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  }
}

// ---- commands --------------------------------------------------------------

export interface ExecOptions {
  /** Milliseconds; default 10 s. */
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
}

function describeCommand(argv: string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Run a command to completion and return its stdout; throws with stderr and exit status on failure. */
export function run(command: string, args: readonly string[] = [], options: ExecOptions = {}): string {
  const argv = [command, ...args];
  try {
    return execFileSync(command, args, {
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 10_000,
      input: options.input ?? '',
      env: options.env ?? process.env,
    });
  } catch (error) {
    const e = error as { status?: number | null; signal?: string | null; stderr?: string; stdout?: string; message?: string };
    const status = e.signal ? `signal ${e.signal}` : `exit status ${e.status ?? 'unknown'}`;
    const stderr = (e.stderr ?? '').trim();
    const stdout = (e.stdout ?? '').trim();
    throw new Error(
      `command failed (${status}): ${describeCommand(argv)}` +
        (stderr ? `\n  stderr: ${stderr}` : '') +
        (stdout ? `\n  stdout: ${stdout}` : '') +
        (!stderr && !stdout && e.message ? `\n  ${e.message}` : ''),
    );
  }
}

/** The argv that runs `command args` inside `namespace` (null: the current namespace). */
export function namespaceArgv(namespace: string | null, command: string, args: readonly string[]): [string, string[]] {
  if (namespace === null) return [command, [...args]];
  return ['ip', ['netns', 'exec', namespace, command, ...args]];
}

/** Run a command inside a namespace (`ip netns exec`); null runs it here. */
export function execIn(namespace: string | null, command: string, args: readonly string[] = [], options: ExecOptions = {}): string {
  const [cmd, argv] = namespaceArgv(namespace, command, args);
  return run(cmd, argv, options);
}

/** `ip [-n namespace] args...` */
export function ip(namespace: string | null, ...args: string[]): string {
  return run('ip', namespace === null ? args : ['-n', namespace, ...args]);
}

// ---- namespaces and links --------------------------------------------------

export function listNamespaces(): string[] {
  return run('ip', ['netns', 'list'])
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((name) => name !== '');
}

function linkExists(name: string, namespace: string | null): boolean {
  try {
    ip(namespace, 'link', 'show', 'dev', name);
    return true;
  } catch {
    return false;
  }
}

/** Create a namespace (registered for removal) with its loopback up. */
export function createNamespace(name = uniqueName()): string {
  run('ip', ['netns', 'add', name]);
  namespacesCreated.push(name);
  registerCleanup('namespace', `delete namespace ${name}`, () => {
    if (!listNamespaces().includes(name)) return;
    run('ip', ['netns', 'delete', name]);
  });
  ip(name, 'link', 'set', 'lo', 'up');
  return name;
}

export interface VethPair {
  /** The end that stays in the current (root) namespace, or in options.hostNamespace. */
  host: { name: string; namespace: string | null };
  /** The end moved into the namespace. */
  peer: { name: string; namespace: string };
}

export interface VethOptions {
  hostName?: string;
  peerName?: string;
  /** Where the host end lives; default null, the namespace of the test process. */
  hostNamespace?: string | null;
}

/** Create a veth pair and move one end into `namespace`. Both ends are left down and without addresses. */
export function createVethPair(namespace: string, options: VethOptions = {}): VethPair {
  const hostName = options.hostName ?? uniqueName();
  const peerName = options.peerName ?? uniqueName();
  const hostNamespace = options.hostNamespace ?? null;
  ip(hostNamespace, 'link', 'add', hostName, 'type', 'veth', 'peer', 'name', peerName);
  linksCreated.push({ name: hostName, namespace: hostNamespace });
  // Deleting either end deletes the pair; the namespace going away deletes it as well.
  registerCleanup('link', `delete veth ${hostName}`, () => {
    if (hostNamespace !== null && !listNamespaces().includes(hostNamespace)) return;
    if (linkExists(hostName, hostNamespace)) ip(hostNamespace, 'link', 'delete', 'dev', hostName);
  });
  ip(hostNamespace, 'link', 'set', 'dev', peerName, 'netns', namespace);
  return { host: { name: hostName, namespace: hostNamespace }, peer: { name: peerName, namespace } };
}

/** Give a link an address (CIDR form) and bring it up. */
export function addressAndUp(namespace: string | null, link: string, cidr: string): void {
  ip(namespace, 'addr', 'add', cidr, 'dev', link);
  ip(namespace, 'link', 'set', 'dev', link, 'up');
}

export interface Subnet30 {
  /** e.g. "198.18.3.4" */
  network: string;
  /** The first host address (network + 1). */
  first: string;
  /** The second host address (network + 2). */
  second: string;
  prefixLength: 30;
}

const allocatedSubnets = new Set<number>();

function ipv4ToNumber(address: string): number {
  return address.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

function numberToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/**
 * A random /30 from the RFC 2544 benchmarking range 198.18.0.0/16 (198.19.0.0/16
 * is left for tunnel-inner addresses) that no address of the current namespace
 * falls into and that this process has not handed out before.
 */
export function randomBenchmarkSubnet30(): Subnet30 {
  const inUse = run('ip', ['-4', '-o', 'addr', 'show'])
    .split('\n')
    .map((line) => /\binet (\d+\.\d+\.\d+\.\d+)/.exec(line)?.[1])
    .filter((address): address is string => address !== undefined)
    .map((address) => Math.floor(ipv4ToNumber(address) / 4) * 4);
  const base = ipv4ToNumber('198.18.0.0');
  for (let attempt = 0; attempt < 1000; attempt++) {
    const network = base + 4 * Math.floor(Math.random() * 16384);
    if (allocatedSubnets.has(network) || inUse.includes(network)) continue;
    allocatedSubnets.add(network);
    return { network: numberToIpv4(network), first: numberToIpv4(network + 1), second: numberToIpv4(network + 2), prefixLength: 30 };
  }
  throw new Error('no free /30 left in 198.18.0.0/16');
}

// ---- files -----------------------------------------------------------------

/** A private temporary directory (mode 0700), removed by cleanup(). */
export function createTempDir(prefix = 'tswg-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  registerCleanup('file', `remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Write a file readable by its owner only (keys for `wg set`). */
export function writeSecretFile(dir: string, name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

/** Remove a path that something else (e.g. a daemon) creates, as part of cleanup(). */
export function registerPathForRemoval(path: string): void {
  registerCleanup('file', `remove ${path}`, () => rmSync(path, { recursive: true, force: true }));
}

// ---- processes -------------------------------------------------------------

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

/** True when the process no longer runs (gone, or a zombie that has released its namespaces). */
export function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface NamespaceProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  /** True until the process has exited. */
  running(): boolean;
  /** Everything it wrote to stdout and stderr so far (the last 256 KiB). */
  output(): string;
  /** SIGTERM, then SIGKILL after graceMs; resolves when it has exited. */
  stop(graceMs?: number): Promise<ExitStatus>;
  /** The same, synchronous (for cleanup paths where the event loop no longer runs). */
  stopSync(graceMs?: number): void;
  /** Wait for exit at most timeoutMs; rejects with its output when it is still running. */
  waitForExit(timeoutMs: number): Promise<ExitStatus>;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  /** For messages; default: the command. */
  name?: string;
}

const MAX_CAPTURED_OUTPUT = 256 * 1024;

/**
 * Start a long-running process inside `namespace` (null: here). `ip netns exec`
 * execs the command, so the pid is the command's own. Registered for cleanup.
 */
export function startIn(namespace: string | null, command: string, args: readonly string[] = [], options: StartOptions = {}): NamespaceProcess {
  const [cmd, argv] = namespaceArgv(namespace, command, args);
  const name = options.name ?? command;
  const child = spawn(cmd, argv, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let captured = '';
  const capture = (chunk: Buffer): void => {
    captured += chunk.toString('utf8');
    if (captured.length > MAX_CAPTURED_OUTPUT) captured = captured.slice(-MAX_CAPTURED_OUTPUT);
  };
  child.stdout?.on('data', capture);
  child.stderr?.on('data', capture);
  let exitStatus: ExitStatus | null = null;
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('error', (error) => {
      capture(Buffer.from(`\n[spawn error: ${error.message}]\n`));
      if (exitStatus === null) exitStatus = { code: null, signal: null };
      resolve(exitStatus);
    });
    child.once('exit', (code, signal) => {
      exitStatus = { code, signal };
      resolve(exitStatus);
    });
  });
  if (child.pid === undefined) throw new Error(`could not start ${describeCommand([cmd, ...argv])}`);
  const pid = child.pid;
  const running = (): boolean => exitStatus === null && child.exitCode === null && child.signalCode === null;

  const stopSync = (graceMs = 2000): void => {
    if (!running()) return;
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      if (!running()) return;
      try {
        process.kill(pid, signal);
      } catch {
        return; // ESRCH: already gone
      }
      const deadline = Date.now() + (signal === 'SIGTERM' ? graceMs : 5000);
      while (Date.now() < deadline) {
        if (processGone(pid)) return;
        sleepSync(10);
      }
    }
    if (!processGone(pid)) throw new Error(`${name} (pid ${pid}) survived SIGKILL`);
  };

  const waitForExit = async (timeoutMs: number): Promise<ExitStatus> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${name} (pid ${pid}) still running after ${timeoutMs} ms; output:\n${captured}`)), timeoutMs);
    });
    try {
      return await Promise.race([exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };

  const stop = async (graceMs = 2000): Promise<ExitStatus> => {
    if (!running()) return exited;
    try {
      child.kill('SIGTERM');
      return await waitForExit(graceMs);
    } catch {
      child.kill('SIGKILL');
      return waitForExit(5000);
    }
  };

  registerCleanup('process', `stop ${name} (pid ${pid})`, () => stopSync());
  return { name, pid, child, exited, running, output: () => captured, stop, stopSync, waitForExit };
}

// ---- waiting ---------------------------------------------------------------

/** Poll until `condition` returns true; rejects with `description` after timeoutMs. */
export async function waitUntil(condition: () => boolean, description: string, timeoutMs = 5000, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (condition()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

// ---- leftovers -------------------------------------------------------------

/** Namespaces and links this module created that still exist (empty after a clean cleanup()). */
export function leftovers(): string[] {
  const present = new Set(listNamespaces());
  const left = namespacesCreated.filter((name) => present.has(name)).map((name) => `namespace ${name}`);
  for (const link of linksCreated) {
    if (link.namespace !== null && !present.has(link.namespace)) continue;
    if (linkExists(link.name, link.namespace)) left.push(`link ${link.name}`);
  }
  return left;
}
