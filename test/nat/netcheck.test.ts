/**
 * `tswg netcheck` end to end (needs `npm run build`; npm test does it):
 * the real CLI, in a client namespace behind a router namespace that NATs
 * with iptables, asking a real coturn that listens on two addresses in a
 * "public" namespace.
 *
 *   client 10.77.0.2 ── 10.77.0.1 router 203.0.113.254 ── 203.0.113.1, .2 public (coturn)
 *
 * MASQUERADE keeps one mapping per local port for every destination
 * (endpoint-independent); MASQUERADE --random-fully gives every new
 * destination its own random port (endpoint-dependent). Also: a server that
 * never answers (exit 1, named on stderr or in the JSON), one of two
 * answering (unknown), the default servers when no --stun is given, and
 * argument errors (exit 2 with the usage, or as JSON with --json).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addressAndUp,
  cleanup,
  createNamespace,
  createVethPair,
  execIn,
  ip,
  namespaceArgv,
  requireCommands,
  requireRoot,
} from '../../scripts/lib/netns.js';
import { startCoturn, type Coturn } from '../../scripts/lib/coturn.js';

const TSWG = new URL('../../bin/tswg', import.meta.url).pathname;
const SERVER_A = '203.0.113.1';
const SERVER_B = '203.0.113.2';
const SILENT_SERVER = '203.0.113.9';
const ROUTER_PUBLIC = '203.0.113.254';

interface Outcome {
  status: number | null;
  stdout: string;
  stderr: string;
}

interface NetcheckJson {
  mapped: string | null;
  mappingBehavior: string;
  servers: Array<{ server: string; mapped: string | null; error?: string; rttMs: number | null }>;
  error?: string;
}

/** Run `tswg netcheck ARGS` in `namespace` (null: here), asynchronously so coturn's log pipe keeps draining. */
function netcheckIn(namespace: string | null, args: string[]): Promise<Outcome> {
  const [command, argv] = namespaceArgv(namespace, process.execPath, [TSWG, 'netcheck', ...args]);
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** With --json, stdout is one JSON document and nothing else. */
function jsonDocument(outcome: Outcome): NetcheckJson {
  expect(outcome.stdout.endsWith('}\n')).toBe(true);
  expect(outcome.stdout.trimEnd().split('\n')).toHaveLength(1);
  return JSON.parse(outcome.stdout) as NetcheckJson;
}

describe('tswg netcheck behind an iptables NAT, against coturn', () => {
  let client: string;
  let router: string;
  let wan: string;
  let coturn: Coturn;
  const servers = ['--stun', `${SERVER_A}:3478`, '--stun', `${SERVER_B}:3478`];

  const natRule = (extra: string[]): void => {
    execIn(router, 'iptables', ['-t', 'nat', '-F', 'POSTROUTING']);
    execIn(router, 'iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-o', wan, '-j', 'MASQUERADE', ...extra]);
  };

  beforeAll(async () => {
    requireRoot('the netcheck tests');
    requireCommands('turnserver', 'iptables');
    expect(existsSync(new URL('../../dist/src/cli/netcheck.js', import.meta.url)), 'run `npm run build` before the CLI tests').toBe(true);
    const publicNet = createNamespace();
    router = createNamespace();
    client = createNamespace();
    const wanLink = createVethPair(router, { hostNamespace: publicNet });
    addressAndUp(publicNet, wanLink.host.name, `${SERVER_A}/24`);
    ip(publicNet, 'addr', 'add', `${SERVER_B}/24`, 'dev', wanLink.host.name);
    addressAndUp(router, wanLink.peer.name, `${ROUTER_PUBLIC}/24`);
    wan = wanLink.peer.name;
    const lanLink = createVethPair(client, { hostNamespace: router });
    addressAndUp(router, lanLink.host.name, '10.77.0.1/24');
    addressAndUp(client, lanLink.peer.name, '10.77.0.2/24');
    ip(client, 'route', 'add', 'default', 'via', '10.77.0.1');
    execIn(router, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    coturn = await startCoturn(publicNet, { listenAddresses: [SERVER_A, SERVER_B] });
  });
  afterAll(() => cleanup());

  it('MASQUERADE: the router\'s public address, endpoint-independent', async () => {
    natRule([]);
    const outcome = await netcheckIn(client, [...servers, '--json', '--timeout-ms', '3000']);
    expect(outcome.status, `${outcome.stdout}${outcome.stderr}\ncoturn:\n${coturn.log()}`).toBe(0);
    const report = jsonDocument(outcome);
    expect(report.mappingBehavior).toBe('endpoint-independent');
    expect(report.mapped).toMatch(new RegExp(`^${ROUTER_PUBLIC.replace(/\./g, '\\.')}:\\d+$`));
    expect(report.servers.map((s) => s.server)).toEqual([`${SERVER_A}:3478`, `${SERVER_B}:3478`]);
    for (const entry of report.servers) {
      expect(entry.mapped).toBe(report.mapped);
      expect(entry.error).toBeUndefined();
      expect(entry.rttMs).toBeGreaterThanOrEqual(0);
    }
    expect(report.error).toBeUndefined();
    const human = await netcheckIn(client, [...servers, '--timeout-ms', '3000']);
    expect(human.status).toBe(0);
    expect(human.stdout).toMatch(/NAT mapping: endpoint-independent/);
    expect(human.stdout).not.toContain('{');
  });

  it('MASQUERADE --random-fully: a different mapping per server, endpoint-dependent', async () => {
    natRule(['--random-fully']);
    const outcome = await netcheckIn(client, [...servers, '--json', '--timeout-ms', '3000']);
    expect(outcome.status, `${outcome.stdout}${outcome.stderr}`).toBe(0);
    const report = jsonDocument(outcome);
    expect(report.mappingBehavior).toBe('endpoint-dependent');
    const mapped = report.servers.map((s) => s.mapped);
    expect(mapped.every((m) => m !== null && m.startsWith(`${ROUTER_PUBLIC}:`))).toBe(true);
    expect(mapped[0]).not.toBe(mapped[1]);
  });

  it('no server answers: exit 1, stderr names the server; with --json the document says it', async () => {
    natRule([]);
    const human = await netcheckIn(client, ['--stun', `${SILENT_SERVER}:3478`, '--timeout-ms', '1200']);
    expect(human.status).toBe(1);
    expect(human.stderr).toMatch(/no STUN server answered/);
    expect(human.stderr).toMatch(new RegExp(`STUN server ${SILENT_SERVER.replace(/\./g, '\\.')}:3478 did not answer within 1200 ms`));
    const outcome = await netcheckIn(client, ['--stun', `${SILENT_SERVER}:3478`, '--timeout-ms', '1200', '--json']);
    expect(outcome.status).toBe(1);
    expect(outcome.stderr).toBe('');
    const report = jsonDocument(outcome);
    expect(report).toMatchObject({ mapped: null, mappingBehavior: 'unknown', error: 'no STUN server answered' });
    expect(report.servers[0]!.error).toMatch(/did not answer/);
  });

  it('no --stun: the documented default servers are asked (unresolvable in this namespace, so each reports its error)', async () => {
    const help = await netcheckIn(null, ['--help']);
    const outcome = await netcheckIn(client, ['--json', '--timeout-ms', '1200']);
    expect(outcome.status).toBe(1);
    const report = jsonDocument(outcome);
    expect(report.servers.length).toBeGreaterThanOrEqual(2);
    for (const entry of report.servers) {
      expect(help.stdout).toContain(entry.server);
      expect(entry.mapped).toBeNull();
      expect(entry.error).toMatch(/\S/);
    }
    expect(report.error).toBe('no STUN server answered');
  });

  it('one of two answers: exit 0, mapping unknown, the silent one reported with its error', async () => {
    natRule([]);
    const outcome = await netcheckIn(client, ['--stun', `${SERVER_A}:3478`, '--stun', `${SILENT_SERVER}`, '--timeout-ms', '1200', '--json']);
    expect(outcome.status, outcome.stderr).toBe(0);
    const report = jsonDocument(outcome);
    expect(report.mappingBehavior).toBe('unknown');
    expect(report.mapped).toMatch(/^203\.0\.113\.254:\d+$/);
    expect(report.servers[1]).toMatchObject({ server: SILENT_SERVER, mapped: null, rttMs: null });
    expect(report.servers[1]!.error).toMatch(/203\.0\.113\.9:3478 did not answer/);
  });

  it.each([
    [['--stun'], /--stun needs a value/],
    [['--stun', 'x:99999'], /'x:99999' is not a STUN server address: port '99999'/],
    [['--stun', '1.2.3.4', '--timeout-ms', '0'], /--timeout-ms must be a whole number/],
    [['--stun', '1.2.3.4', '--frobnicate'], /unknown argument '--frobnicate'/],
  ])('bad arguments %j: exit 2 with the usage on stderr', async (args, pattern) => {
    const outcome = await netcheckIn(null, args);
    expect(outcome.status).toBe(2);
    expect(outcome.stderr).toMatch(pattern);
    expect(outcome.stderr).toMatch(/Usage: tswg netcheck \[--stun/);
    expect(outcome.stdout).toBe('');
    const json = await netcheckIn(null, ['--json', ...args]);
    expect(json.status).toBe(2);
    expect(json.stderr).toBe('');
    const report = jsonDocument(json);
    expect(report.error).toMatch(pattern);
    expect(report.servers).toEqual([]);
  });

  it('--help prints the usage and exits 0; tswg --help lists netcheck', async () => {
    const outcome = await netcheckIn(null, ['--help']);
    expect(outcome.status).toBe(0);
    expect(outcome.stdout).toMatch(/^Usage: tswg netcheck \[--stun HOST\[:PORT\] \.\.\.\]/);
    expect(outcome.stdout).toMatch(/endpoint-independent/);
    const main = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, [TSWG, '--help'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      child.once('close', () => resolve(out));
    });
    expect(main).toMatch(/^\s+netcheck\s+ask STUN servers/m);
  });
});
