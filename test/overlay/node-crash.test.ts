/**
 * kill -9 at random moments while the node sets up and tears down service
 * overlays and attaches and detaches containers; after each crash a restart
 * must converge: the same key, every container either fully attached
 * (eth0 in its namespace, its host veth on the service bridge, counted as a
 * member) or not at all (no eth0, no veth), no link of a crashed attempt
 * left. At the end Shutdown must leave the namespace as it was before the
 * node first started.
 *
 * Needs root and a built dist/ (`npm run build`); fails, never skips.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containerLinks, startContainer } from '../../scripts/lib/containers.js';
import { cleanup, ip, requireCommands, requireRoot, type NamespaceProcess } from '../../scripts/lib/netns.js';
import { createMesh, networkSnapshot, request, settledLan, startNode, writeConfig, type Mesh, type MeshNode, type NetworkSnapshot } from '../../scripts/lib/overlay-mesh.js';
import type { Request, Response } from '../../src/overlay/protocol.js';
import { Rng, fuzzSeed } from '../helpers/fuzz.js';

const ITERATIONS = 50;
/** The kill lands this long (at most) after the request is sent: inside the request's kernel work. */
const MAX_KILL_DELAY_MS = 40;
const SERVICE = 'web';
/**
 * 50 restarts of a node (its firewall included): about a minute on a quiet 2-core machine; with
 * the cores shared by other jobs (load 10–15) a start alone took 3–7 s, and the 50 took over 300 s.
 */
const TEST_TIMEOUT_MS = 600_000;

let mesh: Mesh;
let node: MeshNode;
let before: NetworkSnapshot;

function links(): Array<{ ifname: string; master?: string }> {
  return JSON.parse(ip(node.namespace, '-j', 'link', 'show') || '[]') as Array<{ ifname: string; master?: string }>;
}

async function status(): Promise<Extract<Response, { type: 'Status' }>> {
  const answer = await request(node, { type: 'Status' });
  if (answer.type !== 'Status') throw new Error(`Status: ${JSON.stringify(answer)}`);
  return answer;
}

function attachRequest(pid: number, service = SERVICE): Request {
  return { type: 'AttachContainer', handle: { linuxPid: pid }, service, joinGlobal: true, dnsServer: null, dnsDomain: null, ephemeral: false, isolationNetwork: null };
}

beforeAll(async () => {
  requireRoot('the crash tests');
  requireCommands('ip', 'unshare', 'nsenter');
  mesh = createMesh(1);
  node = mesh.nodes[0]!;
  await settledLan(node.namespace);
  before = networkSnapshot(node.namespace);
  writeConfig(mesh, node);
  await startNode(node, { config: true });
});

afterAll(() => {
  cleanup();
});

describe('kill -9 at random moments', () => {
  it(`${ITERATIONS} crashes during setup, attach, detach and teardown: each restart converges`, async () => {
    const seed = fuzzSeed();
    const rng = new Rng(seed);
    const containers: NamespaceProcess[] = [];
    const setup = await request(node, { type: 'SetupServiceOverlay', service: SERVICE, mode: 'auto' });
    expect(setup.type).toBe('ServiceOverlay');
    for (let i = 0; i < ITERATIONS; i++) {
      const action = rng.int(4);
      let req: Request;
      if (action === 0 || containers.length === 0) {
        const container = await startContainer(node.namespace, `container ${i}`);
        containers.push(container);
        req = attachRequest(container.pid);
      } else if (action === 1) {
        req = { type: 'DetachContainer', handle: { linuxPid: containers[rng.int(containers.length)]!.pid } };
      } else if (action === 2) {
        req = { type: 'SetupServiceOverlay', service: 'tmp', mode: rng.int(2) === 0 ? 'auto' : 'dedicated' };
      } else {
        req = { type: 'TeardownServiceOverlay', service: 'tmp' };
      }
      const pending = request(node, req).catch(() => null);
      await new Promise((resolve) => setTimeout(resolve, rng.int(MAX_KILL_DELAY_MS)));
      node.process!.child.kill('SIGKILL');
      await node.process!.exited;
      await pending;
      await startNode(node, { config: true });

      const snapshot = await status();
      expect(snapshot.publicKey, `iteration ${i} (FUZZ_SEED=${seed})`).toBe(node.publicKey);
      const web = snapshot.services.find((s) => s.name === SERVICE)!;
      expect(web, `iteration ${i} (FUZZ_SEED=${seed}): the service survives`).toBeDefined();
      const hostLinks = links();
      let attached = 0;
      for (const container of containers) {
        const inside = containerLinks(container.pid).map((l) => l.ifname);
        const veth = hostLinks.find((l) => l.ifname === `veth-${container.pid}-s`);
        if (inside.includes('eth0')) {
          attached++;
          expect(veth?.master, `iteration ${i} (FUZZ_SEED=${seed}): container ${container.pid} has eth0, so its veth is on the bridge`).toBe(web.bridge);
        } else {
          expect(veth, `iteration ${i} (FUZZ_SEED=${seed}): container ${container.pid} has no eth0, so no host veth`).toBeUndefined();
          expect(inside.includes('eth1'), `iteration ${i} (FUZZ_SEED=${seed}): no eth1 without eth0`).toBe(false);
        }
      }
      expect(web.members, `iteration ${i} (FUZZ_SEED=${seed}): members`).toBe(attached);
      expect(hostLinks.filter((l) => l.ifname.startsWith('vc-')), `iteration ${i} (FUZZ_SEED=${seed}): no half-moved veth`).toEqual([]);
    }
    // Everything can be detached, and a detached container can be attached again.
    for (const container of containers) expect((await request(node, { type: 'DetachContainer', handle: { linuxPid: container.pid } })).type).toBe('Ok');
    expect((await request(node, attachRequest(containers[0]!.pid))).type).toBe('Attached');
    expect((await request(node, { type: 'Shutdown' })).type).toBe('Ok');
    await node.process!.waitForExit(10_000);
    await settledLan(node.namespace);
    expect(networkSnapshot(node.namespace)).toEqual(before);
    for (const container of containers) await container.stop();
  }, TEST_TIMEOUT_MS);
});
