/**
 * One etcd membership watcher in a process of its own, so bench:membership can
 * read its RSS alone: it joins the deployment, hands its peers to a sink that
 * only counts them, and prints one JSON line per request on stdin:
 *   "rss"   → {"peers": N, "rss": bytes, "heapUsed": bytes} (after a full GC when --expose-gc)
 *   "stop"  → revokes its lease, prints {"stopped": true} and exits.
 *
 *   node [--expose-gc] membership-watcher.js <endpoint> <prefix> <deployment> <nodeId>
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { EtcdMembership } from '../../src/overlay/membership/etcd.js';

const [endpoint, prefix, deployment, nodeId] = process.argv.slice(2);
if (endpoint === undefined || prefix === undefined || deployment === undefined || nodeId === undefined) {
  process.stderr.write('usage: membership-watcher.js <endpoint> <prefix> <deployment> <nodeId>\n');
  process.exit(2);
}

const peers = new Set<string>();
const dataDir = mkdtempSync(join(tmpdir(), 'tswg-bench-watcher-'));
const membership = new EtcdMembership({
  config: { endpoints: [endpoint], prefix, leaseTtlSeconds: 30, sliceLength: 26 },
  dataDir,
  log: { verbose: () => undefined, error: (message) => process.stderr.write(`${message}\n`) },
});
await membership.start({ deployment, nodeId, publicKey: randomBytes(32).toString('base64'), clusterCidr: '10.0.0.0/8', wgPort: 51820 });
await membership.onPeers({ add: async (id) => void peers.add(id), remove: async (id) => void peers.delete(id) });
await membership.publish({ endpoint: '192.0.2.1:51820', candidates: [], serviceSubnets: [] });
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);

const collect = (globalThis as { gc?: () => void }).gc;
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'rss') {
    collect?.();
    const usage = process.memoryUsage();
    process.stdout.write(`${JSON.stringify({ peers: peers.size, rss: usage.rss, heapUsed: usage.heapUsed })}\n`);
  } else if (line === 'stop') {
    await membership.stop(true);
    rmSync(dataDir, { recursive: true, force: true });
    process.stdout.write(`${JSON.stringify({ stopped: true })}\n`);
    process.exit(0);
  }
}
