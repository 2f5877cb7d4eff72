/**
 * Soak: a three-node tswg mesh under load for a long while (default 600 s),
 * with the control plane churning, to show that nothing grows:
 *  - iperf3 TCP from node 1 to node 2 for the whole run;
 *  - ping from node 1 to node 3 (an untouched peer) every 200 ms: replies lost;
 *  - every second node 1 adds a peer with a fresh key and removes the one it
 *    added the second before (AddPeer/RemovePeer over the control socket);
 *  - every 10 s each node's RSS and open file descriptors are sampled.
 * Prints RSS and fd figures per node (first, min, max, last sample), ping
 * loss, throughput and failed control requests. Not part of CI (it runs for
 * minutes); everything is removed at the end.
 *
 *   sudo npm run bench:soak [-- seconds [Mbit/s]]     (iperf3 at full speed unless a rate is given)
 */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { cleanup, requireCommands, requireRoot } from '../scripts/lib/netns.js';
import { createMesh, pingOverlay, request, startNode, writeConfig, type MeshNode } from '../scripts/lib/overlay-mesh.js';
import { parseBenchArgs } from './lib/command-line.js';
import { runIperf3, runPing, Iperf3Server } from './lib/iperf.js';
import { machineLine } from './lib/machine.js';
import { memory, MIB } from './lib/proc.js';
import { formatTable } from './lib/table.js';

const SECONDS_DEFAULT = 600;
const SAMPLE_EVERY_MS = 10_000;
const CHURN_EVERY_MS = 1000;
const PING_INTERVAL_S = 0.2;

const [secondsText, rateText] = parseBenchArgs({
  npmScript: 'bench:soak',
  measures: 'RSS, open descriptors, ping loss and throughput of a three-node tswg mesh under load and peer churn for a long while (root)',
  options: {},
  positionals: [
    { name: 'seconds', description: 'how long it runs, 20..7200', shownDefault: String(SECONDS_DEFAULT) },
    { name: 'Mbit/s', description: "iperf3's rate", shownDefault: 'full speed' },
  ],
}).positionals;
const seconds = Number(secondsText ?? SECONDS_DEFAULT);
if (!Number.isInteger(seconds) || seconds < 20 || seconds > 7200) throw new Error(`seconds must be 20..7200, got ${secondsText}`);
const rateMbit = rateText === undefined ? undefined : Number(rateText);
if (rateMbit !== undefined && !(rateMbit > 0 && rateMbit <= 100_000)) throw new Error(`Mbit/s must be a positive number, got ${rateText}`);

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

interface Samples {
  rssMiB: number[];
  fds: number[];
}

async function main(): Promise<void> {
  requireRoot('bench/soak');
  requireCommands('ip', 'ping', 'iperf3');
  const mesh = createMesh(3);
  meshForReport = mesh.nodes;
  for (const node of mesh.nodes) writeConfig(mesh, node);
  for (const node of mesh.nodes) await startNode(node, { config: true, env: { ...process.env, LOG_LEVEL: 'error' } });
  const [first, second, third] = mesh.nodes as [MeshNode, MeshNode, MeshNode];
  await pingOverlay(first, second.nodeIp);
  await pingOverlay(first, third.nodeIp);

  const samples = new Map<MeshNode, Samples>(mesh.nodes.map((node) => [node, { rssMiB: [], fds: [] }]));
  const sample = (): void => {
    for (const node of mesh.nodes) {
      if (!node.process!.running()) continue;
      const pid = node.process!.pid;
      samples.get(node)!.rssMiB.push(memory(pid).rss / MIB);
      samples.get(node)!.fds.push(openFds(pid));
    }
  };
  sample();

  let churnFailures = 0;
  let churned = 0;
  let previous: string | null = null;
  const churn = setInterval(() => {
    const key = randomBytes(32).toString('base64');
    const octet = churned % 250;
    churned++;
    const removed = previous;
    previous = key;
    void (async () => {
      const add = await request(first, { type: 'AddPeer', peer: { publicKey: key, endpoint: `192.0.2.${1 + octet}:51820`, allowedIps: `10.250.0.${octet}/32`, persistentKeepaliveSecs: 0, candidates: [] }, scope: 'global' }).catch(() => null);
      if (add?.type !== 'Ok') {
        churnFailures++;
        console.error(`AddPeer: ${JSON.stringify(add)}`);
      }
      if (removed !== null) {
        const remove = await request(first, { type: 'RemovePeer', pubkey: removed, scope: 'global' }).catch(() => null);
        if (remove?.type !== 'Ok') churnFailures++;
      }
    })();
  }, CHURN_EVERY_MS);
  const sampler = setInterval(sample, SAMPLE_EVERY_MS);

  const server = new Iperf3Server(second.namespace, second.nodeIp);
  let iperf: Awaited<ReturnType<typeof runIperf3>>;
  let ping: Awaited<ReturnType<typeof runPing>>;
  try {
    await server.start();
    [iperf, ping] = await Promise.all([
      runIperf3(first.namespace, second.nodeIp, { protocol: 'tcp', streams: 1, reverse: false, intervals: false, ...(rateMbit === undefined ? {} : { tcpMbit: rateMbit }) }, seconds),
      runPing(first.namespace, third.nodeIp, Math.floor(seconds / PING_INTERVAL_S), PING_INTERVAL_S),
    ]);
  } finally {
    clearInterval(churn);
    clearInterval(sampler);
  }
  sample();

  console.log(`soak: 3 tswg nodes, ${seconds} s (${machineLine()})\n`);
  const rows = mesh.nodes.map((node) => {
    const s = samples.get(node)!;
    return [node.instanceId, s.rssMiB[0]!, Math.min(...s.rssMiB), Math.max(...s.rssMiB), s.rssMiB.at(-1)!, s.fds[0]!, Math.max(...s.fds), s.fds.at(-1)!];
  });
  console.log(formatTable(['node', 'RSS first MiB', 'min', 'max', 'last', 'fds first', 'max', 'last'], rows));
  const lost = ping.sent - ping.rttsMs.length;
  console.log(`\nping n1 → n3 (untouched peer): ${ping.sent} sent, ${lost} lost`);
  console.log(`iperf3 TCP n1 → n2 for ${seconds} s under churn${rateMbit === undefined ? '' : ` (target ${rateMbit} Mbit/s)`}: ${iperf.mbitPerSecond.toFixed(0)} Mbit/s`);
  console.log(`peer churn on n1: ${churned} AddPeer + RemovePeer rounds, ${churnFailures} failed requests`);
  for (const node of mesh.nodes) await node.process?.stop();
  if (lost > 0 || churnFailures > 0) process.exitCode = 1;
}

let meshForReport: MeshNode[] = [];

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    for (const node of meshForReport) {
      if (node.process?.running() === false) console.error(`\nnode ${node.instanceId} exited; its last output:\n${node.process.output().slice(-3000)}`);
    }
    process.exitCode = 1;
  })
  .finally(() => cleanup());
