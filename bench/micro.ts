/**
 * `npm run bench:micro`: in-process micro-benchmarks of the data path's parts,
 * with Benchmark.js (statistically sampled: ops/s and the relative margin of
 * error at 95 %). No root needed.
 *
 *   ChaCha20-Poly1305 seal / open of a 1420-byte packet, singly, in batches
 *   of 64 and (where a backend has it) in place, per backend (every
 *   Primitives that src/noise/index.ts exports: node, noble, sodium...);  X25519 per backend
 *   (with cached and with fresh key objects);  a full handshake (initiation,
 *   response, consumed response) between two Tunnels;  a 1420-byte packet
 *   through encapsulate + decapsulate (bench/lib/data-path.ts);  allowed-IPs
 *   lookups of real IPv4 packets with 10,000 routes;  replay-window checks.
 *
 *   npm run build && node dist/bench/micro.js [--time SECONDS] [--filter TEXT]
 *
 * ops/s counts items (packets, lookups, handshakes), not Benchmark.js ops,
 * when one op does several; MB/s is items/s × item bytes (payload bytes).
 */
import Benchmark from 'benchmark';
import { randomBytes } from 'node:crypto';
import { AllowedIps } from '../src/device/allowed-ips.js';
import { ManualClock } from '../src/noise/clock.js';
import { StaticIdentity } from '../src/noise/identity.js';
import { generatePrivateKey } from '../src/noise/keys.js';
import * as noise from '../src/noise/index.js';
import { nobleBackend } from '../src/noise/noble-backend.js';
import { nodeBackend } from '../src/noise/node-backend.js';
import type { Primitives } from '../src/noise/primitives.js';
import { ReplayWindow } from '../src/noise/replay.js';
import { Tunnel } from '../src/noise/tunnel.js';
import { ALLOWED_IPS_ROUTES, BATCH_SIZE, LOOKUPS_PER_OP, MICRO_SECONDS_DEFAULT, PACKET_SIZE, TUNNEL_MTU } from './constants.js';
import { parseBenchArgs } from './lib/command-line.js';
import { dataPaths, type DataPathAdapter } from './lib/data-path.js';
import { machineLine } from './lib/machine.js';
import { addressInTen, ipv4Packet } from './lib/packets.js';
import { formatNumber, formatTable, markdownTable, type Cell } from './lib/table.js';

interface Case {
  name: string;
  fn: () => void;
  /** Items (packets, lookups...) one call of fn handles. */
  itemsPerOp: number;
  /** Payload bytes per item for MB/s; null where MB/s means nothing. */
  bytesPerItem: number | null;
}

/** Optional in-place AEAD of newer Primitives (found by duck typing, so this file compiles against either API). */
interface InPlaceAead {
  aeadSealInPlace(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, plaintext: Uint8Array): void;
  aeadOpenInPlace(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, plaintext: Uint8Array): boolean;
}

function isPrimitives(value: unknown): value is Primitives {
  const candidate = value as Partial<Primitives> | null;
  return typeof candidate === 'object' && candidate !== null && typeof candidate.name === 'string' && typeof candidate.aeadSeal === 'function';
}

/** Every backend src/noise exports (node, noble, and e.g. an optional sodium one when installed), once each. */
const BACKENDS: Primitives[] = [...new Set(Object.values(noise).filter(isPrimitives))].sort((a, b) => a.name.localeCompare(b.name));
const AD = new Uint8Array(0);
const COUNTER = 7n;

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`benchmark set-up check failed: ${what}`);
}

function aeadCases(p: Primitives): Case[] {
  const key = randomBytes(32);
  const plaintext = ipv4Packet(PACKET_SIZE, addressInTen(1));
  const sealed = p.aeadSeal(key, COUNTER, plaintext, AD);
  const opened = p.aeadOpen(key, COUNTER, sealed, AD);
  check(opened !== null && Buffer.compare(opened, plaintext) === 0, `${p.name} aeadOpen(aeadSeal(x)) = x`);
  const batch = Array.from({ length: BATCH_SIZE }, (_, i) => ipv4Packet(PACKET_SIZE, addressInTen(i)));
  const sealedBatch = batch.map((packet, i) => p.aeadSeal(key, BigInt(i), packet, AD));
  const cases: Case[] = [
    { name: `aead seal ${PACKET_SIZE} B [${p.name}]`, fn: () => void p.aeadSeal(key, COUNTER, plaintext, AD), itemsPerOp: 1, bytesPerItem: PACKET_SIZE },
    { name: `aead open ${PACKET_SIZE} B [${p.name}]`, fn: () => void p.aeadOpen(key, COUNTER, sealed, AD), itemsPerOp: 1, bytesPerItem: PACKET_SIZE },
    {
      name: `aead seal batch ${BATCH_SIZE}×${PACKET_SIZE} B [${p.name}]`,
      fn: () => {
        for (let i = 0; i < BATCH_SIZE; i++) p.aeadSeal(key, BigInt(i), batch[i]!, AD);
      },
      itemsPerOp: BATCH_SIZE,
      bytesPerItem: PACKET_SIZE,
    },
    {
      name: `aead open batch ${BATCH_SIZE}×${PACKET_SIZE} B [${p.name}]`,
      fn: () => {
        for (let i = 0; i < BATCH_SIZE; i++) p.aeadOpen(key, BigInt(i), sealedBatch[i]!, AD);
      },
      itemsPerOp: BATCH_SIZE,
      bytesPerItem: PACKET_SIZE,
    },
  ];
  const inPlace = p as Partial<InPlaceAead>;
  if (typeof inPlace.aeadSealInPlace === 'function' && typeof inPlace.aeadOpenInPlace === 'function') {
    const seal = inPlace.aeadSealInPlace.bind(p);
    const open = inPlace.aeadOpenInPlace.bind(p);
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setBigUint64(4, COUNTER, true);
    const buffer = new Uint8Array(PACKET_SIZE + 16);
    const body = buffer.subarray(0, PACKET_SIZE);
    body.set(plaintext);
    seal(key, nonce, buffer, body);
    check(Buffer.compare(buffer, sealed) === 0, `${p.name} aeadSealInPlace = aeadSeal`);
    const pristine = buffer.slice();
    check(open(key, nonce, buffer, body) && Buffer.compare(body, plaintext) === 0, `${p.name} aeadOpenInPlace opens`);
    cases.push(
      { name: `aead seal in place ${PACKET_SIZE} B [${p.name}]`, fn: () => seal(key, nonce, buffer, body), itemsPerOp: 1, bytesPerItem: PACKET_SIZE },
      {
        // Opening in place consumes the ciphertext: restore it first (a 1436-byte copy, included).
        name: `aead open in place ${PACKET_SIZE} B [${p.name}]`,
        fn: () => {
          buffer.set(pristine);
          open(key, nonce, buffer, body);
        },
        itemsPerOp: 1,
        bytesPerItem: PACKET_SIZE,
      },
    );
  }
  return cases;
}

function x25519Cases(p: Primitives): Case[] {
  const privateKey = generatePrivateKey();
  const peerPublic = p.x25519PublicKey(generatePrivateKey());
  check(Buffer.compare(nodeBackend.x25519(privateKey, peerPublic), nobleBackend.x25519(privateKey, peerPublic)) === 0, 'backends agree on X25519');
  return [
    { name: `x25519 static keys [${p.name}]`, fn: () => void p.x25519(privateKey, peerPublic), itemsPerOp: 1, bytesPerItem: null },
    // A new key array each time, as an ephemeral key is: the node backend's KeyObject cache misses.
    { name: `x25519 fresh key arrays [${p.name}]`, fn: () => void p.x25519(new Uint8Array(privateKey), new Uint8Array(peerPublic)), itemsPerOp: 1, bytesPerItem: null },
  ];
}

/** Initiation created, consumed and answered, response consumed: both sides hold a session. */
function handshakeCase(p: Primitives): Case {
  const clock = new ManualClock();
  const idA = new StaticIdentity(generatePrivateKey(), p, clock);
  const idB = new StaticIdentity(generatePrivateKey(), p, clock);
  const a = new Tunnel({ identity: idA, peerPublicKey: idB.publicKey, clock, jitter: () => 0, mtu: TUNNEL_MTU });
  const b = new Tunnel({ identity: idB, peerPublicKey: idA.publicKey, clock, jitter: () => 0, mtu: TUNNEL_MTU });
  const handshake = (): number => {
    // Past REKEY_TIMEOUT and the responder's flood limit, with a newer timestamp.
    clock.advance(6000);
    const initiation = a.initiateHandshake().network[0];
    if (initiation === undefined) return 1;
    const response = b.decapsulate(initiation).network[0];
    if (response === undefined) return 2;
    return a.decapsulate(response).error === null ? 0 : 3;
  };
  for (let i = 0; i < 3; i++) check(handshake() === 0, `${p.name} handshake completes (repeatedly)`);
  return { name: `handshake init+response [${p.name}]`, fn: () => void handshake(), itemsPerOp: 1, bytesPerItem: null };
}

function tunnelCase(p: Primitives, dataPath: DataPathAdapter, label: string): Case {
  const pair = dataPath.connect(p);
  const packet = ipv4Packet(PACKET_SIZE, addressInTen(1));
  check(pair.encrypt(packet) > 0, 'tunnel encrypts');
  check(pair.decrypt(pair.lastDatagram()) === PACKET_SIZE, 'tunnel round trip returns the packet');
  return {
    name: `tunnel ${label} ${PACKET_SIZE} B [${p.name}]`,
    fn: () => {
      pair.encrypt(packet);
      pair.decrypt(pair.lastDatagram());
    },
    itemsPerOp: 1,
    bytesPerItem: PACKET_SIZE,
  };
}

function allowedIpsCase(): Case {
  const table = new AllowedIps<{ id: number }>();
  const peers: { id: number }[] = [];
  // Spread over 10/8 by a multiplier coprime to 2^24, so the trie is not a dense run.
  const address = (i: number): Uint8Array => addressInTen((i * 2_654_435_761) % (1 << 24));
  for (let i = 0; i < ALLOWED_IPS_ROUTES; i++) {
    const peer = { id: i };
    peers.push(peer);
    table.insert({ family: 4, bytes: address(i), prefixLength: 32 }, peer);
  }
  const packets = Array.from({ length: LOOKUPS_PER_OP }, (_, i) => ipv4Packet(64, address((i * 7919) % ALLOWED_IPS_ROUTES)));
  packets.forEach((packet, i) => check(table.lookupPacketDestination(packet) === peers[(i * 7919) % ALLOWED_IPS_ROUTES], 'lookup finds the route'));
  let sink = 0;
  return {
    name: `allowed-ips lookup (${ALLOWED_IPS_ROUTES.toLocaleString('en-US')} /32 routes)`,
    fn: () => {
      for (let i = 0; i < LOOKUPS_PER_OP; i++) sink += table.lookupPacketDestination(packets[i]!)!.id;
      if (sink < 0) throw new Error('unreachable');
    },
    itemsPerOp: LOOKUPS_PER_OP,
    bytesPerItem: null,
  };
}

function replayCase(): Case {
  const window = new ReplayWindow();
  let counter = 0n;
  check(window.check(counter++) && !window.check(0n), 'replay window refuses a replay');
  return {
    name: 'replay-window check (in order)',
    fn: () => {
      for (let i = 0; i < LOOKUPS_PER_OP; i++) window.check(counter++);
    },
    itemsPerOp: LOOKUPS_PER_OP,
    bytesPerItem: null,
  };
}

function allCases(): Case[] {
  return [
    ...BACKENDS.flatMap(aeadCases),
    // A backend that borrows another's X25519 (sodium uses node's) is measured once.
    ...BACKENDS.filter((p, i) => BACKENDS.findIndex((q) => q.x25519 === p.x25519) === i).flatMap(x25519Cases),
    ...BACKENDS.map(handshakeCase),
    ...BACKENDS.flatMap((p) => [tunnelCase(p, dataPaths[0]!, 'fast seal+open'), tunnelCase(p, dataPaths[1]!, 'reference encap+decap')]),
    allowedIpsCase(),
    replayCase(),
  ];
}

function main(): void {
  const { values } = parseBenchArgs({
    npmScript: 'bench:micro',
    measures: "ops/s of the data path's parts in process: AEAD, X25519, handshake, encapsulate/decapsulate, allowed-IPs, replay window",
    options: {
      time: { type: 'string', value: 'SECONDS', description: 'seconds each benchmark runs, up to 60', shownDefault: String(MICRO_SECONDS_DEFAULT) },
      filter: { type: 'string', value: 'TEXT', description: 'run only the benchmarks whose name contains TEXT' },
    },
  });
  const seconds = Number(values.time ?? MICRO_SECONDS_DEFAULT);
  if (!(seconds > 0 && seconds <= 60)) throw new Error(`--time must be 0..60 seconds, got ${values.time}`);
  const cases = allCases().filter((c) => values.filter === undefined || c.name.includes(values.filter));
  if (cases.length === 0) throw new Error(`--filter ${values.filter} matches no benchmark`);

  console.log(`bench:micro — ${cases.length} benchmarks, ~${seconds} s each; ${machineLine()}`);
  console.log(`tunnel rows: fast = ${dataPaths[0]!.description}; reference = ${dataPaths[1]!.description}; backends: ${BACKENDS.map((p) => p.name).join(', ')}`);
  const headers = ['benchmark', 'ops/s', '±%', 'MB/s'];
  const rows: Cell[][] = [];
  for (const c of cases) {
    // One Benchmark at a time: the row is printed as soon as it is measured.
    const bench = new Benchmark(c.name, c.fn, { maxTime: seconds, minSamples: 5 });
    bench.run({ async: false });
    if (bench.error !== undefined) throw new Error(`${c.name} failed: ${String(bench.error)}`);
    const perSecond = bench.hz * c.itemsPerOp;
    const row: Cell[] = [c.name, perSecond, bench.stats.rme, c.bytesPerItem === null ? null : (perSecond * c.bytesPerItem) / 1e6];
    rows.push(row);
    console.log(`  ${c.name}: ${formatNumber(perSecond)} ops/s ±${formatNumber(bench.stats.rme)}%`);
  }
  console.log(`\n${formatTable(headers, rows)}\n\nmarkdown:\n\n${markdownTable(headers, rows)}`);
}

main();
