/**
 * Route add/delete through the library versus through `ip` processes.
 *
 * In a scratch network namespace (with a veth pair, up), N route add/delete
 * pairs (default 1000) of distinct /32 link-scope routes:
 *   library: addRouteViaDev + deleteRouteViaDev inside withNetns (one netlink
 *            socket created in the namespace, synchronous request/ACK each);
 *   ip:      `ip -n NS route add|del <dst>/32 dev <veth>`, one process each,
 *            spawned from Node (execFileSync, as a daemon shelling out would);
 *   ip (sh): the same 2N commands from one `sh` script, which shows the cost
 *            of the ip processes without Node's spawnSync overhead.
 * Prints the rates (pairs per second) and the ratios; removes the namespace.
 *
 *   npm run build && node dist/bench/netlink-routes.js [pairs]      (as root)
 */
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { cleanup, createNamespace, ip, requireRoot } from '../scripts/lib/netns.js';
import { withNetns } from '../src/platform/netns.js';
import { parseBenchArgs } from './lib/command-line.js';

const PAIRS_DEFAULT = 1000;
const [pairsText] = parseBenchArgs({
  npmScript: 'bench:netlink',
  measures: "route add/delete pairs per second through the netlink library versus through `ip` processes (root)",
  options: {},
  positionals: [{ name: 'pairs', description: 'route add/delete pairs, 1..65000', shownDefault: String(PAIRS_DEFAULT) }],
}).positionals;
const pairs = Number(pairsText ?? PAIRS_DEFAULT);
if (!Number.isInteger(pairs) || pairs <= 0 || pairs > 65_000) throw new Error(`pairs must be 1..65000, got ${pairsText}`);

const destination = (i: number): string => `10.${100 + ((i >> 16) & 0x3f)}.${(i >> 8) & 0xff}.${i & 0xff}`;

function routeCount(namespace: string): number {
  return (JSON.parse(ip(namespace, '-j', 'route', 'show')) as unknown[]).length;
}

async function main(): Promise<void> {
  requireRoot('bench/netlink-routes');
  const namespace = createNamespace();
  const dev = 'bench0';
  ip(namespace, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', 'bench1');
  ip(namespace, 'link', 'set', dev, 'up');
  ip(namespace, 'link', 'set', 'bench1', 'up');
  const baseline = routeCount(namespace);

  // Library: everything inside one withNetns (the netlink socket lives in the namespace).
  let libraryMs = 0;
  const setupStart = performance.now();
  await withNetns({ path: `/run/netns/${namespace}` }, async (ns) => {
    const setupMs = performance.now() - setupStart;
    // Warm-up (lazy loads, JIT), not timed.
    for (let i = 0; i < 50; i++) {
      await ns.addRouteViaDev('10.99.0.1', 32, dev);
      await ns.deleteRouteViaDev('10.99.0.1', 32, dev);
    }
    const start = performance.now();
    for (let i = 0; i < pairs; i++) {
      await ns.addRouteViaDev(destination(i), 32, dev);
      await ns.deleteRouteViaDev(destination(i), 32, dev);
    }
    libraryMs = performance.now() - start;
    console.log(`withNetns setup (worker + setns + socket): ${setupMs.toFixed(1)} ms`);
  });
  if (routeCount(namespace) !== baseline) throw new Error('library run left routes behind');

  const ipStart = performance.now();
  for (let i = 0; i < pairs; i++) {
    execFileSync('ip', ['-n', namespace, 'route', 'add', `${destination(i)}/32`, 'dev', dev], { stdio: 'ignore' });
    execFileSync('ip', ['-n', namespace, 'route', 'del', `${destination(i)}/32`, 'dev', dev], { stdio: 'ignore' });
  }
  const ipMs = performance.now() - ipStart;
  if (routeCount(namespace) !== baseline) throw new Error('ip run left routes behind');

  let script = '';
  for (let i = 0; i < pairs; i++) {
    script += `ip -n ${namespace} route add ${destination(i)}/32 dev ${dev}\nip -n ${namespace} route del ${destination(i)}/32 dev ${dev}\n`;
  }
  const shStart = performance.now();
  execFileSync('sh', ['-e'], { input: script, stdio: ['pipe', 'ignore', 'inherit'] });
  const shMs = performance.now() - shStart;
  if (routeCount(namespace) !== baseline) throw new Error('sh run left routes behind');

  const libraryRate = pairs / (libraryMs / 1000);
  const ipRate = pairs / (ipMs / 1000);
  console.log(`route add/delete pairs: ${pairs} (/32 link-scope routes via a veth, in scratch namespace ${namespace})`);
  console.log(`library (RTNETLINK, withNetns): ${libraryRate.toFixed(0).padStart(8)} pairs/s  (${((libraryMs * 1000) / pairs).toFixed(1)} us/pair, ${libraryMs.toFixed(1)} ms total)`);
  console.log(`ip processes from Node:         ${ipRate.toFixed(0).padStart(8)} pairs/s  (${((ipMs * 1000) / pairs).toFixed(1)} us/pair, ${ipMs.toFixed(1)} ms total)`);
  const shRate = pairs / (shMs / 1000);
  console.log(`ip processes from one sh:       ${shRate.toFixed(0).padStart(8)} pairs/s  (${((shMs * 1000) / pairs).toFixed(1)} us/pair, ${shMs.toFixed(1)} ms total)`);
  console.log(`ratio library / ip (spawned from Node): ${(libraryRate / ipRate).toFixed(1)}x`);
  console.log(`ratio library / ip (from one sh):       ${(libraryRate / shRate).toFixed(1)}x`);
}

try {
  await main();
} finally {
  cleanup();
}
