/**
 * Two `tswg node` daemons, each behind its own endpoint-independent NAT
 * (iptables MASQUERADE, scripts/lib/nat-topology.ts), with coturn as the
 * STUN server on the public segment. Driven over the control sockets as an
 * orchestrator would: SetupGlobalOverlay with a NAT spec, AddPeer with no
 * endpoint (roaming), NatTick (gathers candidates), AddPeer again with the
 * other side's candidates from NatStatus, then NatTick on both at once
 * until they connect. Both report `hole-punched` (NatStatus and Status),
 * and they ping each other over the overlay IPs. A third node started from a
 * config file with NAT enabled runs the tick itself (no NatTick request) and
 * reports its candidates.
 *
 * Needs root, coturn and a built dist/ (`npm run build`); fails, never skips.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, execIn, requireCommands, requireRoot } from '../../scripts/lib/netns.js';
import { createNatTopology, type Home, type NatTopology } from '../../scripts/lib/nat-topology.js';
import type { NatConfigSpec } from '../../src/nat/config.js';
import type { Response } from '../../src/overlay/protocol.js';
import { startCoturn } from '../../scripts/lib/coturn.js';
import { CLUSTER_CIDR, WG_PORT, pingOverlay, prepareNode, request, startNode, uniqueDeployment, type Mesh, type MeshNode, writeConfig } from '../../scripts/lib/overlay-mesh.js';

type NatStatus = Extract<Response, { type: 'NatStatus' }>;

let deployment: string;
let homes: Home[];
let nodes: MeshNode[];
let natSpec: NatConfigSpec;
let topology: NatTopology;

async function natStatus(node: MeshNode): Promise<NatStatus> {
  const response = await request(node, { type: 'NatStatus' });
  expect(response.type).toBe('NatStatus');
  return response as NatStatus;
}

async function tickBoth(): Promise<void> {
  const answers = await Promise.all(nodes.map((node) => request(node, { type: 'NatTick' })));
  for (const answer of answers) expect(answer).toEqual({ type: 'Ok' });
}

beforeAll(async () => {
  requireRoot('the overlay node NAT test');
  requireCommands('iptables', 'sysctl', 'turnserver', 'ping');
  topology = createNatTopology();
  const stunHost = topology.addPublicHost();
  const coturn = startCoturn(stunHost.namespace, { listenAddresses: [stunHost.address], relayAddress: stunHost.address, users: [{ name: 'u', password: 'p' }], minPort: 49152, maxPort: 49200 });
  natSpec = { enabled: true, stunServers: [`${stunHost.address}:3478`], holePunchTimeoutSecs: 3, stunRefreshIntervalSecs: 30, maxCandidatePairs: 10 };
  deployment = uniqueDeployment();
  homes = [topology.addHome('endpoint-independent'), topology.addHome('endpoint-independent')];
  nodes = homes.map((home, i) => prepareNode(home.node, i, home.nodeAddress));
  await coturn;
  await Promise.all(nodes.map((node) => startNode(node)));
}, 60_000);

afterAll(() => {
  cleanup();
});

describe('a node behind an endpoint-independent NAT', () => {
  it('joins via NatTick and reports hole-punched', async () => {
    for (const node of nodes) {
      const setup = await request(node, {
        type: 'SetupGlobalOverlay',
        deployment,
        instanceId: node.instanceId,
        clusterCidr: CLUSTER_CIDR,
        sliceCidr: node.sliceCidr,
        wgPort: WG_PORT,
        nat: natSpec,
        hostAdapterMandatory: false,
      });
      expect(setup).toEqual({ type: 'BridgeName', name: `zl-${deployment}-${node.instanceId}-g` });
    }
    const peerOf = (other: MeshNode, candidates: NatStatus['candidates']) => ({
      type: 'AddPeer' as const,
      peer: { publicKey: other.publicKey, endpoint: '0.0.0.0:0', allowedIps: other.sliceCidr, persistentKeepaliveSecs: 25, candidates },
      scope: 'global' as const,
    });
    // Peers without an endpoint: only NAT traversal can find one.
    expect(await request(nodes[0]!, peerOf(nodes[1]!, []))).toEqual({ type: 'Ok' });
    expect(await request(nodes[1]!, peerOf(nodes[0]!, []))).toEqual({ type: 'Ok' });

    // The first tick gathers candidates: the private host address and the router's public mapping.
    await tickBoth();
    const [first0, first1] = await Promise.all(nodes.map(natStatus));
    for (const [i, status] of [first0!, first1!].entries()) {
      expect(status.candidates.map((c) => c.candidateType).sort()).toEqual(['host', 'server-reflexive']);
      expect(status.candidates.find((c) => c.candidateType === 'host')!.address).toBe(`${homes[i]!.nodeAddress}:${WG_PORT}`);
      expect(status.candidates.find((c) => c.candidateType === 'server-reflexive')!.address).toMatch(new RegExp(`^${homes[i]!.publicAddress.replace(/\./g, '\\.')}:\\d+$`));
      expect(status.lastRefresh).toBeGreaterThan(Date.now() / 1000 - 60);
    }

    // The orchestrator passes each side's candidates to the other, then both tick at once.
    expect(await request(nodes[0]!, peerOf(nodes[1]!, first1!.candidates))).toEqual({ type: 'Ok' });
    expect(await request(nodes[1]!, peerOf(nodes[0]!, first0!.candidates))).toEqual({ type: 'Ok' });
    let statuses: NatStatus[] = [];
    for (let round = 0; round < 3; round++) {
      await tickBoth();
      statuses = await Promise.all(nodes.map(natStatus));
      if (statuses.every((s) => s.peers.length > 0)) break;
    }
    const reflexive1 = first1!.candidates.find((c) => c.candidateType === 'server-reflexive')!.address;
    expect(statuses[0]!.peers).toEqual([{ nodeId: nodes[1]!.publicKey, connectionType: 'hole-punched', remoteEndpoint: reflexive1 }]);
    expect(statuses[1]!.peers[0]).toMatchObject({ nodeId: nodes[0]!.publicKey, connectionType: 'hole-punched' });

    const status = await request(nodes[0]!, { type: 'Status' });
    expect(status).toMatchObject({ type: 'Status', peerCount: 1 });
    expect((status as Extract<Response, { type: 'Status' }>).peers[0]).toMatchObject({ publicKey: nodes[1]!.publicKey, connectionType: 'hole-punched', endpoint: reflexive1 });

    await pingOverlay(nodes[0]!, nodes[1]!.nodeIp);
    await pingOverlay(nodes[1]!, nodes[0]!.nodeIp);
    expect(execIn(nodes[0]!.namespace, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', nodes[1]!.nodeIp])).toMatch(/2 received/);
  }, 60_000);

  it('a node whose config enables NAT ticks by itself and reports its candidates', async () => {
    const home = topology.addHome('endpoint-independent');
    const node = prepareNode(home.node, 2, home.nodeAddress);
    const mesh: Mesh = { deployment, lan: topology.internet, nodes: [node] };
    writeConfig(mesh, node, { nat: natSpec });
    await startNode(node, { config: true });
    let last: NatStatus | null = null;
    // Poll NatStatus only: the daemon's first tick runs shortly after start-up.
    for (let i = 0; i < 50 && (last === null || last.candidates.length < 2); i++) {
      last = await natStatus(node);
      if (last.candidates.length < 2) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(last!.candidates.map((c) => c.candidateType).sort()).toEqual(['host', 'server-reflexive']);
    expect(last!.lastRefresh).toBeGreaterThan(0);
  });
});
