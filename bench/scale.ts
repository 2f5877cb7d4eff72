/**
 * `sudo npm run bench:scale`: one WireGuard daemon in a namespace with many
 * peers (default 10,000: random public keys, one /32 allowed IP and an
 * endpoint each), configured with one `wg setconf`. Reports resident memory
 * (VmRSS, VmHWM) idle with one peer and with all peers, the time the
 * configuration takes, the time `wg show <if> dump` takes, and the time a
 * raw UAPI `get=1` on the socket takes (medians of a few repeats). tswg is
 * measured first, then wireguard-go the same way as the reference.
 *
 *   npm run build && node dist/bench/scale.js [--peers N] [--only tswg|wireguard-go] [--json FILE]
 *
 * Everything it creates is removed on every exit path (scripts/lib/netns.ts).
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { cleanup, createNamespace, createTempDir, execIn, ip, requireCommands, requireRoot, uniqueName, writeSecretFile } from '../scripts/lib/netns.js';
import { DEFAULT_PORT, startImplementation, UAPI_DIRECTORY, wgKeyPair, type Implementation } from '../scripts/lib/topology.js';
import { SCALE_PEERS_DEFAULT, SCALE_REPEATS, SCALE_SETTLE_MS } from './constants.js';
import { parseBenchArgs } from './lib/command-line.js';
import { machineInfo, machineLine } from './lib/machine.js';
import { memory, MIB, type MemoryFigures } from './lib/proc.js';
import { median } from './lib/stats.js';
import { formatTable, markdownTable, type Cell } from './lib/table.js';
import { uapiGet } from './lib/uapi-client.js';

const IMPLEMENTATIONS: Implementation[] = ['tswg', 'wireguard-go'];
/** `wg setconf` of 10,000 peers may be slow on a busy machine; fail clearly rather than hang. */
const CONFIGURE_TIMEOUT_MS = 300_000;

interface ScaleFigures {
  implementation: Implementation;
  idle: MemoryFigures;
  loaded: MemoryFigures;
  configureMs: number;
  dumpMs: number;
  dumpLines: number;
  uapiGetMs: number;
  uapiGetBytes: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The i-th peer: a random public key, 10.x.y.z/32 and an endpoint in 198.18.0.0/15 that nothing answers. */
function peerSection(i: number): string {
  const publicKey = randomBytes(32).toString('base64');
  const allowed = `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}/32`;
  const endpoint = `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 0xff}.${i & 0xff}:${DEFAULT_PORT}`;
  return `[Peer]\nPublicKey = ${publicKey}\nAllowedIPs = ${allowed}\nEndpoint = ${endpoint}\n\n`;
}

function timed(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

async function measure(implementation: Implementation, peers: number): Promise<ScaleFigures> {
  const namespace = createNamespace();
  const interfaceName = uniqueName();
  const daemon = await startImplementation(implementation, namespace, interfaceName);
  const dir = createTempDir('tswg-scale-');
  const keys = wgKeyPair();
  const keyFile = writeSecretFile(dir, 'private.key', keys.privateKey);
  const wg = (args: string[], timeoutMs = 60_000): string => execIn(namespace, 'wg', args, { timeoutMs });

  wg(['set', interfaceName, 'private-key', keyFile, 'listen-port', String(DEFAULT_PORT)]);
  const one = peerSection(0).split('\n');
  wg(['set', interfaceName, 'peer', one[1]!.split(' = ')[1]!, 'allowed-ips', one[2]!.split(' = ')[1]!, 'endpoint', one[3]!.split(' = ')[1]!]);
  ip(namespace, 'addr', 'add', '198.19.255.1/24', 'dev', interfaceName);
  ip(namespace, 'link', 'set', 'dev', interfaceName, 'up');
  await sleep(SCALE_SETTLE_MS);
  const idle = memory(daemon.pid);

  let config = `[Interface]\nPrivateKey = ${keys.privateKey}\nListenPort = ${DEFAULT_PORT}\n\n`;
  for (let i = 0; i < peers; i++) config += peerSection(i);
  const configFile = writeSecretFile(dir, 'scale.conf', config);
  const configureMs = timed(() => wg(['setconf', interfaceName, configFile], CONFIGURE_TIMEOUT_MS));
  const configured = wg(['show', interfaceName, 'peers']).trim().split('\n').length;
  if (configured !== peers) throw new Error(`${implementation}: wg show lists ${configured} peers after setconf of ${peers}`);
  await sleep(SCALE_SETTLE_MS);
  const loaded = memory(daemon.pid);

  const dumpTimes: number[] = [];
  let dumpLines = 0;
  for (let i = 0; i < SCALE_REPEATS; i++) {
    dumpTimes.push(timed(() => (dumpLines = wg(['show', interfaceName, 'dump']).trim().split('\n').length)));
  }
  if (dumpLines !== peers + 1) throw new Error(`${implementation}: wg show dump printed ${dumpLines} lines, expected ${peers + 1}`);
  const getTimes: number[] = [];
  let uapiGetBytes = 0;
  for (let i = 0; i < SCALE_REPEATS; i++) {
    const result = await uapiGet(`${UAPI_DIRECTORY}/${interfaceName}.sock`);
    if (result.peers !== peers) throw new Error(`${implementation}: UAPI get listed ${result.peers} peers, expected ${peers}`);
    getTimes.push(result.ms);
    uapiGetBytes = result.bytes;
  }
  await daemon.stop();
  return { implementation, idle, loaded, configureMs, dumpMs: median(dumpTimes)!, dumpLines, uapiGetMs: median(getTimes)!, uapiGetBytes };
}

async function main(): Promise<void> {
  const { values } = parseBenchArgs({
    npmScript: 'bench:scale',
    measures: 'memory, configuration time and dump time of one daemon with many peers, tswg and wireguard-go (root)',
    options: {
      peers: { type: 'string', value: 'N', description: 'peers, 1..65536', shownDefault: String(SCALE_PEERS_DEFAULT) },
      only: { type: 'string', value: 'IMPLEMENTATION', description: `measure only ${IMPLEMENTATIONS.join(' or ')}`, shownDefault: 'both' },
      json: { type: 'string', value: 'FILE', description: 'write the figures to FILE as JSON' },
    },
  });
  const peers = Number(values.peers ?? SCALE_PEERS_DEFAULT);
  if (!Number.isInteger(peers) || peers < 1 || peers > 65_536) throw new Error(`--peers must be 1..65536, got ${values.peers}`);
  if (values.only !== undefined && !IMPLEMENTATIONS.includes(values.only as Implementation)) {
    throw new Error(`--only ${values.only}: one of ${IMPLEMENTATIONS.join(', ')}`);
  }
  requireRoot('bench:scale');
  requireCommands('ip', 'wg', 'wireguard-go');
  const machine = machineInfo();
  console.log(`bench:scale — ${machineLine(machine)}; ${peers.toLocaleString('en-US')} peers`);

  const results: ScaleFigures[] = [];
  for (const implementation of IMPLEMENTATIONS.filter((i) => values.only === undefined || i === values.only)) {
    console.log(`  measuring ${implementation} ...`);
    results.push(await measure(implementation, peers));
  }

  const n = peers.toLocaleString('en-US');
  const headers = ['figure', ...results.map((r) => r.implementation)];
  const figure = (name: string, pick: (r: ScaleFigures) => number): Cell[] => [name, ...results.map(pick)];
  const rows: Cell[][] = [
    figure('VmRSS idle, 1 peer (MiB)', (r) => r.idle.rss / MIB),
    figure('VmHWM idle, 1 peer (MiB)', (r) => r.idle.hwm / MIB),
    figure(`VmRSS, ${n} peers (MiB)`, (r) => r.loaded.rss / MIB),
    figure(`VmHWM, ${n} peers (MiB)`, (r) => r.loaded.hwm / MIB),
    figure('RSS per added peer (KiB)', (r) => (r.loaded.rss - r.idle.rss) / 1024 / (peers - 1 || 1)),
    figure(`wg setconf of ${n} peers (ms)`, (r) => r.configureMs),
    figure(`wg show dump, ${n} peers (ms, median of ${SCALE_REPEATS})`, (r) => r.dumpMs),
    figure(`raw UAPI get=1 (ms, median of ${SCALE_REPEATS})`, (r) => r.uapiGetMs),
    figure('UAPI get answer (KiB)', (r) => r.uapiGetBytes / 1024),
  ];
  console.log(`\n${formatTable(headers, rows)}`);
  console.log(`\nmarkdown:\n\nMachine: ${machineLine(machine)}. \`bench:scale --peers ${peers}\`.\n\n${markdownTable(headers, rows)}`);
  if (values.json !== undefined) {
    writeFileSync(values.json, `${JSON.stringify({ machine, peers, results, headers, rows }, null, 2)}\n`);
    console.log(`\nJSON written to ${values.json}`);
  }
}

try {
  await main();
} finally {
  cleanup();
}
