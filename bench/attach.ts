/**
 * Container attach and detach on one `tswg node` (figures for BENCHMARKS.md):
 *  - the latency of one AttachContainer while the node grows to N attached
 *    containers (default 100), median / p99 / max, and of one
 *    DetachContainer as they all leave;
 *  - attach+detach cycles per second (one container, repeatedly, for a
 *    fixed number of rounds), median and spread over rounds;
 *  - the node's RSS idle, with N containers attached, and after they left.
 *
 * Containers are real processes in network namespaces of their own
 * (`unshare --net sleep`); a /26 service subnet holds 61 of them, so N is
 * spread over ceil(N/50) auto services. Every request is checked; failures
 * are counted and printed. Everything is removed at the end.
 *
 *   npm run bench:attach [-- containers] [-- rounds]               (as root)
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startContainer } from '../scripts/lib/containers.js';
import { cleanup, createNamespace, createTempDir, requireCommands, requireRoot, startIn, waitUntil, type NamespaceProcess } from '../scripts/lib/netns.js';
import { TSWG_BIN } from '../scripts/lib/topology.js';
import { ControlClient } from '../src/overlay/control-client.js';
import type { Request } from '../src/overlay/protocol.js';
import { parseBenchArgs } from './lib/command-line.js';
import { machineLine } from './lib/machine.js';
import { memory, MIB } from './lib/proc.js';
import { median, percentile } from './lib/stats.js';
import { formatTable } from './lib/table.js';

const CONTAINERS_DEFAULT = 100;
const ROUNDS_DEFAULT = 5;
const CYCLES_PER_ROUND = 50;
const CONTAINERS_PER_SERVICE = 50;

const [containersText, roundsText] = parseBenchArgs({
  npmScript: 'bench:attach',
  measures: 'AttachContainer and DetachContainer latency, attach+detach cycles per second and node RSS on one tswg node (root)',
  options: {},
  positionals: [
    { name: 'containers', description: 'containers attached, 1..1000', shownDefault: String(CONTAINERS_DEFAULT) },
    { name: 'rounds', description: 'rounds of attach+detach cycles, 1..100', shownDefault: String(ROUNDS_DEFAULT) },
  ],
}).positionals;
const containers = Number(containersText ?? CONTAINERS_DEFAULT);
const rounds = Number(roundsText ?? ROUNDS_DEFAULT);
if (!Number.isInteger(containers) || containers < 1 || containers > 1000) throw new Error(`containers must be 1..1000, got ${containersText}`);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) throw new Error(`rounds must be 1..100, got ${roundsText}`);

function attachRequest(pid: number, service: string): Request {
  return { type: 'AttachContainer', handle: { linuxPid: pid }, service, joinGlobal: false, dnsServer: null, dnsDomain: null, ephemeral: false, isolationNetwork: null };
}

async function main(): Promise<void> {
  requireRoot('bench/attach');
  requireCommands('ip', 'unshare');
  const namespace = createNamespace();
  const dataDir = createTempDir('tswg-bench-attach-');
  const controlPath = join(createTempDir('tswg-bench-ctl-'), 'node.sock');
  const node = startIn(namespace, TSWG_BIN, ['node', '--data-dir', dataDir, '--control', controlPath], { name: 'tswg node', env: { ...process.env, LOG_LEVEL: 'error' } });
  await waitUntil(() => node.output().includes('tswg node: ready') || !node.running(), 'tswg node to be ready', 20_000, 50);
  if (!node.running()) throw new Error(`tswg node exited:\n${node.output()}`);
  const client = await ControlClient.connect(controlPath);
  let failures = 0;
  const ask = async (request: Request, expected: string): Promise<boolean> => {
    const answer = await client.request(request);
    if (answer.type === expected) return true;
    failures++;
    console.error(`${request.type}: ${JSON.stringify(answer).slice(0, 200)}`);
    return false;
  };
  await ask({ type: 'SetupGlobalOverlay', deployment: 'bench', instanceId: 'n1', clusterCidr: '10.200.0.0/16', sliceCidr: '10.200.1.0/26', wgPort: 51820, hostAdapterMandatory: false }, 'BridgeName');
  const services = Array.from({ length: Math.ceil(containers / CONTAINERS_PER_SERVICE) }, (_, i) => `svc${i}`);
  for (const service of services) await ask({ type: 'SetupServiceOverlay', service, mode: 'auto' }, 'ServiceOverlay');
  const rssIdle = memory(node.pid).rss;

  const procs: NamespaceProcess[] = [];
  for (let i = 0; i < containers; i++) procs.push(await startContainer(namespace, `container ${i}`));
  const attachMs: number[] = [];
  for (const [i, proc] of procs.entries()) {
    const start = performance.now();
    if (await ask(attachRequest(proc.pid, services[Math.floor(i / CONTAINERS_PER_SERVICE)]!), 'Attached')) attachMs.push(performance.now() - start);
  }
  const rssAttached = memory(node.pid).rss;
  const detachMs: number[] = [];
  for (const proc of procs) {
    const start = performance.now();
    if (await ask({ type: 'DetachContainer', handle: { linuxPid: proc.pid } }, 'Ok')) detachMs.push(performance.now() - start);
  }
  const rssAfter = memory(node.pid).rss;

  const cycleRates: number[] = [];
  const cycler = procs[0]!;
  for (let round = 0; round < rounds; round++) {
    const start = performance.now();
    for (let i = 0; i < CYCLES_PER_ROUND; i++) {
      await ask(attachRequest(cycler.pid, services[0]!), 'Attached');
      await ask({ type: 'DetachContainer', handle: { linuxPid: cycler.pid } }, 'Ok');
    }
    cycleRates.push(CYCLES_PER_ROUND / ((performance.now() - start) / 1000));
  }

  await ask({ type: 'Shutdown' }, 'Ok');
  client.close();
  await node.waitForExit(30_000);
  for (const proc of procs) await proc.stop();

  console.log(`tswg node: container attach/detach (${machineLine()})\n`);
  console.log(`${containers} containers over ${services.length} auto service(s), one request at a time:`);
  console.log(
    formatTable(
      ['operation', 'n', 'median ms', 'p99 ms', 'max ms'],
      [
        ['AttachContainer', attachMs.length, median(attachMs), percentile(attachMs, 99), Math.max(...attachMs)],
        ['DetachContainer', detachMs.length, median(detachMs), percentile(detachMs, 99), Math.max(...detachMs)],
      ],
    ),
  );
  console.log(`\nattach+detach cycles of one container, ${rounds} rounds × ${CYCLES_PER_ROUND}:`);
  console.log(formatTable(['cycles/s median', 'min', 'max'], [[median(cycleRates), Math.min(...cycleRates), Math.max(...cycleRates)]]));
  console.log('\nnode RSS:');
  console.log(
    formatTable(
      ['idle MiB', `${containers} attached MiB`, 'after detach MiB'],
      [[rssIdle / MIB, rssAttached / MIB, rssAfter / MIB]],
    ),
  );
  console.log(`\nfailed requests: ${failures}`);
  if (failures > 0) process.exitCode = 1;
}

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
