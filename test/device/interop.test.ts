/**
 * tswg as a drop-in for wireguard-go, in network namespaces, configured with
 * the real wg(8) and talking to tswg or to the real wireguard-go.
 *
 *   ns A: tswg (bin/tswg -f IF) ── veth, outer IPv4 or IPv6 ── ns B: tswg or wireguard-go -f IF
 *          inner 198.19.y.1, fd19:0:0:y::1        (tunnel)          inner .2, ::2
 *
 * Covered here: handshakes with either side initiating (tswg or wireguard-go),
 * with and without a pre-shared key (and a PSK mismatch that must fail), IPv4
 * and IPv6 inside and outside the tunnel, iperf3 TCP and UDP in both
 * directions, and what `wg show IF dump` reports (handshake time, transfer
 * counters, learned endpoints). Roaming, allowed-IPs spoofing, peer removal,
 * restarts, wg-quick, daemon mode and hostile input live in other files.
 *
 * Transfer counters: wireguard-go (device/send.go, device/receive.go) counts
 * whole UDP payloads: tx when a handshake initiation/response or transport
 * message (keepalives included) was handed to the socket successfully; rx for
 * an initiation/response it consumed and for every authenticated, non-replayed
 * transport message (plaintext length + 32, i.e. the datagram length),
 * before the allowed-IPs check. Cookie replies count on neither side. So once
 * traffic is lossless and nothing is in flight, one side's tx equals the other
 * side's rx exactly; with loss (bulk traffic), rx ≤ the peer's tx.
 *
 * Performance is never asserted: iperf3 must complete and move some data.
 *
 * Needs root; fails (does not skip) without it. Needs a build (`npm run build`):
 * tswg runs from dist/ through bin/tswg.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, execIn, leftovers, requireCommands, requireRoot } from '../../scripts/lib/netns.js';
import { createPair, ping, wgKeyPair, type Implementation, type Pair, type WgNode } from '../../scripts/lib/topology.js';
import {
  destroyPair,
  endpointOf,
  nodeLeftovers,
  runIperf,
  transfer,
  viewOf,
  waitForMatchingCounters,
  wgDump,
  type IperfRun,
  type DumpPeer,
  type IperfSum,
} from '../helpers/device-interop.js';

/** How recent "latest handshake" must be. */
const HANDSHAKE_MAX_AGE_S = 30;
/** Transport overhead per datagram: type, receiver, counter (16) + Poly1305 tag (16). */
const TRANSPORT_OVERHEAD = 32;
/** An ICMP echo of ping's default 56 data bytes in IPv4 (84 bytes), padded to 16 (96), plus the overhead. */
const PING4_DATAGRAM = 96 + TRANSPORT_OVERHEAD;

const nodes: WgNode[] = [];

async function newPair(options: Parameters<typeof createPair>[0]): Promise<Pair> {
  const pair = await createPair(options);
  nodes.push(pair.a, pair.b);
  return pair;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Both sides report a handshake within the last HANDSHAKE_MAX_AGE_S, and roughly the same one. */
function expectRecentHandshake(pair: Pair): void {
  const a = viewOf(pair.a, pair.b).latestHandshake;
  const b = viewOf(pair.b, pair.a).latestHandshake;
  const now = nowSeconds();
  for (const [who, t] of [[pair.a.implementation + ' (a)', a], [pair.b.implementation + ' (b)', b]] as const) {
    expect(t, `${who} latest handshake`).toBeGreaterThan(0);
    expect(now - t, `${who} latest handshake age in s`).toBeLessThanOrEqual(HANDSHAKE_MAX_AGE_S);
    expect(t - now, `${who} latest handshake lies in the future`).toBeLessThanOrEqual(2);
  }
  // Initiator and responder complete the same handshake within one round trip.
  expect(Math.abs(a - b), 'both sides date the handshake alike').toBeLessThanOrEqual(5);
}

/** Echoes 1..3 each answered: none lost, not even the first, which waits for the handshake. */
function expectEveryEchoAnswered(output: string): void {
  const answered = [...output.matchAll(/icmp_seq=(\d+) /g)].map((match) => Number(match[1]));
  expect(answered.filter((seq) => seq <= 3).sort((x, y) => x - y), output).toEqual([1, 2, 3]);
}

function requirePair(pair: Pair | undefined): Pair {
  if (pair === undefined) throw new Error('the pair was not set up (see the beforeAll failure)');
  return pair;
}

beforeAll(() => {
  requireRoot('the device interop suite (test/device/interop.test.ts)');
  requireCommands('wireguard-go', 'wg', 'ip', 'iperf3', 'ping', 'ss');
  const cli = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first (the tests start bin/tswg, which runs dist/)`);
});

afterAll(() => {
  cleanup();
  expect(leftovers(), 'namespaces/links left behind').toEqual([]);
  expect(nodeLeftovers(nodes), 'daemons/sockets left behind').toEqual([]);
});

// ---- handshakes and pings ------------------------------------------------------

interface PingCase {
  /** The implementation of namespace A and of B. */
  left: Implementation;
  right: Implementation;
  /** Who sends first (and so initiates the handshake). */
  initiator: 'a' | 'b';
  outerFamily: 4 | 6;
  psk: boolean;
  /** false: only the initiator knows the other's endpoint; the responder learns it from the handshake. */
  bothEndpoints: boolean;
}

const pingCases: PingCase[] = [
  // tswg ↔ tswg: initiator side × outer family, PSK and endpoint knowledge alternating.
  { left: 'tswg', right: 'tswg', initiator: 'a', outerFamily: 4, psk: true, bothEndpoints: false },
  { left: 'tswg', right: 'tswg', initiator: 'a', outerFamily: 6, psk: false, bothEndpoints: false },
  { left: 'tswg', right: 'tswg', initiator: 'b', outerFamily: 4, psk: false, bothEndpoints: true },
  { left: 'tswg', right: 'tswg', initiator: 'b', outerFamily: 6, psk: true, bothEndpoints: true },
  // tswg initiates towards wireguard-go.
  { left: 'tswg', right: 'wireguard-go', initiator: 'a', outerFamily: 4, psk: false, bothEndpoints: false },
  { left: 'tswg', right: 'wireguard-go', initiator: 'a', outerFamily: 6, psk: true, bothEndpoints: false },
  { left: 'wireguard-go', right: 'tswg', initiator: 'b', outerFamily: 4, psk: true, bothEndpoints: true },
  // wireguard-go initiates towards tswg.
  { left: 'wireguard-go', right: 'tswg', initiator: 'a', outerFamily: 6, psk: false, bothEndpoints: false },
  { left: 'wireguard-go', right: 'tswg', initiator: 'a', outerFamily: 4, psk: true, bothEndpoints: false },
  { left: 'tswg', right: 'wireguard-go', initiator: 'b', outerFamily: 6, psk: true, bothEndpoints: true },
];

function describePingCase(c: PingCase): string {
  const initiator = c.initiator === 'a' ? c.left : c.right;
  const responder = c.initiator === 'a' ? c.right : c.left;
  return (
    `${initiator} initiates to ${responder} (initiator in ns ${c.initiator.toUpperCase()}), outer IPv${c.outerFamily}, ` +
    `${c.psk ? 'with' : 'without'} PSK, ${c.bothEndpoints ? 'both endpoints configured' : 'responder learns the endpoint'}`
  );
}

describe.each(pingCases.map((c) => [describePingCase(c), c] as const))('%s', (_name, c) => {
  let pair: Pair | undefined;
  const roles = (): { initiator: WgNode; responder: WgNode } => {
    const p = requirePair(pair);
    return c.initiator === 'a' ? { initiator: p.a, responder: p.b } : { initiator: p.b, responder: p.a };
  };

  beforeAll(async () => {
    if (c.initiator === 'b' && !c.bothEndpoints) throw new Error('test table: b can only initiate when it knows a\'s endpoint');
    pair = await newPair({ left: c.left, right: c.right, outerFamily: c.outerFamily, presharedKey: c.psk, bothEndpoints: c.bothEndpoints });
  });

  afterAll(async () => {
    if (pair !== undefined) await destroyPair(pair);
  });

  it('wg show before any traffic: configured peer, no handshake, zero counters', () => {
    const p = requirePair(pair);
    const { initiator, responder } = roles();
    const psk = p.presharedKeyFile === null ? null : readFileSync(p.presharedKeyFile, 'utf8').trim();
    for (const [self, other] of [[p.a, p.b], [p.b, p.a]] as const) {
      const view = viewOf(self, other);
      expect(view.latestHandshake, `${self.implementation} latest handshake`).toBe(0);
      expect([view.rxBytes, view.txBytes], `${self.implementation} rx/tx`).toEqual([0, 0]);
      expect(view.presharedKey, `${self.implementation} preshared key`).toBe(psk);
      expect(view.allowedIps.sort()).toEqual([`${other.inner4}/32`, `${other.inner6}/128`].sort());
    }
    expect(viewOf(initiator, responder).endpoint).toBe(endpointOf(responder, c.outerFamily));
    expect(viewOf(responder, initiator).endpoint).toBe(c.bothEndpoints ? endpointOf(initiator, c.outerFamily) : null);
  });

  it('the initiator pings the responder over inner IPv4 and IPv6', () => {
    const { initiator, responder } = roles();
    expectEveryEchoAnswered(ping(initiator, responder.inner4));
    expectEveryEchoAnswered(ping(initiator, responder.inner6));
  });

  it('the responder pings back over inner IPv4 and IPv6, to the endpoint it knows or learned', () => {
    const { initiator, responder } = roles();
    expect(viewOf(responder, initiator).endpoint).toBe(endpointOf(initiator, c.outerFamily));
    expectEveryEchoAnswered(ping(responder, initiator.inner4));
    expectEveryEchoAnswered(ping(responder, initiator.inner6));
  });

  it('wg show: a recent handshake on both sides', () => {
    expectRecentHandshake(requirePair(pair));
  });

  it('wg show: rx/tx equal to the peer\'s tx/rx, non-zero and growing with traffic', async () => {
    const p = requirePair(pair);
    const { initiator, responder } = roles();
    const before = await waitForMatchingCounters(p);
    for (const value of Object.values(before)) expect(value).toBeGreaterThan(0);
    ping(initiator, responder.inner4);
    const after = await waitForMatchingCounters(p);
    // Three echo requests one way, three replies the other (keepalives may add more).
    expect(after.aTx - before.aTx).toBeGreaterThanOrEqual(3 * PING4_DATAGRAM);
    expect(after.bTx - before.bTx).toBeGreaterThanOrEqual(3 * PING4_DATAGRAM);
  });
});

// ---- pre-shared key mismatch -----------------------------------------------------

describe('tswg ↔ tswg with mismatched pre-shared keys', () => {
  let pair: Pair | undefined;

  beforeAll(async () => {
    pair = await newPair({ left: 'tswg', right: 'tswg', outerFamily: 4, presharedKey: true, bothEndpoints: false });
  });

  afterAll(async () => {
    if (pair !== undefined) await destroyPair(pair);
  });

  it('no handshake completes while only one side has the PSK; restoring it lets the tunnel up', () => {
    const p = requirePair(pair);
    p.b.wg('set', p.b.interfaceName, 'peer', p.a.keys.publicKey, 'preshared-key', '/dev/null');
    expect(viewOf(p.b, p.a).presharedKey).toBeNull();
    expect(() => p.a.exec('ping', ['-c', '2', '-i', '0.2', '-W', '1', p.b.inner4])).toThrow();
    // b answered the initiation with a response a cannot accept: a never saw a valid message.
    const a = viewOf(p.a, p.b);
    expect(a.latestHandshake).toBe(0);
    expect(a.rxBytes).toBe(0);
    expect(viewOf(p.b, p.a).latestHandshake).toBe(0);

    p.b.wg('set', p.b.interfaceName, 'peer', p.a.keys.publicKey, 'preshared-key', p.presharedKeyFile!);
    // a retries the handshake on its own (REKEY_TIMEOUT, 5 s); ping keeps sending until a reply or -w.
    expect(execIn(p.a.namespace, 'ping', ['-c', '1', '-i', '0.5', '-w', '25', p.b.inner4], { timeoutMs: 30_000 })).toMatch(/ [1-9]\d* received/);
    expectRecentHandshake(p);
  });
});

// ---- bulk traffic: iperf3 ----------------------------------------------------------

/** The receiver's totals of an iperf3 report: sum_received, or for UDP reports without it, sum. */
function receivedSum(run: IperfRun): IperfSum {
  const sum = run.report.end.sum_received ?? run.report.end.sum;
  if (sum === undefined) throw new Error(`iperf3 report has no receiver totals: ${JSON.stringify(run.report.end)}`);
  return sum;
}

function expectCompleted(run: IperfRun): void {
  expect(run.report.error, 'iperf3 error').toBeUndefined();
  expect(run.serverExit, `iperf3 server exit; output:\n${run.serverOutput}`).toEqual({ code: 0, signal: null });
}

describe.each([
  ['tswg ↔ tswg, outer IPv4', 'tswg', 4],
  ['tswg ↔ wireguard-go, outer IPv6', 'wireguard-go', 6],
] as const)('iperf3 and counters, %s', (_name, right, outerFamily) => {
  let pair: Pair | undefined;

  beforeAll(async () => {
    pair = await newPair({ left: 'tswg', right, outerFamily });
    ping(pair.a, pair.b.inner4, 1);
    await waitForMatchingCounters(pair);
  });

  afterAll(async () => {
    if (pair !== undefined) await destroyPair(pair);
  });

  /**
   * Counters around one iperf3 run from `sender` to `receiver`: the receiver's
   * rx grew by at least the payload iperf3 says arrived (plus per-packet
   * headers where known), and never exceeds what the sender's tx says it sent.
   */
  async function measure(sender: 'a' | 'b', body: () => Promise<IperfRun>): Promise<{ run: IperfRun; rxDelta: number; txDelta: number }> {
    const p = requirePair(pair);
    const before = transfer(p);
    const run = await body();
    const after = transfer(p);
    expect(after.bRx, 'b received more than a sent').toBeLessThanOrEqual(after.aTx);
    expect(after.aRx, 'a received more than b sent').toBeLessThanOrEqual(after.bTx);
    const rxDelta = sender === 'a' ? after.bRx - before.bRx : after.aRx - before.aRx;
    const txDelta = sender === 'a' ? after.aTx - before.aTx : after.bTx - before.bTx;
    // Both directions carry something (data one way, ACKs or iperf3's control connection the other).
    expect(after.aTx).toBeGreaterThan(before.aTx);
    expect(after.bTx).toBeGreaterThan(before.bTx);
    expect(after.aRx).toBeGreaterThan(before.aRx);
    expect(after.bRx).toBeGreaterThan(before.bRx);
    return { run, rxDelta, txDelta };
  }

  it.each([
    ['a → b', 'a', []],
    ['b → a (-R)', 'b', ['-R']],
  ] as const)('TCP %s: completes, moves data, counters cover the payload', async (_dir, sender, extra) => {
    const p = requirePair(pair);
    const { run, rxDelta, txDelta } = await measure(sender, () => runIperf(p.b, p.a, p.b.inner4, ['-t', '2', ...extra]));
    expectCompleted(run);
    expect(run.report.start.test_start.protocol).toBe('TCP');
    expect(run.report.start.test_start.reverse).toBe(extra.length > 0 ? 1 : 0);
    const received = receivedSum(run);
    expect(received.bytes).toBeGreaterThan(0);
    expect(received.bits_per_second).toBeGreaterThan(0);
    expect(received.seconds).toBeGreaterThan(0);
    expect(run.report.end.sum_sent?.bytes ?? 0).toBeGreaterThan(0);
    // Every payload byte iperf3 received crossed the tunnel at least once, inside a counted datagram.
    expect(rxDelta).toBeGreaterThanOrEqual(received.bytes);
    expect(txDelta).toBeGreaterThanOrEqual(received.bytes);
  });

  it.each([
    ['a → b over inner IPv4', 'a', 4, []],
    ['b → a (-R) over inner IPv6', 'b', 6, ['-R']],
  ] as const)('UDP -b 50M %s: datagrams arrive, loss is reported, counters cover them', async (_dir, sender, innerFamily, extra) => {
    const p = requirePair(pair);
    const address = innerFamily === 4 ? p.b.inner4 : p.b.inner6;
    const { run, rxDelta } = await measure(sender, () => runIperf(p.b, p.a, address, ['-u', '-b', '50M', '-t', '2', ...extra]));
    expectCompleted(run);
    expect(run.report.start.test_start.protocol).toBe('UDP');
    const received = receivedSum(run);
    const packets = received.packets ?? 0;
    const lost = received.lost_packets ?? Number.NaN;
    expect(packets, 'datagrams iperf3 sent').toBeGreaterThan(0);
    expect(Number.isInteger(lost) && lost >= 0 && lost <= packets, `lost_packets ${lost} of ${packets}`).toBe(true);
    expect(received.lost_percent).toBeTypeOf('number');
    expect(received.lost_percent).toBeGreaterThanOrEqual(0);
    expect(received.lost_percent).toBeLessThanOrEqual(100);
    const arrived = packets - lost;
    expect(arrived, 'datagrams that arrived').toBeGreaterThan(0);
    // Each arrived datagram was one transport message of at least payload + UDP/IP headers + overhead.
    const headers = 8 + (innerFamily === 4 ? 20 : 40);
    expect(rxDelta).toBeGreaterThanOrEqual(arrived * (run.report.start.test_start.blksize + headers + TRANSPORT_OVERHEAD));
  });

  it('wg show after the bulk traffic: a recent handshake on both sides', () => {
    expectRecentHandshake(requirePair(pair));
  });

  // A peer without an endpoint: the handshake initiation that traffic to it
  // triggers cannot be sent. wireguard-go counts tx only after a successful
  // send (Peer.SendBuffers), so `wg show` says 0 B sent.
  describe.each([['a', 'tswg'], ['b', right]] as const)('side %s (%s): a peer without an endpoint', (side, implementation) => {
    let strayView: DumpPeer | undefined;

    beforeAll(() => {
      const p = requirePair(pair);
      const stray = wgKeyPair().publicKey;
      const self = side === 'a' ? p.a : p.b;
      const strayAddress = self.inner4.replace(/\.\d+$/, '.99');
      self.wg('set', self.interfaceName, 'peer', stray, 'allowed-ips', `${strayAddress}/32`);
      expect(() => self.exec('ping', ['-c', '1', '-W', '1', strayAddress])).toThrow();
      strayView = wgDump(self).peers.find((peer) => peer.publicKey === stray);
      if (strayView === undefined) throw new Error(`${implementation} lost the peer it was just given`);
      expect(strayView.endpoint).toBeNull();
      expect(strayView.latestHandshake).toBe(0);
      expect(strayView.rxBytes).toBe(0);
    });

    // Like wireguard-go, tswg counts tx_bytes only after a successful send.
    it('reports 0 bytes sent to it after traffic to it could not be sent', () => {
      expect(strayView?.txBytes, `${implementation} tx_bytes of a peer it could not send to`).toBe(0);
    });
  });
});
