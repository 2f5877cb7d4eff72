/**
 * The overlay node's control API under load:
 *  - AddPeer requests per second while the node grows to N peers (default
 *    5,000), measured per batch of 1,000, one request at a time over one
 *    connection (what an orchestrator's reconcile loop does), and pipelined
 *    (64 in flight) for the last batch's ceiling;
 *  - Status latency at N peers (median, p95, max over 50 requests) and the
 *    size of the answer.
 *
 * One `tswg node` (bin/tswg, the built dist/) in a scratch namespace with a
 * global overlay set up over its socket; peers have random keys, documentation
 * endpoints (192.0.2.0/24) and one /32 each. Everything is removed at the end.
 *
 *   npm run bench:node [-- peers]                                 (as root)
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { cleanup, createNamespace, createTempDir, requireRoot, startIn, waitUntil } from '../scripts/lib/netns.js';
import { TSWG_BIN } from '../scripts/lib/topology.js';
import { ControlClient } from '../src/overlay/control-client.js';
import type { Request, Response } from '../src/overlay/protocol.js';
import { parseBenchArgs } from './lib/command-line.js';
import { median, percentile } from './lib/stats.js';
import { formatTable } from './lib/table.js';

const BATCH = 1000;
const PIPELINE_DEPTH = 64;
const STATUS_SAMPLES = 50;
const PEERS_DEFAULT = 5000;

const [peersText] = parseBenchArgs({
  npmScript: 'bench:node',
  measures: "the overlay node's control API under load: AddPeer requests per second as it grows, Status latency at N peers (root)",
  options: {},
  positionals: [{ name: 'peers', description: `peers the node grows to, ${2 * BATCH}..60000`, shownDefault: String(PEERS_DEFAULT) }],
}).positionals;
const peers = Number(peersText ?? PEERS_DEFAULT);
if (!Number.isInteger(peers) || peers < 2 * BATCH || peers > 60_000) throw new Error(`peers must be ${2 * BATCH}..60000, got ${peersText}`);

function addPeerRequest(i: number): Request {
  return {
    type: 'AddPeer',
    peer: {
      publicKey: randomBytes(32).toString('base64'),
      endpoint: `192.0.2.${1 + (i % 254)}:${20000 + (i % 40000)}`,
      allowedIps: `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`,
      persistentKeepaliveSecs: 0,
      candidates: [],
    },
    scope: 'global',
  };
}

function expectOk(response: Response, what: string): void {
  if (response.type !== 'Ok') throw new Error(`${what}: ${JSON.stringify(response).slice(0, 300)}`);
}

async function main(): Promise<void> {
  requireRoot('bench/node-control');
  const namespace = createNamespace();
  const dataDir = createTempDir('tswg-bench-node-');
  const controlPath = join(createTempDir('tswg-bench-ctl-'), 'node.sock');
  const node = startIn(namespace, TSWG_BIN, ['node', '--data-dir', dataDir, '--control', controlPath], { name: 'tswg node', env: { ...process.env, LOG_LEVEL: 'error' } });
  await waitUntil(() => node.output().includes('tswg node: ready') || !node.running(), 'tswg node to be ready', 20_000, 50);
  if (!node.running()) throw new Error(`tswg node exited:\n${node.output()}`);

  const client = await ControlClient.connect(controlPath);
  const setup = await client.request({
    type: 'SetupGlobalOverlay',
    deployment: 'bench',
    instanceId: 'n1',
    clusterCidr: '10.200.0.0/16',
    sliceCidr: '10.200.1.0/26',
    wgPort: 51820,
    hostAdapterMandatory: false,
  });
  if (setup.type !== 'BridgeName') throw new Error(`setup failed: ${JSON.stringify(setup)}`);

  const rows: Array<Array<string | number | null>> = [];
  let added = 0;
  // Sequential batches (all but the last).
  while (peers - added > BATCH) {
    const start = performance.now();
    for (let i = 0; i < BATCH; i++) expectOk(await client.request(addPeerRequest(added + i)), `AddPeer ${added + i}`);
    const seconds = (performance.now() - start) / 1000;
    added += BATCH;
    rows.push([`${added - BATCH + 1}–${added}`, 'one at a time', Math.round(BATCH / seconds), (seconds * 1e6) / BATCH]);
  }
  // The last batch pipelined.
  if (added < peers) {
    const count = peers - added;
    const start = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const i = added + next++;
        expectOk(await client.request(addPeerRequest(i)), `AddPeer ${i}`);
      }
    };
    await Promise.all(Array.from({ length: PIPELINE_DEPTH }, worker));
    const seconds = (performance.now() - start) / 1000;
    rows.push([`${added + 1}–${peers}`, `${PIPELINE_DEPTH} in flight`, Math.round(count / seconds), (seconds * 1e6) / count]);
    added = peers;
  }

  const latencies: number[] = [];
  let bytes = 0;
  let peerCount = 0;
  for (let i = 0; i < STATUS_SAMPLES; i++) {
    const start = performance.now();
    const status = await client.request({ type: 'Status' });
    latencies.push(performance.now() - start);
    if (status.type !== 'Status') throw new Error(`Status failed: ${JSON.stringify(status).slice(0, 300)}`);
    peerCount = status.peerCount;
    bytes = JSON.stringify(status).length;
  }
  if (peerCount !== peers) throw new Error(`Status reports ${peerCount} peers, expected ${peers}`);
  expectOk(await client.request({ type: 'Shutdown' }), 'Shutdown');
  client.close();
  const exit = await node.waitForExit(30_000);
  if (exit.code !== 0) throw new Error(`tswg node exited with ${exit.code}:\n${node.output()}`);

  console.log(`tswg node control API: AddPeer up to ${peers} peers (one connection)\n`);
  console.log(formatTable(['peers', 'mode', 'AddPeer/s', 'µs/request'], rows));
  console.log(`\nStatus at ${peerCount} peers (${STATUS_SAMPLES} requests, answer ${(bytes / 1024).toFixed(0)} KiB):`);
  console.log(
    formatTable(
      ['median ms', 'p95 ms', 'max ms'],
      [[median(latencies), percentile(latencies, 95), Math.max(...latencies)]],
    ),
  );
}

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
