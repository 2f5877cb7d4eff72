/**
 * `sudo npm run bench:nat`: what NAT traversal costs, measured in the
 * namespace internet of scripts/lib/nat-topology.ts with real tswg nodes
 * (scripts/nat-node.ts: TUN + Device + NatMaintenance), coturn as STUN and
 * TURN server and a tswg node running the built-in relay, in ONE run:
 *
 *   hole-punched   two nodes behind endpoint-independent NATs (STUN only)
 *   built-in relay two nodes behind endpoint-dependent NATs, with a relay
 *   TURN           two nodes behind endpoint-dependent NATs, with coturn TURN
 *
 * Per path and trial (a fresh pair of homes and nodes every time, so no
 * conntrack entry or session of an earlier trial helps):
 *  - time to first packet: both nodes are configured, made peers, gather
 *    (first NatTick) and get each other's candidates; then the clock starts,
 *    the NatTick that starts the connection goes to both nodes at once and
 *    a ping (every PING_INTERVAL) from A to B through the tunnel starts with
 *    it; the figure is the time of its first reply (ping -D timestamps).
 *    Also shown: when A's tick resolved, and the connection type each side
 *    reports (NatStatusWire);
 *  - throughput: iperf3 TCP, 1 stream, A → B through the tunnel, and its
 *    ratio to the hole-punched path.
 * Paths alternate within every trial (rotated), so machine noise hits all
 * alike; figures are medians over the trials.
 *
 *   npm run build && node dist/bench/nat.js [--trials N] [--duration S] [--hole-punch-timeout S] [--json FILE] [--logs]
 *
 * Everything it creates (namespaces, veths, nodes, coturn, iperf3, ping,
 * temp files) is removed on every exit path, Ctrl-C included (the
 * scripts/lib/netns.ts cleanup registry).
 */
import { writeFileSync } from 'node:fs';
import { cleanup, ip, requireCommands, requireRoot, startIn } from '../scripts/lib/netns.js';
import { startCoturn, type Coturn } from '../scripts/lib/coturn.js';
import { createNatTopology, type Home, type NatBehaviour, type NatTopology, type PublicHost } from '../scripts/lib/nat-topology.js';
import { startNatNode, type NatNode } from '../scripts/lib/nat-node-client.js';
import type { CandidateWire } from '../src/nat/candidates.js';
import type { NatConfigSpec } from '../src/nat/config.js';
import { DEFAULT_HOLE_PUNCH_TIMEOUT_SECS } from '../src/nat/constants.js';
import type { NatStatusWire } from '../src/nat/maintenance.js';
import {
  NAT_TRIALS_DEFAULT,
  NAT_IPERF3_SECONDS_DEFAULT,
  NAT_PING_INTERVAL_SECONDS,
  NAT_FIRST_REPLY_DEADLINE_SECONDS,
  NAT_TICK_TIMEOUT_MS,
  STUN_PORT,
  RELAY_PORT,
  TURN_USER,
  RELAY_CREDENTIAL,
  TURN_MIN_PORT,
  TURN_MAX_PORT,
  TURN_ALLOWED_PEERS,
  TUNNEL_PREFIX,
  TUNNEL_INTERFACE,
} from './constants.js';
import { parseBenchArgs } from './lib/command-line.js';
import { Iperf3Server, runIperf3 } from './lib/iperf.js';
import { machineInfo, machineLine } from './lib/machine.js';
import { median } from './lib/stats.js';
import { formatTable, markdownTable, type Cell } from './lib/table.js';

// ---- coturn (STUN for every path, TURN for one) ----------------------------------

/** coturn in `host`'s namespace: STUN for every path, TURN for one. */
function startBenchCoturn(host: PublicHost): Promise<Coturn> {
  return startCoturn(host.namespace, {
    listenAddresses: [host.address],
    port: STUN_PORT,
    relayAddress: host.address,
    users: [TURN_USER],
    minPort: TURN_MIN_PORT,
    maxPort: TURN_MAX_PORT,
    allowedPeerRanges: TURN_ALLOWED_PEERS,
  });
}

// ---- the paths ------------------------------------------------------------------

interface Servers {
  stun: string;
  relay: string;
  turn: string;
}

interface Path {
  id: 'hole-punched' | 'relay' | 'turn';
  label: string;
  behaviour: NatBehaviour;
  spec(servers: Servers, holePunchTimeoutSecs: number): NatConfigSpec;
  relayCredential?: string;
}

const base = (servers: Servers, holePunchTimeoutSecs: number): NatConfigSpec => ({ enabled: true, stunServers: [servers.stun], holePunchTimeoutSecs });

const PATHS: Path[] = [
  { id: 'hole-punched', label: 'hole-punched', behaviour: 'endpoint-independent', spec: base },
  {
    id: 'relay',
    label: 'built-in relay',
    behaviour: 'endpoint-dependent',
    spec: (servers, timeout) => ({ ...base(servers, timeout), relays: [servers.relay] }),
    relayCredential: RELAY_CREDENTIAL,
  },
  {
    id: 'turn',
    label: 'coturn TURN',
    behaviour: 'endpoint-dependent',
    spec: (servers, timeout) => ({ ...base(servers, timeout), turnServers: [{ addr: servers.turn, username: TURN_USER.name, credential: TURN_USER.password }] }),
  },
];
const REFERENCE: Path['id'] = 'hole-punched';

interface Trial {
  /** Seconds from the connecting tick to the first ping reply; null when none came. */
  firstReplySeconds: number | null;
  /** Seconds from the connecting tick until A's tick resolved. */
  tickSeconds: number | null;
  /** "A/B" connection types as the nodes report them. */
  connection: string;
  mbitPerSecond: number | null;
  /**
   * Whether A (the pinging side) has the smaller public key, so it is the side
   * that yields the handshake (hole-punch.ts YIELD_MS); null when the pair never came up.
   */
  pingingSideYields: boolean | null;
  error?: string;
}

interface Side {
  home: Home;
  node: NatNode;
  inner: string;
}

interface Options {
  trials: number;
  duration: number;
  holePunchTimeoutSecs: number;
  json: string | undefined;
  /** Print both nodes' logs of every trial (to see where the time went). */
  logs: boolean;
}

function parseOptions(): Options {
  const { values } = parseBenchArgs({
    npmScript: 'bench:nat',
    measures: 'time to first packet and throughput of hole-punched, built-in relay and TURN paths between NATed nodes (root)',
    options: {
      trials: { type: 'string', value: 'N', description: 'trials per path, 1..50', shownDefault: String(NAT_TRIALS_DEFAULT) },
      duration: { type: 'string', value: 'S', description: 'seconds of iperf3 per trial, 1..600', shownDefault: String(NAT_IPERF3_SECONDS_DEFAULT) },
      'hole-punch-timeout': { type: 'string', value: 'S', description: 'seconds a hole punch may take, up to 60', shownDefault: String(DEFAULT_HOLE_PUNCH_TIMEOUT_SECS) },
      json: { type: 'string', value: 'FILE', description: 'write the figures to FILE as JSON' },
      logs: { type: 'boolean', description: "print both nodes' logs of every trial" },
    },
  });
  const trials = Number(values.trials ?? NAT_TRIALS_DEFAULT);
  const duration = Number(values.duration ?? NAT_IPERF3_SECONDS_DEFAULT);
  const holePunchTimeoutSecs = Number(values['hole-punch-timeout'] ?? DEFAULT_HOLE_PUNCH_TIMEOUT_SECS);
  if (!Number.isInteger(trials) || trials < 1 || trials > 50) throw new Error(`--trials must be 1..50, got ${values.trials}`);
  if (!Number.isInteger(duration) || duration < 1 || duration > 600) throw new Error(`--duration must be 1..600 seconds, got ${values.duration}`);
  if (!Number.isFinite(holePunchTimeoutSecs) || holePunchTimeoutSecs <= 0 || holePunchTimeoutSecs > 60) {
    throw new Error(`--hole-punch-timeout must be 0..60 seconds (exclusive of 0), got ${values['hole-punch-timeout']}`);
  }
  return { trials, duration, holePunchTimeoutSecs, json: values.json, logs: values.logs === true };
}

let pairCounter = 0;

async function side(topology: NatTopology, behaviour: NatBehaviour, inner: string): Promise<Side> {
  const home = topology.addHome(behaviour);
  const node = await startNatNode(home.node);
  ip(home.node, 'addr', 'add', `${inner}/24`, 'dev', TUNNEL_INTERFACE);
  ip(home.node, 'link', 'set', 'dev', TUNNEL_INTERFACE, 'up');
  return { home, node, inner };
}

/** Two nodes, configured, peers of each other, candidates gathered and swapped: everything up to the connecting tick. */
async function preparePair(topology: NatTopology, path: Path, servers: Servers, options: Options): Promise<[Side, Side]> {
  const subnet = `${TUNNEL_PREFIX}.${++pairCounter}`;
  const a = await side(topology, path.behaviour, `${subnet}.1`);
  const b = await side(topology, path.behaviour, `${subnet}.2`);
  const spec = path.spec(servers, options.holePunchTimeoutSecs);
  const credential = path.relayCredential === undefined ? {} : { relayCredential: path.relayCredential };
  await Promise.all([a, b].map((s) => s.node.request('configure', { nat: spec, ...credential })));
  await a.node.request('addPeer', { publicKey: b.node.publicKey, allowedIps: [`${b.inner}/32`] });
  await b.node.request('addPeer', { publicKey: a.node.publicKey, allowedIps: [`${a.inner}/32`] });
  // The first tick only gathers: no peer has candidates yet.
  await Promise.all([a, b].map((s) => s.node.request('tick', {}, NAT_TICK_TIMEOUT_MS)));
  const [statusA, statusB] = await Promise.all([a, b].map((s) => s.node.request<NatStatusWire>('status')));
  if (statusA!.candidates.length === 0 || statusB!.candidates.length === 0) throw new Error(`${path.label}: a node gathered no candidates`);
  await a.node.request('setPeerCandidates', { publicKey: b.node.publicKey, candidates: statusB!.candidates satisfies CandidateWire[] });
  await b.node.request('setPeerCandidates', { publicKey: a.node.publicKey, candidates: statusA!.candidates satisfies CandidateWire[] });
  return [a, b];
}

/** The unix time (ms) of ping -D's first reply line, or null. */
function firstReplyAt(output: string): number | null {
  const match = /^\[(\d+\.\d+)\] \d+ bytes from /m.exec(output);
  return match === null ? null : Number(match[1]) * 1000;
}

async function runTrial(topology: NatTopology, path: Path, servers: Servers, options: Options): Promise<Trial> {
  let pair: [Side, Side] | null = null;
  let server: Iperf3Server | null = null;
  try {
    pair = await preparePair(topology, path, servers, options);
    const [a, b] = pair;
    // The clock starts with the connecting tick; the ping starts with it, as an application's traffic would.
    const started = Date.now();
    const ping = startIn(a.home.node, 'ping', ['-n', '-D', '-i', String(NAT_PING_INTERVAL_SECONDS), '-c', '1', '-w', String(NAT_FIRST_REPLY_DEADLINE_SECONDS), b.inner], {
      name: `ping ${b.inner}`,
    });
    const tickA = a.node.request('tick', {}, NAT_TICK_TIMEOUT_MS).then(() => (Date.now() - started) / 1000);
    const tickB = b.node.request('tick', {}, NAT_TICK_TIMEOUT_MS);
    const [tickSeconds] = await Promise.all([tickA, tickB]);
    await ping.waitForExit((NAT_FIRST_REPLY_DEADLINE_SECONDS + 5) * 1000);
    const replyAt = firstReplyAt(ping.output());
    const firstReplySeconds = replyAt === null ? null : (replyAt - started) / 1000;
    const [statusA, statusB] = await Promise.all([a, b].map((s) => s.node.request<NatStatusWire>('status')));
    const typeOf = (status: NatStatusWire): string => status.peers[0]?.connectionType ?? 'none';
    const connection = `${typeOf(statusA!)}/${typeOf(statusB!)}`;

    let mbitPerSecond: number | null = null;
    let error: string | undefined;
    server = new Iperf3Server(b.home.node, b.inner);
    try {
      await server.start();
      mbitPerSecond = (await runIperf3(a.home.node, b.inner, { protocol: 'tcp', streams: 1, reverse: false }, options.duration)).mbitPerSecond;
    } catch (failure) {
      error = `iperf3: ${(failure as Error).message.split('\n')[0]}`;
    }
    if (firstReplySeconds === null) error = `no ping reply within ${NAT_FIRST_REPLY_DEADLINE_SECONDS} s${error === undefined ? '' : `; ${error}`}`;
    const pingingSideYields = Buffer.compare(Buffer.from(a.node.publicKey, 'base64'), Buffer.from(b.node.publicKey, 'base64')) < 0;
    return { firstReplySeconds, tickSeconds, connection, mbitPerSecond, pingingSideYields, ...(error === undefined ? {} : { error }) };
  } catch (failure) {
    const logs = pair === null ? '' : pair.map((s, i) => `\n--- node ${i === 0 ? 'A' : 'B'} (last lines)\n${s.node.process.output().split('\n').slice(-15).join('\n')}`).join('');
    return { firstReplySeconds: null, tickSeconds: null, connection: 'failed', mbitPerSecond: null, pingingSideYields: null, error: `${(failure as Error).message.split('\n')[0]}${logs}` };
  } finally {
    if (options.logs && pair !== null) {
      for (const [name, s] of [['A', pair[0]], ['B', pair[1]]] as const) console.log(`--- ${path.label} node ${name}:\n${s.node.process.output()}`);
    }
    // Free the CPU for the next trial; the namespaces (and the idle iperf3 server: Iperf3Server has no stop()) stay until cleanup().
    await Promise.all((pair ?? []).map((s) => s.node.stop().catch(() => undefined)));
  }
}

/** A running relay server on its own public host, started by the node's first tick. */
async function startRelayNode(host: PublicHost, options: Options): Promise<NatNode> {
  const node = await startNatNode(host.namespace);
  const externalAddr = `${host.address}:${RELAY_PORT}`;
  await node.request('configure', {
    nat: { enabled: true, stunServers: [`${host.address}:${STUN_PORT}`], holePunchTimeoutSecs: options.holePunchTimeoutSecs, relayServer: { listenPort: RELAY_PORT, externalAddr, maxSessions: 0, authCredential: RELAY_CREDENTIAL } },
  });
  // Its own gathering may find no STUN answer (coturn lives elsewhere); the relay server starts regardless.
  await node.request('tick', {}, NAT_TICK_TIMEOUT_MS).catch(() => undefined);
  const running = await node.request<string | null>('relayServer');
  if (running !== externalAddr) throw new Error(`the relay node reports relay server ${running}, expected ${externalAddr}:\n${node.process.output().slice(-2000)}`);
  return node;
}

function table(trials: Map<Path['id'], Trial[]>): { headers: string[]; rows: Cell[][] } {
  const headers = ['path', 'NAT', 'reached (A/B)', 'first reply p50 (s)', 'first reply min–max (s)', 'tick done p50 (s)', 'TCP ×1 → (Mbit/s)', '/ hole-punched'];
  const referenceMbit = median((trials.get(REFERENCE) ?? []).flatMap((t) => (t.mbitPerSecond === null ? [] : [t.mbitPerSecond])));
  const rows = PATHS.filter((path) => trials.has(path.id)).map((path) => {
    const list = trials.get(path.id)!;
    const values = (pick: (t: Trial) => number | null): number[] => list.flatMap((t) => (pick(t) === null ? [] : [pick(t)!]));
    const replies = values((t) => t.firstReplySeconds);
    const mbit = median(values((t) => t.mbitPerSecond));
    const reached = [...new Set(list.map((t) => t.connection))].join(', ');
    const range = replies.length === 0 ? null : `${Math.min(...replies).toFixed(2)}–${Math.max(...replies).toFixed(2)}`;
    const failures = list.length - replies.length;
    return [
      path.label,
      path.behaviour,
      failures === 0 ? reached : `${reached} (${failures}/${list.length} no reply)`,
      median(replies),
      range,
      median(values((t) => t.tickSeconds)),
      mbit,
      mbit === null || referenceMbit === null || referenceMbit === 0 ? null : `${(mbit / referenceMbit).toFixed(2)}×`,
    ];
  });
  return { headers, rows };
}

async function main(): Promise<void> {
  const options = parseOptions();
  requireRoot('bench:nat');
  requireCommands('ip', 'iptables', 'sysctl', 'turnserver', 'iperf3', 'ping', 'ss');
  const machine = machineInfo();
  const started = Date.now();
  console.log(`bench:nat — ${machineLine(machine)}`);
  console.log(`${options.trials} trial(s) per path, ${options.duration} s iperf3 TCP ×1, holePunchTimeoutSecs ${options.holePunchTimeoutSecs}, ping every ${NAT_PING_INTERVAL_SECONDS * 1000} ms`);

  const topology = createNatTopology();
  const coturnHost = topology.addPublicHost();
  const relayHost = topology.addPublicHost();
  await startBenchCoturn(coturnHost);
  await startRelayNode(relayHost, options);
  const servers: Servers = { stun: `${coturnHost.address}:${STUN_PORT}`, turn: `${coturnHost.address}:${STUN_PORT}`, relay: `${relayHost.address}:${RELAY_PORT}` };
  console.log(`  coturn (STUN, TURN) at ${servers.stun}, built-in relay at ${servers.relay}`);

  const trials = new Map<Path['id'], Trial[]>(PATHS.map((path) => [path.id, []]));
  for (let round = 0; round < options.trials; round++) {
    for (let i = 0; i < PATHS.length; i++) {
      const path = PATHS[(i + round) % PATHS.length]!;
      const trial = await runTrial(topology, path, servers, options);
      trials.get(path.id)!.push(trial);
      const reply = trial.firstReplySeconds === null ? 'no reply' : `first reply ${trial.firstReplySeconds.toFixed(3)} s`;
      const tick = trial.tickSeconds === null ? '' : `, tick done ${trial.tickSeconds.toFixed(3)} s`;
      const mbit = trial.mbitPerSecond === null ? '' : `, ${trial.mbitPerSecond.toFixed(0)} Mbit/s`;
      const yields = trial.pingingSideYields === null ? '' : trial.pingingSideYields ? ' (pinging side yields)' : ' (pinging side initiates)';
      console.log(`  trial ${round + 1}  ${path.label.padEnd(15)} ${trial.connection.padEnd(26)} ${reply}${tick}${mbit}${yields}${trial.error === undefined ? '' : `\n    FAILED: ${trial.error}`}`);
    }
  }

  const { headers, rows } = table(trials);
  const elapsed = (Date.now() - started) / 1000;
  const command = `bench:nat --trials ${options.trials} --duration ${options.duration} --hole-punch-timeout ${options.holePunchTimeoutSecs}`;
  console.log(`\n${formatTable(headers, rows)}\n\n(${elapsed.toFixed(0)} s; medians over ${options.trials} trial(s); "first reply": from the connecting NatTick to the first ping reply A → B)`);
  console.log(`\nmarkdown:\n\nMachine: ${machineLine(machine)}. \`${command}\`.\n\n${markdownTable(headers, rows)}`);
  if (options.json !== undefined) {
    const raw = Object.fromEntries(trials);
    writeFileSync(options.json, `${JSON.stringify({ machine, options, elapsedSeconds: elapsed, headers, rows, raw }, null, 2)}\n`);
    console.log(`\nJSON written to ${options.json}`);
  }
}

try {
  await main();
} finally {
  cleanup();
}
