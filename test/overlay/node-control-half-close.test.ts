/**
 * A `tswg node` daemon's control socket driven by clients that half-close
 * their side after writing, as `ncat -U` (and `nc -N -U`, socat) do when
 * their input ends: the global overlay's set-up (netlink and a device: its
 * answer is computed long after the client's end arrived), then peers added
 * with an unterminated last line, each answered in order before the daemon
 * ends the connection; a client
 * that half-closes without a word, after which the daemon still serves; and
 * a client that half-closes and never reads its answers, which does not keep
 * a Shutdown from ending the daemon promptly.
 *
 * Needs root, ncat and a built dist/ (`npm run build`); fails, never skips.
 */
import { existsSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, createNamespace, requireCommands, requireRoot } from '../../scripts/lib/netns.js';
import { CLUSTER_CIDR, WG_PORT, prepareNode, startNode, uniqueDeployment, type MeshNode } from '../../scripts/lib/overlay-mesh.js';
import { ControlClient } from '../../src/overlay/control-client.js';
import type { Response } from '../../src/overlay/protocol.js';
import { describeResult, runCommand } from '../helpers/daemon-process.js';

/**
 * The README's promise: Shutdown ends the node within 2 s whatever is in
 * flight. The slack is for a loaded 2-core machine (about 1.5 s in all there);
 * a connection that held the close would hold it for good.
 */
const SHUTDOWN_WITHIN_MS = 2000;
const LOADED_MACHINE_SLACK_MS = 3000;
/** Far more answers than the socket's buffers hold, so the daemon's writes to a client that never reads stall. */
const UNREAD_REQUESTS = 4000;

const PEER_KEY = 'BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=';

let node: MeshNode;
let deployment: string;

/** `ncat -U`: writes `input`, half-closes when it ends, prints what the daemon answers until the daemon closes. */
function ncat(input: string) {
  const result = runCommand(null, 'ncat', ['-U', node.controlPath], { input, timeoutMs: 15_000 });
  expect(result.status, describeResult(result)).toBe(0);
  return result;
}

function answersOf(stdout: string): Response[] {
  expect(stdout.endsWith('\n') || stdout === '', stdout).toBe(true);
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Response);
}

async function status(): Promise<Response> {
  const client = await ControlClient.connect(node.controlPath);
  try {
    return await client.request({ type: 'Status' });
  } finally {
    client.close();
  }
}

beforeAll(async () => {
  requireRoot('the control socket half-close tests');
  requireCommands('ip', 'ncat');
  const namespace = createNamespace(`tswgt-halfclose-${process.pid.toString(36)}`);
  node = prepareNode(namespace, 0, '127.0.0.1');
  deployment = uniqueDeployment();
  await startNode(node);
});

afterAll(() => {
  cleanup();
});

describe('a tswg node answers clients that half-close after writing', () => {
  it('one request: the answer, then the end', () => {
    const setup = { type: 'SetupGlobalOverlay', deployment, instanceId: node.instanceId, clusterCidr: CLUSTER_CIDR, sliceCidr: node.sliceCidr, wgPort: WG_PORT, hostAdapterMandatory: false };
    expect(answersOf(ncat(`${JSON.stringify(setup)}\n`).stdout)).toEqual([{ type: 'BridgeName', name: `zl-${deployment}-${node.instanceId}-g` }]);
  });

  it('several requests and an unterminated last line: every answer, in order', () => {
    const peer = { publicKey: PEER_KEY, endpoint: '192.0.2.9:51820', allowedIps: '10.200.60.0/26', persistentKeepaliveSecs: 0, candidates: [] };
    const requests = [
      { type: 'AddPeer', peer, scope: 'global' },
      { type: 'AddAllowedIp', pubkey: PEER_KEY, cidr: '10.99.0.0/24', scope: 'global' },
      { type: 'AddAllowedIp', pubkey: 'not a key', cidr: '10.98.0.0/24', scope: 'global' },
      { type: 'Status' },
    ];
    const answers = answersOf(ncat(requests.map((request) => JSON.stringify(request)).join('\n')).stdout);
    expect(answers.map((answer) => answer.type)).toEqual(['Ok', 'Ok', 'Err', 'Status']);
    const status = answers[3] as Extract<Response, { type: 'Status' }>;
    expect(status.peers.map((p) => p.publicKey)).toEqual([PEER_KEY]);
    expect([...status.peers[0]!.allowedIps].sort()).toEqual(['10.200.60.0/26', '10.99.0.0/24']);
    const cut = answersOf(ncat('{"type":"NatStatus"}\n{"type":"Sta').stdout);
    expect(cut.map((answer) => answer.type)).toEqual(['NatStatus', 'Err']);
  });

  it('a client that half-closes without a word is closed, and the daemon keeps serving', async () => {
    const silent = ncat('');
    expect(silent.stdout).toBe('');
    expect((await status()).type).toBe('Status');
    expect(node.process!.running()).toBe(true);
  });

  it('a client that half-closes and never reads does not hold a Shutdown', async () => {
    const unread = net.createConnection({ path: node.controlPath, allowHalfOpen: true });
    unread.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      unread.once('connect', resolve);
      unread.once('error', reject);
    });
    unread.pause();
    await new Promise<void>((resolve) => unread.write('{"type":"Status"}\n'.repeat(UNREAD_REQUESTS), () => resolve()));
    unread.end();
    // Its answers are stuck in the socket's buffers; everybody else is served.
    expect((await status()).type).toBe('Status');
    const started = performance.now();
    expect(answersOf(ncat('{"type":"Shutdown"}\n').stdout)).toEqual([{ type: 'Ok' }]);
    const exit = await node.process!.waitForExit(SHUTDOWN_WITHIN_MS + LOADED_MACHINE_SLACK_MS);
    const elapsedMs = performance.now() - started;
    unread.destroy();
    expect(exit.code, node.process!.output()).toBe(0);
    expect(elapsedMs).toBeLessThan(SHUTDOWN_WITHIN_MS + LOADED_MACHINE_SLACK_MS);
    expect(existsSync(node.controlPath)).toBe(false);
  });
});
