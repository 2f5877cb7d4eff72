/**
 * `npm run bench:flood`: do legitimate peers keep completing handshakes
 * while ~10,000 handshake initiations per second hit the device's port?
 *
 *   npm run build && node dist/bench/handshake-flood.js [--rate N] [--seconds S] [--peers P]
 *
 * One Device (in-memory TUN, the real UDP port on loopback) with P
 * configured peers, each a protocol-core Tunnel in this process that
 * handshakes again FLOOD_LEGIT_PAUSE_MS after each completed one. Phase 1
 * runs without a flood, phase 2 with a flooder thread sending initiations
 * with a valid MAC1 from random (unknown) keys, from FLOOD_SOURCES loopback
 * addresses, never reading the cookie replies — a spoofing flooder's view.
 *
 * A legitimate peer answers a cookie reply at once with a new initiation
 * carrying MAC2 (wireguard-go waits for its REKEY_TIMEOUT retry, 5 s, which
 * would only add a constant); the latency reported is from the first
 * initiation of a handshake to its response, retries included.
 */
import dgram from 'node:dgram';
import { Worker } from 'node:worker_threads';
import { Device } from '../src/device/device.js';
import { silentLogger } from '../src/device/logger.js';
import { StaticIdentity, Tunnel, generatePrivateKey, messageType } from '../src/noise/index.js';
import {
  FLOOD_DISTINCT_INITIATIONS,
  FLOOD_LEGIT_ATTEMPT_TIMEOUT_MS,
  FLOOD_LEGIT_PAUSE_MS,
  FLOOD_LEGIT_PEERS,
  FLOOD_PHASE_SECONDS_DEFAULT,
  FLOOD_RATE_DEFAULT,
  FLOOD_SOURCES,
  FLOOD_TICK_MS,
} from './constants.js';
import { parseBenchArgs } from './lib/command-line.js';
import { machineLine } from './lib/machine.js';
import { MemoryTun } from './lib/memory-tun.js';
import { percentile } from './lib/stats.js';
import { formatNumber, formatTable, type Cell } from './lib/table.js';

const { values } = parseBenchArgs({
  npmScript: 'bench:flood',
  measures: 'whether legitimate peers keep completing handshakes while a flood of initiations hits the device',
  options: {
    rate: { type: 'string', default: String(FLOOD_RATE_DEFAULT), value: 'N', description: 'flood initiations per second' },
    seconds: { type: 'string', default: String(FLOOD_PHASE_SECONDS_DEFAULT), value: 'S', description: 'seconds of each phase (without, then with the flood)' },
    peers: { type: 'string', default: String(FLOOD_LEGIT_PEERS), value: 'N', description: 'legitimate peers' },
  },
});
const rate = Number(values.rate);
const seconds = Number(values.seconds);
const peerCount = Number(values.peers);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A legitimate peer: handshakes over and over, recording how long each took. */
class LegitPeer {
  readonly identity = new StaticIdentity(generatePrivateKey());
  readonly tunnel: Tunnel;
  /** [completed at, latency ms] */
  readonly results: Array<[number, number]> = [];
  cookies = 0;
  private attemptStart = 0;
  private attemptTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly socket: dgram.Socket,
    devicePublicKey: Uint8Array,
    private readonly port: number,
  ) {
    this.tunnel = new Tunnel({ identity: this.identity, peerPublicKey: devicePublicKey });
    socket.on('message', (message) => this.receive(new Uint8Array(message)));
  }

  start(): void {
    this.attemptStart = performance.now();
    this.initiate();
  }

  stop(): void {
    this.stopped = true;
    if (this.attemptTimer !== null) clearTimeout(this.attemptTimer);
    this.socket.close();
  }

  private initiate(): void {
    if (this.stopped) return;
    this.tunnel.endpointChanged(); // lift the one-per-REKEY_TIMEOUT limit
    for (const datagram of this.tunnel.initiateHandshake().network) this.send(datagram);
    if (this.attemptTimer !== null) clearTimeout(this.attemptTimer);
    this.attemptTimer = setTimeout(() => this.initiate(), FLOOD_LEGIT_ATTEMPT_TIMEOUT_MS);
  }

  private send(datagram: Uint8Array): void {
    this.socket.send(datagram, this.port, '127.0.0.1');
  }

  private receive(data: Uint8Array): void {
    if (this.stopped) return;
    const type = messageType(data);
    const out = this.tunnel.decapsulate(data);
    if (out.error !== null) return;
    if (type === 'cookie-reply') {
      this.cookies++;
      this.initiate();
    } else if (type === 'response') {
      for (const datagram of out.network) this.send(datagram); // the keepalive that confirms the session
      const now = performance.now();
      this.results.push([now, now - this.attemptStart]);
      if (this.attemptTimer !== null) clearTimeout(this.attemptTimer);
      this.attemptTimer = setTimeout(() => this.start(), FLOOD_LEGIT_PAUSE_MS);
    }
  }
}

async function bound(address: string): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20 });
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  return socket;
}

/** Initiations a flooder who knows the device's public key can make: valid MAC1, random unknown static keys. */
function floodInitiations(devicePublicKey: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < FLOOD_DISTINCT_INITIATIONS; i++) {
    const tunnel = new Tunnel({ identity: new StaticIdentity(generatePrivateKey()), peerPublicKey: devicePublicKey });
    out.push(tunnel.initiateHandshake().network[0]!);
  }
  return out;
}

interface PhaseResult {
  name: string;
  latencies: number[];
  seconds: number;
  counters: Device['counters'];
  cookiesToLegit: number;
}

function snapshot(device: Device): Device['counters'] {
  return { ...device.counters };
}

function diff(after: Device['counters'], before: Device['counters']): Device['counters'] {
  const out = { ...after };
  for (const key of Object.keys(out) as Array<keyof Device['counters']>) out[key] = after[key] - before[key];
  return out;
}

async function main(): Promise<void> {
  console.log(`bench:flood — ${machineLine()}`);
  const tun = new MemoryTun();
  const device = new Device({ tun, log: silentLogger });
  await device.start();
  const privateKey = generatePrivateKey();
  await device.set({ privateKey, replacePeers: false, peers: [] });
  const devicePublicKey = new StaticIdentity(new Uint8Array(privateKey)).publicKey;
  const peers: LegitPeer[] = [];
  // Each from its own address (127.0.1.x), as peers behind different hosts: one address shares one rate-limit bucket.
  for (let i = 0; i < peerCount; i++) peers.push(new LegitPeer(await bound(`127.0.1.${1 + i}`), devicePublicKey, device.listenPort));
  await device.set({ replacePeers: false, peers: peers.map((p) => ({ publicKey: p.identity.publicKey, remove: false, updateOnly: false, replaceAllowedIps: false, allowedIps: [] })) });
  const initiations = floodInitiations(devicePublicKey);

  const phases: PhaseResult[] = [];
  const runPhase = async (name: string, flood: boolean): Promise<{ sent: number; seconds: number } | null> => {
    const before = snapshot(device);
    const cookiesBefore = peers.reduce((sum, p) => sum + p.cookies, 0);
    let worker: Worker | null = null;
    if (flood) {
      worker = new Worker(new URL('./lib/flood-worker.js', import.meta.url), {
        workerData: { initiations, port: device.listenPort, rate, sources: FLOOD_SOURCES, tickMs: FLOOD_TICK_MS },
      });
      await sleep(200); // sockets bound, flood running
    }
    const start = performance.now();
    await sleep(seconds * 1000);
    const end = performance.now();
    let floodResult: { sent: number; seconds: number } | null = null;
    if (worker !== null) {
      floodResult = await new Promise((resolve) => {
        worker!.once('message', resolve);
        worker!.postMessage('stop');
      });
      await worker.terminate();
    }
    phases.push({
      name,
      latencies: peers.flatMap((p) => p.results.filter(([at]) => at >= start && at < end).map(([, ms]) => ms)),
      seconds: (end - start) / 1000,
      counters: diff(snapshot(device), before),
      cookiesToLegit: peers.reduce((sum, p) => sum + p.cookies, 0) - cookiesBefore,
    });
    return floodResult;
  };

  for (const peer of peers) peer.start();
  await sleep(500); // first handshakes out of the way
  await runPhase('no flood', false);
  const flood = await runPhase(`flood ${formatNumber(rate)}/s`, true);
  await sleep(1500); // under load lingers UNDER_LOAD_AFTER_MS
  await runPhase('after the flood', false);
  for (const peer of peers) peer.stop();
  await device.close();

  if (flood !== null) {
    console.log(
      `flooder: ${formatNumber(flood.sent)} initiations in ${flood.seconds.toFixed(1)} s (${formatNumber(Math.round(flood.sent / flood.seconds))}/s), ` +
        `valid MAC1, ${FLOOD_DISTINCT_INITIATIONS} distinct unknown keys, from ${FLOOD_SOURCES} loopback addresses that never read their cookies`,
    );
  }
  console.log(`${peerCount} legitimate peers, each handshaking again ${FLOOD_LEGIT_PAUSE_MS} ms after the last completed; phases of ${seconds} s\n`);
  const ms = (value: number | null) => (value === null ? null : Number(value.toFixed(1)));
  const count = (n: number) => formatNumber(n).replace(/\.0$/, '');
  const rows: Cell[][] = phases.map((phase) => [
    phase.name,
    count(phase.latencies.length),
    (phase.latencies.length / phase.seconds).toFixed(1),
    ms(percentile(phase.latencies, 50)),
    ms(percentile(phase.latencies, 10)),
    ms(percentile(phase.latencies, 90)),
    ms(phase.latencies.length === 0 ? null : Math.max(...phase.latencies)),
    count(phase.cookiesToLegit),
    count(phase.counters.cookieReplies),
    count(phase.counters.handshakesAdmitted),
    count(phase.counters.rateLimited),
    count(phase.counters.overBudget),
  ]);
  console.log(
    formatTable(
      ['phase', 'legit handshakes', 'per s', 'median ms', 'p10 ms', 'p90 ms', 'max ms', 'cookies to legit', 'cookie replies (all)', 'given X25519', 'rate-limited', 'over budget'],
      rows,
    ),
  );
}

await main();
