/**
 * `sudo npm run demo`: three tswg overlay nodes form an encrypted mesh on
 * this machine.
 *
 * Three network namespaces share one LAN segment (a bridge); each runs
 * `tswg node` started from a config file that names the other two as peers,
 * so the mesh comes up with no orchestrator. The demo pings every pair over
 * their overlay IPs, then puts containers on the overlay: each node sets up
 * the service "web", the others route its subnet to it, and one container
 * per node (a process in a network namespace of its own) is attached; every
 * container pings every other across the nodes. Then it shows node 1's live
 * status table while iperf3 pushes traffic from node 1 to node 2, and
 * finally stops the nodes, which remove everything they created. Everything
 * the demo creates is removed on every exit path.
 */
import { execInContainer, pingFromContainer, startContainer } from './lib/containers.js';
import { cleanup, requireCommands, requireRoot, startIn } from './lib/netns.js';
import { createMesh, pingOverlay, request, startNode, writeConfig, type MeshNode } from './lib/overlay-mesh.js';
import { formatStatusTable } from '../src/overlay/status.js';
import type { StatusSnapshot } from '../src/overlay/protocol.js';

const NODES = 3;
const TRAFFIC_SECONDS = 6;
const STATUS_REFRESH_MS = 1000;
const SERVICE = 'web';

function step(message: string): void {
  process.stdout.write(`\n==> ${message}\n`);
}

function show(text: string): void {
  process.stdout.write(`${text.replace(/^/gm, '    ').trimEnd()}\n`);
}

async function status(node: MeshNode): Promise<StatusSnapshot> {
  const response = await request(node, { type: 'Status' });
  if (response.type !== 'Status') throw new Error(`node ${node.instanceId} answered Status with ${JSON.stringify(response)}`);
  return response;
}

/** Redraw node 1's status table in place on a terminal; elsewhere print each snapshot. */
async function liveStatus(node: MeshNode, seconds: number): Promise<void> {
  const tty = process.stdout.isTTY === true;
  let previousLines = 0;
  for (let second = 0; second < seconds; second++) {
    const table = `${formatStatusTable(await status(node))}\n`;
    if (tty && previousLines > 0) process.stdout.write(`\x1b[${previousLines}A\x1b[J`);
    else if (!tty) process.stdout.write(`    -- ${second + 1} s --\n`);
    process.stdout.write(table.replace(/^/gm, '    '));
    previousLines = table.split('\n').length - 1;
    await new Promise((resolve) => setTimeout(resolve, STATUS_REFRESH_MS));
  }
}

async function main(): Promise<void> {
  requireRoot('the demo');
  requireCommands('ip', 'ping', 'iperf3', 'wg', 'unshare', 'nsenter');

  step(`${NODES} network namespaces on one bridged LAN, each with a tswg node started from a config file`);
  const mesh = createMesh(NODES);
  for (const node of mesh.nodes) writeConfig(mesh, node);
  for (const node of mesh.nodes) {
    await startNode(node, { config: true });
    show(`${node.instanceId}: LAN ${node.lanAddress}, slice ${node.sliceCidr}, overlay IP ${node.nodeIp}, key ${node.publicKey.slice(0, 12)}…`);
  }

  step('every node pings every other over the overlay (the first packets start the handshakes)');
  for (const from of mesh.nodes) {
    for (const to of mesh.nodes) {
      if (from === to) continue;
      await pingOverlay(from, to.nodeIp);
      show(`${from.instanceId} → ${to.instanceId} (${to.nodeIp}): ok`);
    }
  }

  step(`containers: service "${SERVICE}" on every node, one container each, attached over the control socket`);
  const subnets = new Map<MeshNode, string>();
  for (const node of mesh.nodes) {
    const answer = await request(node, { type: 'SetupServiceOverlay', service: SERVICE, mode: 'auto' });
    if (answer.type !== 'ServiceOverlay') throw new Error(`SetupServiceOverlay on ${node.instanceId}: ${JSON.stringify(answer)}`);
    subnets.set(node, answer.subnet);
    show(`${node.instanceId}: bridge ${answer.bridge}, subnet ${answer.subnet}`);
  }
  // What an orchestrator does today: every other node routes a node's service subnet to that node's key.
  for (const [owner, subnet] of subnets) {
    for (const node of mesh.nodes) {
      if (node !== owner) await request(node, { type: 'AddAllowedIp', pubkey: owner.publicKey, cidr: subnet, scope: 'global' });
    }
  }
  const containers: Array<{ node: MeshNode; pid: number; ip: string }> = [];
  for (const node of mesh.nodes) {
    const container = await startContainer(node.namespace, `container on ${node.instanceId}`);
    const answer = await request(node, {
      type: 'AttachContainer',
      handle: { linuxPid: container.pid },
      service: SERVICE,
      joinGlobal: false,
      dnsServer: null,
      dnsDomain: null,
      ephemeral: false,
      isolationNetwork: null,
    });
    if (answer.type !== 'Attached') throw new Error(`AttachContainer on ${node.instanceId}: ${JSON.stringify(answer)}`);
    containers.push({ node, pid: container.pid, ip: answer.ip });
    const eth0 = execInContainer(container.pid, 'ip', ['-br', 'addr', 'show', 'dev', 'eth0']).trim().replace(/\s+/g, ' ');
    show(`${node.instanceId}: container pid ${container.pid}: ${eth0}`);
  }
  for (const from of containers) {
    for (const to of containers) {
      if (from === to) continue;
      await pingFromContainer(from.pid, to.ip);
      show(`container on ${from.node.instanceId} (${from.ip}) → container on ${to.node.instanceId} (${to.ip}): ok`);
    }
  }

  const [first, second] = mesh.nodes as [MeshNode, MeshNode];
  step(`node ${first.instanceId}'s status, live, while iperf3 sends from ${first.instanceId} to ${second.instanceId} for ${TRAFFIC_SECONDS} s`);
  const server = startIn(second.namespace, 'iperf3', ['-s', '-1', '-B', second.nodeIp], { name: 'iperf3 server' });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const client = startIn(first.namespace, 'iperf3', ['-c', second.nodeIp, '-t', String(TRAFFIC_SECONDS), '-J'], { name: 'iperf3 client' });
  await liveStatus(first, TRAFFIC_SECONDS + 1);
  await client.waitForExit(10_000);
  await server.waitForExit(5000).catch(() => server.stop());
  const report = JSON.parse(client.output()) as { end: { sum_received: { bits_per_second: number } } };
  show(`throughput ${first.instanceId} → ${second.instanceId}: ${(report.end.sum_received.bits_per_second / 1e6).toFixed(0)} Mbit/s`);

  step('stopping the nodes (SIGTERM): each detaches its containers and removes its bridges, interface, routes and sysctl changes');
  for (const node of mesh.nodes) await node.process?.stop();
}

main()
  .then(() => {
    cleanup();
    process.stdout.write('\ndone: namespaces, processes and data directories removed.\n');
  })
  .catch((error: unknown) => {
    cleanup();
    process.stderr.write(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
