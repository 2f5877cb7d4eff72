/**
 * The node firewall's cost (figures for BENCHMARKS.md): with N synthetic
 * containers (default 100) in M isolation networks (default 10), per
 * backend (nftables, iptables-nft, iptables-legacy):
 *  - start: detection, leftover removal and the first apply of everything
 *    (own rules, the other iptables variant's chains, foreign nft bypass);
 *  - update: one member more (a re-apply);
 *  - reconcile with nothing changed, and after `nft flush ruleset`;
 *  - stop: the full revert.
 * The host firewall drops forwarded traffic in all three tools, as in the
 * namespace tests. The firewall runs in-process inside a fresh namespace
 * (this script re-runs itself there); no daemon, no real containers.
 *
 *   npm run bench:firewall [-- containers] [-- networks] [-- rounds]   (as root)
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { cleanup, createNamespace, createTempDir, execIn, requireCommands, requireRoot } from '../scripts/lib/netns.js';
import { silentLogger } from '../src/device/logger.js';
import type { FirewallInput } from '../src/overlay/firewall/firewall.js';
import { NodeFirewall } from '../src/overlay/firewall/node-firewall.js';
import { parseBenchArgs } from './lib/command-line.js';
import { machineLine } from './lib/machine.js';
import { median } from './lib/stats.js';
import { formatTable } from './lib/table.js';

const BACKENDS = ['nftables', 'iptables-nft', 'iptables-legacy'] as const;
const CONTAINERS_DEFAULT = 100;
const NETWORKS_DEFAULT = 10;
const ROUNDS_DEFAULT = 5;
const HOSTILE_NFT = 'table inet hostfw {\n  chain forward {\n    type filter hook forward priority filter; policy drop;\n  }\n}\n';

interface Figures {
  startMs: number[];
  updateMs: number[];
  reconcileMs: number[];
  repairMs: number[];
  stopMs: number[];
  rules: number;
}

function input(containers: number, networks: number, extra = 0): FirewallInput {
  const members = Array.from({ length: containers + extra }, (_, i) => ({ ip: `10.200.${10 + Math.floor(i / 200)}.${2 + (i % 200)}`, network: `net${i % networks}` }));
  return { clusterCidr: '10.200.0.0/16', nodeIp: '10.200.1.1', wgPorts: { first: 51820, last: 51884 }, members, masquerade: true };
}

/** Inside the namespace: rounds of start / update / reconcile / repair / stop for one backend; prints JSON. */
async function inner(backend: string, containers: number, networks: number, rounds: number): Promise<void> {
  const figures: Figures = { startMs: [], updateMs: [], reconcileMs: [], repairMs: [], stopMs: [], rules: 0 };
  const time = async (into: number[], work: () => Promise<void>): Promise<void> => {
    const start = performance.now();
    await work();
    into.push(performance.now() - start);
  };
  for (let round = 0; round < rounds; round++) {
    const firewall = new NodeFirewall({ dataDir: createTempDir('tswg-bench-fw-'), log: silentLogger, env: { ...process.env, TSWG_FIREWALL: backend, TSWG_HOST_CONFIG_ROOT: '/nonexistent' }, reconcileMs: 3_600_000 });
    await time(figures.startMs, () => firewall.start(input(containers, networks)));
    if (firewall.status().backend !== backend) throw new Error(`expected ${backend}, got ${JSON.stringify(firewall.status())}`);
    await time(figures.updateMs, () => firewall.update(input(containers, networks, 1)));
    await time(figures.reconcileMs, () => firewall.reconcile());
    if (round === 0) {
      // Rules of ours in every tool: iptables rules by their chain or jump, nft rules by their comment (iptables-nft's show none there).
      const saves = execFileSync('iptables-nft-save', { encoding: 'utf8' }) + execFileSync('iptables-legacy-save', { encoding: 'utf8' });
      const nft = execFileSync('nft', ['list', 'ruleset'], { encoding: 'utf8' });
      figures.rules = saves.split('\n').filter((line) => line.startsWith('-A ') && line.includes('TSWG-')).length + nft.split('\n').filter((line) => line.includes('comment "tswg')).length;
    }
    execFileSync('nft', ['flush', 'ruleset']);
    await time(figures.repairMs, () => firewall.reconcile());
    if (firewall.status().repairs < 1) throw new Error('the flush was not repaired');
    await time(figures.stopMs, () => firewall.stop());
    // Put the host firewall back for the next round (the flush took it).
    execFileSync('iptables-nft', ['-w', '-P', 'FORWARD', 'DROP']);
    execFileSync('nft', ['-f', '-'], { input: HOSTILE_NFT });
  }
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}

async function main(): Promise<void> {
  const [containersText, networksText, roundsText] = parseBenchArgs({
    npmScript: 'bench:firewall',
    measures: "the node firewall's start, update, reconcile, repair and stop times per backend (nftables, iptables-nft, iptables-legacy; root)",
    options: {},
    positionals: [
      { name: 'containers', description: 'synthetic containers, 1..2000', shownDefault: String(CONTAINERS_DEFAULT) },
      { name: 'networks', description: 'isolation networks, 1..containers', shownDefault: String(NETWORKS_DEFAULT) },
      { name: 'rounds', description: 'rounds per backend, 1..50', shownDefault: String(ROUNDS_DEFAULT) },
    ],
  }).positionals;
  const containers = Number(containersText ?? CONTAINERS_DEFAULT);
  const networks = Number(networksText ?? NETWORKS_DEFAULT);
  const rounds = Number(roundsText ?? ROUNDS_DEFAULT);
  if (!Number.isInteger(containers) || containers < 1 || containers > 2000) throw new Error(`containers must be 1..2000, got ${containersText}`);
  if (!Number.isInteger(networks) || networks < 1 || networks > containers) throw new Error(`networks must be 1..containers, got ${networksText}`);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new Error(`rounds must be 1..50, got ${roundsText}`);
  requireRoot('bench/firewall');
  requireCommands('ip', 'nft', 'iptables-nft', 'iptables-legacy');
  const rows = [];
  for (const backend of BACKENDS) {
    const namespace = createNamespace();
    execIn(namespace, 'iptables-nft', ['-w', '-P', 'FORWARD', 'DROP']);
    execIn(namespace, 'iptables-legacy', ['-w', '-P', 'FORWARD', 'DROP']);
    execIn(namespace, 'nft', ['-f', '-'], { input: HOSTILE_NFT });
    const out = execIn(namespace, process.execPath, [fileURLToPath(import.meta.url), '--inner', backend, String(containers), String(networks), String(rounds)], { timeoutMs: 600_000 });
    const f = JSON.parse(out.trim().split('\n').at(-1)!) as Figures;
    rows.push([backend, f.rules, median(f.startMs), median(f.updateMs), median(f.reconcileMs), median(f.repairMs), median(f.stopMs)]);
  }
  console.log(`tswg node firewall: apply and revert (${machineLine()})\n`);
  console.log(`${containers} synthetic containers in ${networks} isolation networks; host FORWARD drops in iptables-nft, iptables-legacy and a foreign nft table; medians of ${rounds} rounds:`);
  console.log(formatTable(['backend', 'rules', 'start ms', 'update ms', 'reconcile ms', 'repair ms', 'stop ms'], rows));
}

if (process.argv[2] === '--inner') {
  inner(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6])).catch((error: unknown) => {
    console.error(error instanceof Error ? error.stack : error);
    process.exitCode = 1;
  });
} else {
  main()
    .catch((error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exitCode = 1;
    })
    .finally(() => cleanup());
}
