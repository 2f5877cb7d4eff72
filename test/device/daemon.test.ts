/**
 * `tswg [-f|--foreground] IFNAME`, started as wireguard-go is started (and as
 * wg-quick starts it): the TUN interface IFNAME (IFF_TUN | IFF_NO_PI, MTU
 * 1420), the UAPI socket /var/run/wireguard/IFNAME.sock, daemon mode vs
 * foreground, LOG_LEVEL, the clean exits (SIGINT, SIGTERM, `ip link del`)
 * and the errors a person can act on.
 *
 * Every tswg runs through `ip netns exec` in a namespace of its own with a
 * per-run unique interface name; everything (namespaces, the daemons found by
 * their interface name, sockets, files) is registered with the cleanup
 * registry of scripts/lib/netns.ts. Needs root; fails (does not skip) without.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { existsSync, lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanup,
  createNamespace,
  ip,
  leftovers,
  registerCleanup,
  registerPathForRemoval,
  requireCommands,
  requireRoot,
  startIn,
  uniqueName,
  type NamespaceProcess,
} from '../../scripts/lib/netns.js';
import { startImplementation } from '../../scripts/lib/topology.js';
import {
  TSWG_BIN,
  cleanEnv,
  daemonPids,
  describeResult,
  ensureSocketDirectory,
  isSocket,
  linkDetails,
  linkExists,
  namespaceOf,
  pathExists,
  processGone,
  processStat,
  runCommand,
  runTswg,
  socketPath,
  trackDaemon,
  waitFor,
} from '../helpers/daemon-process.js';

/**
 * How long a clean shutdown may take: below REKEY_TIMEOUT (5 s), the shortest protocol timer a leaked handle could
 * hold the exit for, with room for a loaded 2-core machine that gives the daemon a sliver of a CPU.
 */
const EXIT_WITHIN_MS = 4500;
/** Generous bound on a daemon-mode start on a loaded 2-core machine (two Node start-ups; over 15 s seen under load). */
const START_WITHIN_MS = 30_000;
const UNPRIVILEGED = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

const interfacesUsed: string[] = [];

interface Slot {
  ns: string;
  name: string;
}

/** A fresh namespace and a fresh interface name whose daemons and socket the cleanup registry knows about. */
function freshSlot(): Slot {
  const ns = createNamespace();
  const name = uniqueName();
  interfacesUsed.push(name);
  trackDaemon(name);
  return { ns, name };
}

/** The one daemon serving `name` (asserts there is exactly one). */
function onlyDaemon(name: string): number {
  const pids = daemonPids(name);
  expect(pids, `processes serving ${name}`).toHaveLength(1);
  return pids[0]!;
}

/** Start `tswg -f NAME` (or with other args) as a child we can watch; resolves once its socket exists. */
async function startForeground(slot: Slot, args: string[] = ['-f', slot.name], env: NodeJS.ProcessEnv = cleanEnv()): Promise<NamespaceProcess> {
  const child = startIn(slot.ns, TSWG_BIN, args, { name: `tswg ${slot.name}`, env });
  await waitFor(() => isSocket(socketPath(slot.name)) || !child.running(), `the UAPI socket of tswg ${slot.name}`, START_WITHIN_MS);
  if (!child.running()) throw new Error(`tswg ${slot.name} exited early:\n${child.output()}`);
  // tswg takes its signals before it creates the socket, so a signal from here on is handled; wg(8) proves it serves.
  await waitFor(() => runCommand(slot.ns, 'wg', ['show', slot.name]).status === 0, `wg show ${slot.name}`, START_WITHIN_MS);
  return child;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function wg(ns: string | null, ...args: string[]): ReturnType<typeof runCommand> {
  return runCommand(ns, 'wg', args);
}

/** Asserts the device still answers wg(8) and reports `name`. */
function expectServing(slot: Slot): void {
  const shown = wg(slot.ns, 'show', slot.name);
  expect(shown.status, describeResult(shown)).toBe(0);
  expect(shown.stdout).toContain(`interface: ${slot.name}`);
}

/** Asserts nothing of `name` is left: no process, no socket, no link in `ns`. */
function expectGone(slot: Slot): void {
  expect(daemonPids(slot.name), `processes serving ${slot.name}`).toEqual([]);
  expect(pathExists(socketPath(slot.name)), `${socketPath(slot.name)} exists`).toBe(false);
  expect(linkExists(slot.ns, slot.name), `link ${slot.name} in ${slot.ns}`).toBe(false);
}

/** Send `signal` to `pid` and wait until it is gone; returns how long that took. */
async function signalAndWait(pid: number, signal: NodeJS.Signals, what: string): Promise<number> {
  const started = Date.now();
  process.kill(pid, signal);
  await waitFor(() => processGone(pid), `${what} to exit after ${signal}`, EXIT_WITHIN_MS + 2000);
  return Date.now() - started;
}

// Several Node start-ups per test: on a loaded machine each can take seconds.
describe('tswg daemon mode and start-up (wireguard-go compatible)', { timeout: 180_000 }, () => {
  beforeAll(() => {
    requireRoot('the tswg daemon tests');
    requireCommands('ip', 'wg', 'wireguard-go', 'setpriv', 'unshare', 'mount');
    if (!existsSync(new URL('../../dist/src/cli/main.js', import.meta.url))) {
      throw new Error('dist/ is missing: run `npm run build` before these tests (bin/tswg runs dist/)');
    }
  });

  afterAll(() => {
    cleanup();
    expect(leftovers()).toEqual([]);
    for (const name of interfacesUsed) {
      expect(daemonPids(name), `processes serving ${name} after cleanup`).toEqual([]);
      expect(pathExists(socketPath(name)), `${socketPath(name)} after cleanup`).toBe(false);
    }
  });

  describe('command line', () => {
    it('--help explains the interface usage and exits 0; no argument prints the usage on stderr and exits 2; an unknown option exits 2', () => {
      const help = runTswg(null, ['--help']);
      expect(help.status, describeResult(help)).toBe(0);
      expect(help.stdout).toMatch(/tswg \[-f\|--foreground\] INTERFACE/);
      expect(help.stdout).toContain('/var/run/wireguard/INTERFACE.sock');
      expect(help.stdout).toContain('WG_PROCESS_FOREGROUND=1');
      expect(help.stdout).toContain('LOG_LEVEL=verbose|error|silent');

      const none = runTswg(null, []);
      expect(none.status, describeResult(none)).toBe(2);
      expect(none.stderr).toMatch(/Usage: tswg/);

      const slot = freshSlot();
      const unknown = runTswg(slot.ns, ['--bogus', slot.name]);
      expect(unknown.status, describeResult(unknown)).toBe(2);
      expect(unknown.stderr).toMatch(/unknown option '--bogus'/);
      const two = runTswg(slot.ns, ['-f', slot.name, 'second']);
      expect(two.status, describeResult(two)).toBe(2);
      expect(two.stderr).toMatch(/expected one interface name, got 2/);
      expectGone(slot);
    });
  });

  describe('daemon mode', () => {
    it('returns 0 promptly with pipes for stdout/stderr; at that moment the TUN interface (MTU 1420) and the socket exist; a detached process serves it', async () => {
      const slot = freshSlot();
      // spawnSync returns only when stdout and stderr are closed: a daemon holding them would time out here.
      const result = runTswg(slot.ns, [slot.name], { timeoutMs: START_WITHIN_MS + 5000 });
      const details = linkDetails(slot.ns, slot.name);
      const socketThere = isSocket(socketPath(slot.name));
      expect(result.status, describeResult(result)).toBe(0);
      expect(result.signal).toBeNull();
      expect(result.elapsedMs).toBeLessThan(START_WITHIN_MS);
      expect(result.stdout).toBe('');

      expect(details, `ip -d link show ${slot.name} right after tswg returned`).not.toBeNull();
      expect(details).toMatch(/<POINTOPOINT,MULTICAST,NOARP>/);
      expect(details).toMatch(/\bmtu 1420\b/);
      expect(details).toMatch(/link\/none/);
      expect(details).toMatch(/\btun type tun pi off\b/); // IFF_TUN | IFF_NO_PI
      expect(details).toMatch(/\bpersist off\b/);
      expect(socketThere, `${socketPath(slot.name)} right after tswg returned`).toBe(true);
      expect(lstatSync(socketPath(slot.name)).mode & 0o777).toBe(0o700);

      const pid = onlyDaemon(slot.name);
      expect(namespaceOf(pid)).toBe(slot.ns);
      const stat = processStat(pid)!;
      expect(stat[3], 'the daemon leads its own session (setsid), like wireguard-go').toBe(String(pid));
      // It holds none of the caller's pipes: its stdio is /dev/null.
      for (const fd of [0, 1, 2]) expect(readlinkFd(pid, fd)).toBe('/dev/null');

      expectServing(slot);
      const set = wg(slot.ns, 'set', slot.name, 'listen-port', '51820');
      expect(set.status, describeResult(set)).toBe(0);
      expect(wg(slot.ns, 'show', slot.name, 'listen-port').stdout.trim()).toBe('51820');

      // Taking the link down and up again is not "the interface is deleted".
      ip(slot.ns, 'link', 'set', 'dev', slot.name, 'up');
      ip(slot.ns, 'link', 'set', 'dev', slot.name, 'down');
      await sleep(300);
      expect(processGone(pid)).toBe(false);
      expectServing(slot);

      const took = await signalAndWait(pid, 'SIGTERM', `tswg daemon ${slot.name}`);
      expect(took).toBeLessThan(EXIT_WITHIN_MS);
      expectGone(slot);
    });

    it('a daemon stops on SIGINT, removing its socket and interface', async () => {
      const slot = freshSlot();
      const result = runTswg(slot.ns, [slot.name]);
      expect(result.status, describeResult(result)).toBe(0);
      const pid = onlyDaemon(slot.name);
      const took = await signalAndWait(pid, 'SIGINT', `tswg daemon ${slot.name}`);
      expect(took).toBeLessThan(EXIT_WITHIN_MS);
      expectGone(slot);
    });

    it('a daemon survives a rename of its interface and stops when it is deleted (ip link del), removing its socket', async () => {
      const slot = freshSlot();
      const result = runTswg(slot.ns, [slot.name]);
      expect(result.status, describeResult(result)).toBe(0);
      const pid = onlyDaemon(slot.name);
      // As with wireguard-go, the socket keeps the name the daemon was started with.
      const renamed = `${slot.name.slice(0, 13)}rn`;
      ip(slot.ns, 'link', 'set', 'dev', slot.name, 'name', renamed);
      await sleep(300);
      expect(processGone(pid)).toBe(false);
      expectServing(slot);
      ip(slot.ns, 'link', 'del', 'dev', renamed);
      const started = Date.now(); // the link is gone once ip(8) returns; its own start-up is not the daemon's time
      await waitFor(() => processGone(pid), `tswg daemon ${slot.name} to exit after ip link del`, EXIT_WITHIN_MS + 2000);
      expect(Date.now() - started).toBeLessThan(EXIT_WITHIN_MS);
      await waitFor(() => !pathExists(socketPath(slot.name)), `${socketPath(slot.name)} to be removed`, 1000);
      expectGone(slot);
      expect(linkExists(slot.ns, renamed)).toBe(false);
    });

    it('with LOG_LEVEL=verbose the daemon keeps logging to the caller’s stdout/stderr (as wireguard-go does) while the starter exits 0', async () => {
      const slot = freshSlot();
      const child = spawn('ip', ['netns', 'exec', slot.ns, TSWG_BIN, slot.name], {
        env: cleanEnv({ LOG_LEVEL: 'verbose' }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      registerCleanup('process', `kill starter of ${slot.name}`, () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      });
      let output = '';
      let pipesClosed = false;
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.on('close', () => (pipesClosed = true));
      const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      expect(code, output).toBe(0);
      const pid = onlyDaemon(slot.name);
      await waitFor(() => output.includes(`DEBUG: (${slot.name})`), 'a DEBUG line from the daemon', 5000);
      expect(pipesClosed, 'the daemon shares the caller’s pipes while LOG_LEVEL is set').toBe(false);
      await signalAndWait(pid, 'SIGTERM', `tswg daemon ${slot.name}`);
      await waitFor(() => pipesClosed, 'the pipes to close once the daemon is gone', 3000);
      expect(output).toMatch(/shutting down: SIGTERM/);
      expectGone(slot);
    });
  });

  describe('foreground', () => {
    it('-f stays in the foreground and serves; SIGINT makes it exit 0 promptly, removing socket and interface', async () => {
      const slot = freshSlot();
      const child = await startForeground(slot, ['-f', slot.name]);
      await sleep(300);
      expect(child.running(), child.output()).toBe(true);
      expect(onlyDaemon(slot.name)).toBe(child.pid);
      expect(linkDetails(slot.ns, slot.name)).toMatch(/\bmtu 1420\b/);
      expectServing(slot);
      const started = Date.now();
      child.child.kill('SIGINT');
      const status = await child.waitForExit(EXIT_WITHIN_MS + 2000);
      expect(Date.now() - started).toBeLessThan(EXIT_WITHIN_MS);
      expect(status, child.output()).toEqual({ code: 0, signal: null });
      expectGone(slot);
    });

    it('--foreground after the name, and WG_PROCESS_FOREGROUND=1, keep it in the foreground; SIGTERM exits 0 promptly', async () => {
      for (const [args, env] of [
        [(name: string) => [name, '--foreground'], cleanEnv()],
        [(name: string) => [name], cleanEnv({ WG_PROCESS_FOREGROUND: '1' })],
      ] as const) {
        const slot = freshSlot();
        const child = await startForeground(slot, args(slot.name), env);
        await sleep(300);
        expect(child.running(), child.output()).toBe(true);
        expect(onlyDaemon(slot.name)).toBe(child.pid);
        expectServing(slot);
        const started = Date.now();
        child.child.kill('SIGTERM');
        const status = await child.waitForExit(EXIT_WITHIN_MS + 2000);
        expect(Date.now() - started).toBeLessThan(EXIT_WITHIN_MS);
        expect(status, child.output()).toEqual({ code: 0, signal: null });
        expectGone(slot);
      }
    });

    // wireguard-go keeps its signal handlers while it shuts down; so does tswg.
    it('a second SIGTERM or SIGINT during the shutdown still ends in a clean exit 0, as with wireguard-go', async () => {
      for (const signal of ['SIGTERM', 'SIGINT'] as const) {
        const slot = freshSlot();
        const child = await startForeground(slot, ['-f', slot.name], cleanEnv({ LOG_LEVEL: 'verbose' }));
        child.child.kill(signal);
        await waitFor(() => child.output().includes('shutting down') || !child.running(), 'the shutdown to begin', EXIT_WITHIN_MS, 1);
        if (child.running()) child.child.kill(signal);
        const status = await child.waitForExit(EXIT_WITHIN_MS + 2000);
        expect(status, `${signal} twice:\n${child.output()}`).toEqual({ code: 0, signal: null });
        expectGone(slot);
      }
    });

    it('ip link del NAME makes a foreground tswg exit 0 and remove its socket', async () => {
      const slot = freshSlot();
      const child = await startForeground(slot);
      ip(slot.ns, 'link', 'del', 'dev', slot.name);
      const started = Date.now(); // the link is gone once ip(8) returns; its own start-up is not the daemon's time
      const status = await child.waitForExit(EXIT_WITHIN_MS + 2000);
      expect(Date.now() - started).toBeLessThan(EXIT_WITHIN_MS);
      expect(status, child.output()).toEqual({ code: 0, signal: null });
      expectGone(slot);
    });

    it('LOG_LEVEL=verbose (and its alias debug) prints DEBUG lines naming the interface; the default prints errors only; LOG_LEVEL=silent prints nothing', async () => {
      for (const level of ['verbose', 'debug']) {
        const verbose = freshSlot();
        const loud = await startForeground(verbose, ['-f', verbose.name], cleanEnv({ LOG_LEVEL: level }));
        expect(wg(verbose.ns, 'set', verbose.name, 'listen-port', '51820').status).toBe(0);
        expect((await loud.stop(EXIT_WITHIN_MS)).code, loud.output()).toBe(0);
        expect(loud.output(), `LOG_LEVEL=${level}`).toMatch(new RegExp(`^DEBUG: \\(${verbose.name}\\) `, 'm'));
        expect(loud.output()).toMatch(/shutting down: SIGTERM/);
        expectGone(verbose);
      }

      const normal = freshSlot();
      const usual = await startForeground(normal, ['-f', normal.name]);
      expect(await uapiRequest(socketPath(normal.name), 'set=1\nbogus_key=1\n\n')).toMatch(/^errno=-\d+\n\n$/);
      expect((await usual.stop(EXIT_WITHIN_MS)).code, usual.output()).toBe(0);
      expect(usual.output()).toMatch(new RegExp(`^ERROR: \\(${normal.name}\\) .*bogus_key`, 'm'));
      expect(usual.output()).not.toMatch(/^DEBUG:/m);
      expectGone(normal);

      const silent = freshSlot();
      const quiet = await startForeground(silent, ['-f', silent.name], cleanEnv({ LOG_LEVEL: 'silent' }));
      expect(wg(silent.ns, 'set', silent.name, 'listen-port', '51820').status).toBe(0);
      // A request the device rejects would be logged at the error level: not when silent.
      expect(await uapiRequest(socketPath(silent.name), 'set=1\nbogus_key=1\n\n')).toMatch(/^errno=-\d+\n\n$/);
      expect((await quiet.stop(EXIT_WITHIN_MS)).code, quiet.output()).toBe(0);
      expect(quiet.output()).toBe('');
      expectGone(silent);
    });

    it('a stale socket left by a killed tswg is replaced by the next start', async () => {
      const slot = freshSlot();
      const child = await startForeground(slot);
      child.child.kill('SIGKILL');
      await child.waitForExit(5000);
      expect(isSocket(socketPath(slot.name)), 'SIGKILL leaves the socket behind').toBe(true);
      await waitFor(() => !linkExists(slot.ns, slot.name), 'the TUN interface to go with its fd', 3000);
      const again = runTswg(slot.ns, [slot.name]);
      expect(again.status, describeResult(again)).toBe(0);
      expectServing(slot);
      await signalAndWait(onlyDaemon(slot.name), 'SIGTERM', `tswg daemon ${slot.name}`);
      expectGone(slot);
    });

    it('the TUN interface looks like wireguard-go’s (flags, MTU, queue length, type)', async () => {
      const slot = freshSlot();
      const goName = uniqueName();
      interfacesUsed.push(goName);
      await startImplementation('wireguard-go', slot.ns, goName);
      const result = runTswg(slot.ns, [slot.name]);
      expect(result.status, describeResult(result)).toBe(0);
      const shape = (details: string | null, name: string): string =>
        (details ?? '')
          .replace(/^\d+: /, '')
          .replaceAll(name, 'IF')
          .replace(/\bpi (on|off)\b/, 'pi *') // wireguard-go 0.0.20220316's TUN shows "pi on" here
          .replace(/\bvnet_hdr (on|off)\b/, 'vnet_hdr *') // tswg opens its TUN with IFF_VNET_HDR for TSO/GRO offloads (newer wireguard-go does too)
          .replace(/\s+/g, ' ')
          .trim();
      expect(shape(linkDetails(slot.ns, slot.name), slot.name)).toBe(shape(linkDetails(slot.ns, goName), goName));
    });
  });

  describe('errors a person can act on (exit 1, a clear message, nothing left behind)', () => {
    it('a name longer than 15 bytes', () => {
      const slot = freshSlot();
      for (const name of ['abcdefghijklmnop', 'éééééééé' /* 8 characters, 16 bytes */]) {
        const result = runTswg(slot.ns, [name]);
        expect(result.status, describeResult(result)).toBe(1);
        expect(result.stderr).toMatch(/^tswg: /);
        expect(result.stderr).toMatch(/too long/);
        expect(result.stderr).toMatch(/16 bytes/);
        expect(result.stderr).toMatch(/at most 15/);
        expect(pathExists(socketPath(name))).toBe(false);
        expect(linkExists(slot.ns, name)).toBe(false);
      }
    });

    it('an empty name, or one with a character Linux refuses (whitespace, / or :)', () => {
      const slot = freshSlot();
      const empty = runTswg(slot.ns, ['']);
      expect(empty.status, describeResult(empty)).toBe(1);
      expect(empty.stderr).toBe('tswg: interface name is empty\n');
      for (const name of ['a/b', 'a:b', 'a b', 'a\tb', '.', '..']) {
        const result = runTswg(slot.ns, [name]);
        expect(result.status, describeResult(result)).toBe(1);
        expect(result.stderr).toContain(`interface name '${name}'`);
        expect(pathExists(socketPath(name))).toBe(false);
      }
      expect(ip(slot.ns, '-o', 'link', 'show').trim().split('\n')).toHaveLength(1); // lo only
    });

    it('a name of exactly 15 bytes is fine', async () => {
      const base = freshSlot();
      const name = base.name.padEnd(15, '_');
      const slot = { ns: base.ns, name };
      interfacesUsed.push(name);
      trackDaemon(name);
      const result = runTswg(slot.ns, [name]);
      expect(result.status, describeResult(result)).toBe(0);
      expect(linkExists(slot.ns, name)).toBe(true);
      expectServing(slot);
      await signalAndWait(onlyDaemon(name), 'SIGTERM', `tswg daemon ${name}`);
      expectGone(slot);
    });

    it('the name is in use by another tswg in the same namespace; the first keeps working', () => {
      const slot = freshSlot();
      expect(runTswg(slot.ns, [slot.name]).status).toBe(0);
      const first = onlyDaemon(slot.name);
      for (const args of [[slot.name], ['-f', slot.name]]) {
        const second = runTswg(slot.ns, args);
        expect(second.status, describeResult(second)).toBe(1);
        expect(second.stderr).toMatch(new RegExp(`^tswg: interface name '${slot.name}' is in use`));
      }
      expect(daemonPids(slot.name)).toEqual([first]);
      expect(isSocket(socketPath(slot.name))).toBe(true);
      expectServing(slot);
      const set = wg(slot.ns, 'set', slot.name, 'listen-port', '51999');
      expect(set.status, describeResult(set)).toBe(0);
      expect(wg(slot.ns, 'show', slot.name, 'listen-port').stdout.trim()).toBe('51999');
    });

    it('the name is in use by a veth; the veth is left alone', () => {
      const slot = freshSlot();
      ip(slot.ns, 'link', 'add', slot.name, 'type', 'veth', 'peer', 'name', `${slot.name.slice(0, 13)}pp`.slice(0, 15));
      const result = runTswg(slot.ns, [slot.name]);
      expect(result.status, describeResult(result)).toBe(1);
      expect(result.stderr).toMatch(new RegExp(`interface name '${slot.name}' is in use`));
      expect(linkDetails(slot.ns, slot.name)).toMatch(/\bveth\b/);
      expect(daemonPids(slot.name)).toEqual([]);
      expect(pathExists(socketPath(slot.name))).toBe(false);
    });

    it('the socket name is served by a tswg in another namespace: refused, its TUN interface removed again, the first keeps working', () => {
      const slot = freshSlot();
      expect(runTswg(slot.ns, [slot.name]).status).toBe(0);
      const first = onlyDaemon(slot.name);
      const other = createNamespace();
      const second = runTswg(other, [slot.name]);
      expect(second.status, describeResult(second)).toBe(1);
      expect(second.stderr).toMatch(new RegExp(`interface ${slot.name} is in use: ${socketPath(slot.name)}`));
      expect(linkExists(other, slot.name), 'the refused start leaves no interface behind').toBe(false);
      expect(daemonPids(slot.name)).toEqual([first]);
      expectServing(slot);
    });

    it('something other than a socket at the socket path is refused and left alone', () => {
      const slot = freshSlot();
      ensureSocketDirectory();
      writeFileSync(socketPath(slot.name), 'not a socket\n');
      registerPathForRemoval(socketPath(slot.name));
      const result = runTswg(slot.ns, [slot.name]);
      expect(result.status, describeResult(result)).toBe(1);
      expect(result.stderr).toMatch(/exists and is not a socket/);
      expect(result.stderr).toContain(socketPath(slot.name));
      expect(readFileSync(socketPath(slot.name), 'utf8')).toBe('not a socket\n');
      expect(linkExists(slot.ns, slot.name)).toBe(false);
      expect(daemonPids(slot.name)).toEqual([]);
    });

    it('no permission for /dev/net/tun (an unprivileged user)', () => {
      const slot = freshSlot();
      for (const args of [[slot.name], ['-f', slot.name]]) {
        const result = runCommand(slot.ns, UNPRIVILEGED[0]!, [...UNPRIVILEGED.slice(1), TSWG_BIN, ...args], { env: cleanEnv() });
        expect(result.status, describeResult(result)).toBe(1);
        expect(result.stderr).toMatch(/no permission/);
        expect(result.stderr).toMatch(/CAP_NET_ADMIN/);
        expect(result.stderr).toContain(slot.name);
      }
      expectGone(slot);
    });

    it('the socket directory is not writable (an unprivileged user with CAP_NET_ADMIN only)', () => {
      const slot = freshSlot();
      ensureSocketDirectory();
      // Opening /dev/net/tun needs its file mode to allow it, not CAP_NET_ADMIN; on machines where it is
      // 0600 a private mount namespace puts a 0666 node of the same device in its place for this run.
      const unprivileged = [...UNPRIVILEGED, '--inh-caps', '+net_admin', '--ambient-caps', '+net_admin', TSWG_BIN, slot.name];
      const script = [
        'set -e',
        'dir=$(mktemp -d)',
        'mount -t tmpfs tswg-test-tun "$dir"',
        'mknod -m 0666 "$dir/tun" c 10 200',
        'mount --bind "$dir/tun" /dev/net/tun',
        'exec "$@"',
      ].join('; ');
      const result = runCommand(slot.ns, 'unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', ...unprivileged], { env: cleanEnv() });
      expect(result.status, describeResult(result)).toBe(1);
      expect(result.stderr).toContain(socketPath(slot.name));
      expect(result.stderr).toMatch(/EACCES|permission denied/i);
      expect(linkExists(slot.ns, slot.name), 'the TUN interface is removed again').toBe(false);
      expectGone(slot);
    });

    it('the socket directory is on a read-only file system (a private mount namespace)', () => {
      const slot = freshSlot();
      ensureSocketDirectory();
      // unshare --mount with private propagation: the read-only tmpfs exists for this command only.
      const script = 'mount -t tmpfs -o ro,mode=0755 tswg-test-ro /var/run/wireguard && exec ip netns exec "$1" "$2" "$3"';
      const result = runCommand(null, 'unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', slot.ns, TSWG_BIN, slot.name], {
        env: cleanEnv(),
      });
      expect(result.status, describeResult(result)).toBe(1);
      expect(result.stderr).toContain(socketPath(slot.name));
      expect(result.stderr).toMatch(/EROFS|read-only/i);
      expectGone(slot);
    });
  });
});

/** Send one raw UAPI request and return the whole answer (the server closes after a set with an error or at our end). */
function uapiRequest(path: string, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(path);
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no UAPI answer from ${path} within 3 s (got ${JSON.stringify(answer)})`));
    }, 3000);
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
      if (answer.endsWith('\n\n')) {
        clearTimeout(timer);
        socket.destroy();
        resolve(answer);
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.write(request);
  });
}

function readlinkFd(pid: number, fd: number): string {
  return runCommand(null, 'readlink', [`/proc/${pid}/fd/${fd}`]).stdout.trim();
}
