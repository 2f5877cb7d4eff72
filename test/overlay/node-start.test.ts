/**
 * `tswg node` start-ups that fail: a control socket another node answers
 * on, a config that does not parse, a data directory that cannot be made
 * (/proc: Node's recursive mkdir used to spin there at 100% CPU, deaf to
 * SIGTERM), a world-writable one, and a config whose setup fails (its UDP
 * port is taken). Each exits 1 within about a second and leaves nothing
 * behind: no data directory or key, no socket, no interface. Bad flags
 * exit 2. A SIGTERM right after the start is obeyed; a second one during
 * the clean-up exits 1 at once.
 *
 * Needs root and a built dist/ (`npm run build`); fails, never skips.
 */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, createTempDir, ip, requireCommands, requireRoot, startIn, waitUntil } from '../../scripts/lib/netns.js';
import { TSWG_BIN } from '../../scripts/lib/topology.js';
import { describeResult, runCommand } from '../helpers/daemon-process.js';
import { createMesh, startNode, writeConfig, type Mesh, type MeshNode } from '../../scripts/lib/overlay-mesh.js';

/**
 * What a failure may add to a bare start-up and exit of the same command: "at once" means no retry and no wait on a
 * timeout. Start-up itself (ip netns exec, Node, the CLI) is measured next to each case, since a loaded 2-core
 * machine stretches it to seconds.
 */
const FAILURE_ADDS_AT_MOST_MS = 1500;

let mesh: Mesh;
let node: MeshNode;
let scratch: string;

function tswgNode(args: string[]) {
  return runCommand(node.namespace, TSWG_BIN, ['node', ...args], { timeoutMs: 40_000 });
}

/** Milliseconds for the same command to start and exit on bad flags, now: the baseline a quick failure is held to. */
function bareStartMs(): number {
  const result = tswgNode(['--frobnicate']);
  expect(result.status, describeResult(result)).toBe(2);
  return result.elapsedMs;
}

function expectQuickFailure(elapsedMs: number, baselineMs: number): void {
  expect(elapsedMs, `a bare start-up took ${baselineMs} ms`).toBeLessThan(baselineMs + FAILURE_ADDS_AT_MOST_MS);
}

function linksOf(namespace: string): string {
  return ip(namespace, '-o', 'link', 'show');
}

beforeAll(() => {
  requireRoot('the overlay node start-up tests');
  requireCommands('ip');
  mesh = createMesh(1);
  node = mesh.nodes[0]!;
  scratch = createTempDir('tswg-node-start-');
});

afterAll(() => {
  cleanup();
});

describe('a failed start', () => {
  it('an unusable data directory (/proc) exits 1 at once, naming it', () => {
    const baseline = bareStartMs();
    const result = tswgNode(['--data-dir', '/proc/tswg-no-such-dir', '--control', join(scratch, 'proc.sock')]);
    expect(result.status, describeResult(result)).toBe(1);
    expectQuickFailure(result.elapsedMs, baseline);
    expect(result.stderr).toContain('cannot create data directory /proc/tswg-no-such-dir');
    expect(existsSync(join(scratch, 'proc.sock'))).toBe(false);
  });

  it('a world-writable data directory is refused, naming it, and left as it was', () => {
    const open = join(scratch, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const result = tswgNode(['--data-dir', open, '--control', join(scratch, 'open.sock')]);
    expect(result.status, describeResult(result)).toBe(1);
    expect(result.stderr).toContain(`data directory ${open} is group- or world-writable (mode 0777)`);
    expect(existsSync(join(open, 'node-state.json'))).toBe(false);
  });

  it('a config that does not parse exits 1 and creates no data directory', () => {
    const config = join(scratch, 'bad.json');
    writeFileSync(config, '{"deployment": ');
    const dataDir = join(scratch, 'never-made', 'data');
    const baseline = bareStartMs();
    const result = tswgNode(['--data-dir', dataDir, '--config', config, '--control', join(scratch, 'bad.sock')]);
    expect(result.status, describeResult(result)).toBe(1);
    expectQuickFailure(result.elapsedMs, baseline);
    expect(result.stderr).toContain(config);
    expect(existsSync(join(scratch, 'never-made'))).toBe(false);
    expect(existsSync(join(scratch, 'bad.sock'))).toBe(false);
  });

  it('a config whose setup fails (UDP port taken) exits 1, removing the data directory it made, the socket and the interface', async () => {
    const holder = startIn(node.namespace, process.execPath, ['-e', "require('dgram').createSocket('udp4').bind(51999, () => console.log('bound'))"], { name: 'port holder' });
    const started = Date.now();
    while (!holder.output().includes('bound') && Date.now() - started < 5000) await new Promise((resolve) => setTimeout(resolve, 20));
    try {
      const config = join(scratch, 'port.json');
      const before = linksOf(node.namespace);
      writeConfig(mesh, { ...node, configPath: config }, { wgPort: 51999, peers: [] });
      const dataDir = join(scratch, 'fresh', 'data');
      const result = tswgNode(['--data-dir', dataDir, '--config', config, '--control', join(scratch, 'port.sock')]);
      expect(result.status, describeResult(result)).toBe(1);
      expect(result.stderr).toMatch(/SetupGlobalOverlay: cannot start the global overlay zl-\S+ on UDP port 51999/);
      expect(existsSync(join(scratch, 'fresh'))).toBe(false);
      expect(existsSync(join(scratch, 'port.sock'))).toBe(false);
      expect(linksOf(node.namespace)).toBe(before);
    } finally {
      await holder.stop();
    }
  });

  it('a control socket another node answers on exits 1 within a second, creating no data directory or key', async () => {
    await startNode(node);
    const dataDir = join(scratch, 'second');
    const baseline = bareStartMs();
    const result = tswgNode(['--data-dir', dataDir, '--control', node.controlPath]);
    expect(result.status, describeResult(result)).toBe(1);
    expectQuickFailure(result.elapsedMs, baseline);
    expect(result.stderr).toContain(`another tswg node is already listening on ${node.controlPath}`);
    expect(existsSync(dataDir)).toBe(false);
    expect(node.process!.running()).toBe(true);
    await node.process!.stop();
  });

  it('bad flags exit 2', () => {
    for (const args of [['--data-dir'], ['--frobnicate'], ['--data-dir', scratch, '--metrics', 'no-port'], ['--data-dir', scratch, 'extra']]) {
      const result = tswgNode(args);
      expect(result.status, `${args.join(' ')}: ${describeResult(result)}`).toBe(2);
    }
  });

  it('a second SIGTERM during the clean-up exits 1 at once', async () => {
    await startNode(node);
    // A client that never closes its side holds the control socket's close for its grace period.
    const lingering = net.createConnection({ path: node.controlPath, allowHalfOpen: true });
    // An answer proves the node has taken the connection, so its clean-up will wait for it.
    const answered = new Promise((resolve) => lingering.once('data', resolve));
    lingering.write('{"type": "Status"}\n');
    await answered;
    node.process!.child.kill('SIGTERM');
    // The second signal must land during the clean-up: wait for the node to say it began.
    await waitUntil(() => node.process!.output().includes('shutting down: SIGTERM'), 'the clean-up to begin', 30_000, 5);
    const started = Date.now();
    node.process!.child.kill('SIGTERM');
    const exit = await node.process!.waitForExit(30_000);
    lingering.destroy();
    expect(exit.code, node.process!.output()).toBe(1);
    // At once: well before the clean-up's grace for the lingering client would have let it finish.
    expect(Date.now() - started).toBeLessThan(1000);
    expect(node.process!.output()).toContain('second SIGTERM: exiting now, without finishing the clean-up');
    expect(existsSync(node.controlPath)).toBe(false);
  });

  it('SIGTERM right after the start: the node is gone within 2 s and leaves no socket', async () => {
    const control = join(scratch, 'early.sock');
    const proc = startIn(node.namespace, TSWG_BIN, ['node', '--data-dir', join(scratch, 'early'), '--control', control], { name: 'early tswg node' });
    await new Promise((resolve) => setTimeout(resolve, 150));
    const started = Date.now();
    proc.child.kill('SIGTERM');
    await proc.waitForExit(2000);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(existsSync(control)).toBe(false);
  });
});
