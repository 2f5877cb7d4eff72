/**
 * The node resolver's throughput beside dnsmasq (figures for BENCHMARKS.md).
 *
 * One namespace holds a `tswg node` (resolver on 10.200.1.1:53) and two
 * dnsmasq: an "upstream" on 127.0.0.3 that answers *.example.test, and a
 * "peer" on 127.0.0.2 that knows the same local name (--host-record) and
 * forwards the rest to the upstream with its cache off, so both resolvers
 * do the same work:
 *   - local:     web.bench.internal A, answered from the zone / host record;
 *   - forwarded: <random>.example.test A (a new name per query, so nothing
 *     can be merged or cached), relayed to the upstream and back.
 * A closed-loop generator (bench/lib/dns-load.ts, in the namespace) keeps
 * CONCURRENCY UDP queries outstanding for SECONDS per round; rounds
 * alternate between the resolvers. Figures are answered queries per second,
 * median and min–max over rounds; failures (wrong rcode, no record, no
 * answer in 2 s) are counted. The generator shares the machine's cores
 * with the resolvers, so the figures are relative, not absolute.
 *
 *   npm run bench:dns [-- rounds] [-- seconds] [-- concurrency]        (as root)
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanup, createNamespace, createTempDir, execIn, requireCommands, requireRoot, startIn, waitUntil } from '../scripts/lib/netns.js';
import { TSWG_BIN } from '../scripts/lib/topology.js';
import { ControlClient } from '../src/overlay/control-client.js';
import { parseBenchArgs } from './lib/command-line.js';
import { machineLine } from './lib/machine.js';
import { median } from './lib/stats.js';
import { formatTable } from './lib/table.js';

const ROUNDS_DEFAULT = 5;
const SECONDS_DEFAULT = 3;
const CONCURRENCY_DEFAULT = 32;
const NODE_IP = '10.200.1.1';
const PEER_IP = '127.0.0.2';
const UPSTREAM_IP = '127.0.0.3';
const LOCAL_NAME = 'web.bench.internal';
/** A fresh name per query (dns-load's `*`): dnsmasq would otherwise answer many identical queries from one upstream exchange. */
const FORWARDED_NAME = '*.example.test';

const [roundsText, secondsText, concurrencyText] = parseBenchArgs({
  npmScript: 'bench:dns',
  measures: "answered queries per second of the node's resolver beside dnsmasq, local and forwarded names (root)",
  options: {},
  positionals: [
    { name: 'rounds', description: 'rounds per resolver, 1..50', shownDefault: String(ROUNDS_DEFAULT) },
    { name: 'seconds', description: 'seconds per round, up to 60', shownDefault: String(SECONDS_DEFAULT) },
    { name: 'concurrency', description: 'queries kept outstanding, 1..1000', shownDefault: String(CONCURRENCY_DEFAULT) },
  ],
}).positionals;
const rounds = Number(roundsText ?? ROUNDS_DEFAULT);
const seconds = Number(secondsText ?? SECONDS_DEFAULT);
const concurrency = Number(concurrencyText ?? CONCURRENCY_DEFAULT);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new Error(`rounds must be 1..50, got ${roundsText}`);
if (!(seconds > 0 && seconds <= 60)) throw new Error(`seconds must be in (0, 60], got ${secondsText}`);
if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1000) throw new Error(`concurrency must be 1..1000, got ${concurrencyText}`);

const LOAD_SCRIPT = join(fileURLToPath(new URL('.', import.meta.url)), 'lib', 'dns-load.js');

interface LoadResult {
  answered: number;
  failures: number;
  seconds: number;
  qps: number;
}

function load(namespace: string, host: string, name: string): LoadResult {
  const output = execIn(namespace, process.execPath, [LOAD_SCRIPT, host, '53', name, 'A', String(concurrency), String(seconds * 1000)], { timeoutMs: (seconds + 30) * 1000 });
  return JSON.parse(output.trim().split('\n').pop()!) as LoadResult;
}

async function main(): Promise<void> {
  requireRoot('bench/dns');
  requireCommands('ip', 'dnsmasq');
  const namespace = createNamespace();
  const dir = createTempDir('tswg-bench-dns-');
  const common = ['--no-daemon', '--no-resolv', '--no-hosts', '--bind-interfaces', '--user=root'];
  const upstream = startIn(namespace, 'dnsmasq', [...common, `--listen-address=${UPSTREAM_IP}`, '--address=/example.test/192.0.2.7', `--pid-file=${join(dir, 'up.pid')}`], { name: 'dnsmasq upstream' });
  const peer = startIn(
    namespace,
    'dnsmasq',
    [...common, `--listen-address=${PEER_IP}`, `--host-record=${LOCAL_NAME},10.200.1.50`, `--server=${UPSTREAM_IP}`, '--cache-size=0', `--pid-file=${join(dir, 'peer.pid')}`],
    { name: 'dnsmasq peer' },
  );
  const controlPath = join(dir, 'node.sock');
  const node = startIn(namespace, TSWG_BIN, ['node', '--data-dir', join(dir, 'data'), '--control', controlPath], {
    name: 'tswg node',
    env: { ...process.env, LOG_LEVEL: 'error', TSWG_DNS_UPSTREAMS: UPSTREAM_IP },
  });
  await waitUntil(() => node.output().includes('tswg node: ready') || !node.running(), 'tswg node to be ready', 20_000, 50);
  if (!node.running()) throw new Error(`tswg node exited:\n${node.output()}`);
  if (!upstream.running() || !peer.running()) throw new Error(`dnsmasq exited:\n${upstream.output()}\n${peer.output()}`);
  const client = await ControlClient.connect(controlPath);
  const setup = await client.request({ type: 'SetupGlobalOverlay', deployment: 'bench', instanceId: 'n1', clusterCidr: '10.200.0.0/16', sliceCidr: '10.200.1.0/26', wgPort: 51820, hostAdapterMandatory: false });
  if (setup.type !== 'BridgeName') throw new Error(`SetupGlobalOverlay: ${JSON.stringify(setup)}`);
  const registered = await client.request({ type: 'RegisterDns', name: 'web', ip: '10.200.1.50' });
  if (registered.type !== 'Ok') throw new Error(`RegisterDns: ${JSON.stringify(registered)}`);

  const targets = [
    { resolver: 'tswg node', kind: 'local', host: NODE_IP, name: LOCAL_NAME },
    { resolver: 'dnsmasq', kind: 'local', host: PEER_IP, name: LOCAL_NAME },
    { resolver: 'tswg node', kind: 'forwarded', host: NODE_IP, name: FORWARDED_NAME },
    { resolver: 'dnsmasq', kind: 'forwarded', host: PEER_IP, name: FORWARDED_NAME },
  ];
  // One short warm-up each (JIT, ARP, sockets), not counted.
  for (const target of targets) execIn(namespace, process.execPath, [LOAD_SCRIPT, target.host, '53', target.name, 'A', '4', '300'], { timeoutMs: 30_000 });
  const results = targets.map(() => ({ rates: [] as number[], failures: 0, answered: 0 }));
  for (let round = 0; round < rounds; round++) {
    for (const [i, target] of targets.entries()) {
      const result = load(namespace, target.host, target.name);
      results[i]!.rates.push(result.qps);
      results[i]!.failures += result.failures;
      results[i]!.answered += result.answered;
    }
  }
  const status = await client.request({ type: 'Status' });
  await client.request({ type: 'Shutdown' });
  client.close();
  await node.waitForExit(30_000);
  await upstream.stop();
  await peer.stop();

  console.log(`node resolver vs dnsmasq, UDP, closed loop (${machineLine()})\n`);
  console.log(`${rounds} rounds × ${seconds} s per resolver and kind, ${concurrency} queries outstanding, generator in the same namespace:`);
  console.log(
    formatTable(
      ['resolver', 'answer', 'queries/s median', 'min', 'max', 'answered', 'failures'],
      targets.map((target, i) => {
        const r = results[i]!;
        return [target.resolver, target.kind, median(r.rates), Math.min(...r.rates), Math.max(...r.rates), r.answered, r.failures];
      }),
    ),
  );
  if (status.type === 'Status' && status.dns !== undefined) console.log(`\nnode resolver counters: ${JSON.stringify(status.dns)}`);
  const failures = results.reduce((sum, r) => sum + r.failures, 0);
  console.log(`\nfailed queries: ${failures}`);
}

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
