/**
 * The timer rules of the Tunnel (WireGuard paper §6, wireguard-go's
 * device/timers.go, send.go and receive.go), driven by a ManualClock.
 *
 * No test sleeps or uses real timers: time moves only through the clock,
 * and `TunnelPair.advanceTo()` stops at every deadline on the way to run
 * `updateTimers()` on both sides. Jitter is injected (0 unless a test says
 * otherwise) so that every deadline is exact.
 */
import { describe, expect, it } from 'vitest';
import {
  KEEPALIVE_TIMEOUT_MS,
  MAX_STAGED_PACKETS,
  MAX_TIMER_HANDSHAKES,
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME_MS,
  REKEY_ATTEMPT_TIME_MS,
  REKEY_ON_RECEIVE_AFTER_MS,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  REKEY_TIMEOUT_MS,
  ZERO_KEY_MATERIAL_AFTER_MS,
} from '../../src/noise/constants.js';
import type { Keypair } from '../../src/noise/keypair.js';
import { parseTransportHeader, serializeTransport } from '../../src/noise/messages.js';
import { PeerTimers } from '../../src/noise/timers.js';
import type { Tunnel } from '../../src/noise/tunnel.js';
import {
  MSG_INITIATION,
  MSG_RESPONSE,
  MSG_TRANSPORT,
  TunnelPair,
  isData,
  isKeepalive,
  packet,
  packetId,
  types,
} from '../helpers/tunnel-pair.js';

const EMPTY = new Uint8Array(0);

/** A transport message from `sender` under `keypair` with an arbitrary counter (bypassing the send-side limits). */
function craftTransport(sender: Tunnel, keypair: Keypair, counter: bigint, plaintext: Uint8Array): Uint8Array {
  const ciphertext = sender.identity.primitives.aeadSeal(keypair.sendKey, counter, plaintext, EMPTY);
  return serializeTransport(keypair.remoteIndex, counter, ciphertext);
}

function counterOf(datagram: Uint8Array): bigint {
  return parseTransportHeader(datagram)!.counter;
}

function ids(packets: readonly Uint8Array[]): number[] {
  return packets.map(packetId);
}

function allKeypairs(t: Tunnel): (Keypair | null)[] {
  return [t.keypairs.current, t.keypairs.previous, t.keypairs.next];
}

describe('constants', () => {
  it('match the WireGuard paper / wireguard-go constants.go', () => {
    expect(REKEY_AFTER_MESSAGES).toBe(2n ** 60n);
    expect(REJECT_AFTER_MESSAGES).toBe(2n ** 64n - 2n ** 13n - 1n);
    expect(REKEY_AFTER_TIME_MS).toBe(120_000);
    expect(REJECT_AFTER_TIME_MS).toBe(180_000);
    expect(REKEY_ATTEMPT_TIME_MS).toBe(90_000);
    expect(REKEY_TIMEOUT_MS).toBe(5_000);
    expect(KEEPALIVE_TIMEOUT_MS).toBe(10_000);
    expect(MAX_TIMER_HANDSHAKES).toBe(18);
    expect(ZERO_KEY_MATERIAL_AFTER_MS).toBe(540_000);
    expect(REKEY_ON_RECEIVE_AFTER_MS).toBe(165_000);
    expect(MAX_STAGED_PACKETS).toBe(128);
  });
});

describe('REKEY_TIMEOUT: retransmitting an unanswered initiation', () => {
  it('sends a new initiation exactly REKEY_TIMEOUT (+ jitter) after the last one, not before', () => {
    const pair = new TunnelPair();
    pair.drop = () => true;
    pair.encapsulate('a', packet(1));
    expect(pair.initiationTimes('a')).toEqual([0]);
    expect(pair.a.nextDeadline()).toBe(REKEY_TIMEOUT_MS);

    pair.advanceTo(REKEY_TIMEOUT_MS - 1);
    expect(pair.initiationTimes('a')).toEqual([0]);
    pair.advanceTo(REKEY_TIMEOUT_MS);
    expect(pair.initiationTimes('a')).toEqual([0, REKEY_TIMEOUT_MS]);
    pair.advanceTo(2 * REKEY_TIMEOUT_MS - 1);
    expect(pair.initiationTimes('a')).toEqual([0, REKEY_TIMEOUT_MS]);
    pair.advanceTo(2 * REKEY_TIMEOUT_MS);
    expect(pair.initiationTimes('a')).toEqual([0, REKEY_TIMEOUT_MS, 2 * REKEY_TIMEOUT_MS]);
    // Each retry is a fresh initiation (new ephemeral, new sender index), not a resend of the same bytes.
    const [first, second] = pair.sentBy('a', MSG_INITIATION);
    expect(first!.datagram).not.toEqual(second!.datagram);
  });

  it('adds the injected jitter to every retry deadline', () => {
    const pair = new TunnelPair({ jitter: () => 250 });
    pair.drop = () => true;
    pair.encapsulate('a', packet(1));
    pair.advanceTo(5_249);
    expect(pair.initiationTimes('a')).toEqual([0]);
    pair.advanceTo(5_250);
    expect(pair.initiationTimes('a')).toEqual([0, 5_250]);
    pair.advanceTo(10_500);
    expect(pair.initiationTimes('a')).toEqual([0, 5_250, 10_500]);
  });

  it('with the default jitter, retry deadlines fall in [REKEY_TIMEOUT, REKEY_TIMEOUT + 334] ms', () => {
    const pair = new TunnelPair({ jitter: null });
    pair.drop = () => true;
    pair.encapsulate('a', packet(1));
    const first = pair.a.nextDeadline()!;
    expect(first).toBeGreaterThanOrEqual(5_000);
    expect(first).toBeLessThanOrEqual(5_334);

    pair.advanceTo(200_000);
    const times = pair.initiationTimes('a');
    expect(times).toHaveLength(MAX_TIMER_HANDSHAKES + 2);
    for (let i = 1; i < times.length; i++) {
      const gap = times[i]! - times[i - 1]!;
      expect(gap).toBeGreaterThanOrEqual(REKEY_TIMEOUT_MS);
      expect(gap).toBeLessThanOrEqual(REKEY_TIMEOUT_MS + REKEY_TIMEOUT_JITTER_MAX_MS);
    }

    // Many more samples straight from the timer state machine.
    const timers = new PeerTimers();
    for (let i = 0; i < 2_000; i++) {
      timers.handshakeInitiated(0);
      const at = timers.deadline('retransmit-handshake')!;
      expect(Number.isInteger(at)).toBe(true);
      expect(at).toBeGreaterThanOrEqual(5_000);
      expect(at).toBeLessThanOrEqual(5_334);
    }
  });

  it('retries until REKEY_ATTEMPT_TIME has passed (MAX_TIMER_HANDSHAKES + 1 retries, as wireguard-go), then gives up: staged packets dropped, no more initiations, handshake zeroed 3 × REJECT_AFTER_TIME later', () => {
    const pair = new TunnelPair();
    pair.drop = () => true;
    pair.encapsulate('a', packet(1));
    pair.encapsulate('a', packet(2));
    expect(pair.a.stagedCount).toBe(2);

    // wireguard-go: handshakeAttempts counts retries; a retry is sent while attempts <= MaxTimerHandshakes,
    // so 1 initiation + 19 retries ("did not complete after MaxTimerHandshakes+2 attempts, giving up").
    const giveUpAt = (MAX_TIMER_HANDSHAKES + 2) * REKEY_TIMEOUT_MS; // 100 s
    pair.advanceTo(giveUpAt - 1);
    const expected = Array.from({ length: MAX_TIMER_HANDSHAKES + 2 }, (_, i) => i * REKEY_TIMEOUT_MS);
    expect(pair.initiationTimes('a')).toEqual(expected);
    expect(expected.at(-1)!).toBeGreaterThanOrEqual(REKEY_ATTEMPT_TIME_MS);
    expect(pair.a.stagedCount).toBe(2);
    expect(pair.a.nextDeadline()).toBe(giveUpAt);
    expect(pair.a.timers.isPending('zero-key-material')).toBe(false);

    pair.advanceTo(giveUpAt);
    expect(pair.initiationTimes('a')).toEqual(expected); // gave up: nothing sent
    expect(pair.a.stagedCount).toBe(0);
    expect(pair.a.timers.isPending('retransmit-handshake')).toBe(false);
    expect(pair.a.timers.deadline('zero-key-material')).toBe(giveUpAt + ZERO_KEY_MATERIAL_AFTER_MS);
    expect(pair.a.handshake.state).toBe('initiation-created');

    pair.advanceTo(giveUpAt + ZERO_KEY_MATERIAL_AFTER_MS - 1);
    expect(pair.a.handshake.state).toBe('initiation-created');
    pair.advanceTo(giveUpAt + ZERO_KEY_MATERIAL_AFTER_MS);
    expect(pair.a.handshake.state).toBe('zeroed');
    expect(allKeypairs(pair.a)).toEqual([null, null, null]);
    expect(pair.a.nextDeadline()).toBeNull();

    pair.advanceTo(2_000_000);
    expect(pair.initiationTimes('a')).toEqual(expected);
    expect(pair.sentBy('b')).toEqual([]);

    // A new packet starts a fresh round of attempts.
    pair.encapsulate('a', packet(3));
    expect(pair.initiationTimes('a').at(-1)).toBe(2_000_000);
    expect(pair.a.timers.handshakeAttempts).toBe(0);
  });
});

describe('at most one initiation per REKEY_TIMEOUT', () => {
  it('many packets encapsulated within REKEY_TIMEOUT send one initiation', () => {
    const pair = new TunnelPair();
    const a = pair.a;
    const network: Uint8Array[] = [];
    for (let i = 0; i < 50; i++) {
      pair.clock.advance(i === 0 ? 0 : 100); // t = 0, 100, ..., 4900
      network.push(...a.encapsulate(packet(i)).network);
    }
    pair.clock.advance(99); // 4999
    network.push(...a.encapsulate(packet(50)).network);
    expect(types(network)).toEqual([MSG_INITIATION]);
    expect(a.stagedCount).toBe(51);
    expect(a.updateTimers().network).toEqual([]);

    pair.clock.advance(1); // 5000
    expect(types(a.encapsulate(packet(51)).network)).toEqual([MSG_INITIATION]);
    // That initiation re-armed the retransmit timer: nothing more is due at 5000.
    expect(a.updateTimers().network).toEqual([]);
    expect(a.nextDeadline()).toBe(2 * REKEY_TIMEOUT_MS);
  });

  it('initiateHandshake() is limited the same way, and a suppressed call does not move the retry deadline', () => {
    const pair = new TunnelPair();
    const a = pair.a;
    expect(types(a.initiateHandshake().network)).toEqual([MSG_INITIATION]);
    pair.clock.advance(1_000);
    expect(a.initiateHandshake().network).toEqual([]);
    pair.clock.advance(3_999); // 4999
    expect(a.initiateHandshake().network).toEqual([]);
    expect(a.sendKeepalive().network).toEqual([]);
    expect(a.nextDeadline()).toBe(REKEY_TIMEOUT_MS);
    pair.clock.advance(1); // 5000
    expect(types(a.initiateHandshake().network)).toEqual([MSG_INITIATION]);
    expect(a.initiateHandshake().network).toEqual([]);
  });

  it('a handshake response counts as a handshake sent: the responder does not initiate within REKEY_TIMEOUT of it', () => {
    const pair = new TunnelPair();
    const init = pair.a.initiateHandshake().network[0]!;
    expect(types(pair.b.decapsulate(init).network)).toEqual([MSG_RESPONSE]);
    pair.clock.advance(REKEY_TIMEOUT_MS - 1);
    expect(pair.b.initiateHandshake().network).toEqual([]);
    pair.clock.advance(1);
    expect(types(pair.b.initiateHandshake().network)).toEqual([MSG_INITIATION]);
  });
});

describe('staged packets', () => {
  it('packets encapsulated before a session are staged and delivered in order once the handshake completes', () => {
    const pair = new TunnelPair();
    const { a, b } = pair;
    const outs = [1, 2, 3, 4, 5].map((id) => a.encapsulate(packet(id)));
    expect(outs.map((o) => types(o.network))).toEqual([[MSG_INITIATION], [], [], [], []]);
    expect(a.stagedCount).toBe(5);

    const response = b.decapsulate(outs[0]!.network[0]!);
    expect(types(response.network)).toEqual([MSG_RESPONSE]);
    const flushed = a.decapsulate(response.network[0]!);
    // The staged packets go out instead of the keepalive that completes the handshake.
    expect(types(flushed.network)).toEqual([4, 4, 4, 4, 4]);
    expect(flushed.network.every(isData)).toBe(true);
    expect(flushed.network.map(counterOf)).toEqual([0n, 1n, 2n, 3n, 4n]);
    expect(a.stagedCount).toBe(0);

    const delivered = flushed.network.map((d) => b.decapsulate(d).tunnel!);
    expect(ids(delivered)).toEqual([1, 2, 3, 4, 5]);
  });

  it(`holds at most MAX_STAGED_PACKETS (${MAX_STAGED_PACKETS}); the oldest are dropped`, () => {
    const pair = new TunnelPair();
    pair.drop = () => true;
    const total = MAX_STAGED_PACKETS + 2;
    for (let id = 0; id < total; id++) pair.encapsulate('a', packet(id));
    expect(pair.a.stagedCount).toBe(MAX_STAGED_PACKETS);
    expect(pair.initiationTimes('a')).toEqual([0]);

    pair.drop = () => false;
    pair.deliver('b', pair.sentBy('a', MSG_INITIATION)[0]!.datagram);
    expect(pair.a.stagedCount).toBe(0);
    expect(ids(pair.received.b)).toEqual(Array.from({ length: MAX_STAGED_PACKETS }, (_, i) => i + 2));
    expect(pair.errors.b).toEqual([]);
  });
});

describe('responder key confirmation', () => {
  it('the responder keeps its new keypair in `next` and stages data until the first packet arrives under it', () => {
    const pair = new TunnelPair();
    const { a, b } = pair;
    const init = a.initiateHandshake().network[0]!;
    const response = b.decapsulate(init);
    expect(types(response.network)).toEqual([MSG_RESPONSE]);
    expect(b.keypairs.current).toBeNull();
    expect(b.keypairs.next).not.toBeNull();
    const kb = b.keypairs.next!;
    expect(kb.isInitiator).toBe(false);
    expect(b.lastHandshakeWallTime).toBe(0);

    // Not confirmed: no data may be sent under `next`. The packet is staged (and no initiation, which is rate limited by the response).
    const early = b.encapsulate(packet(1));
    expect(early.network).toEqual([]);
    expect(b.stagedCount).toBe(1);

    // The initiator has its keypair as `current` at once and confirms it with a keepalive.
    const confirm = a.decapsulate(response.network[0]!);
    expect(a.keypairs.current).not.toBeNull();
    expect(a.keypairs.current!.isInitiator).toBe(true);
    expect(a.keypairs.next).toBeNull();
    expect(a.lastHandshakeWallTime).toBe(pair.clock.wallTime());
    expect(confirm.network).toHaveLength(1);
    expect(isKeepalive(confirm.network[0]!)).toBe(true);

    const confirmed = b.decapsulate(confirm.network[0]!);
    expect(confirmed.error).toBeNull();
    expect(confirmed.authenticated).toBe(true);
    expect(confirmed.tunnel).toBeNull(); // keepalives never reach the TUN device
    expect(b.keypairs.current).toBe(kb);
    expect(b.keypairs.next).toBeNull();
    expect(b.lastHandshakeWallTime).toBe(pair.clock.wallTime());
    // The staged packet goes out now, under the confirmed keypair.
    expect(b.stagedCount).toBe(0);
    expect(confirmed.network).toHaveLength(1);
    expect(isData(confirmed.network[0]!)).toBe(true);
    expect(ids([a.decapsulate(confirmed.network[0]!).tunnel!])).toEqual([1]);
  });

  it('a data packet (not only a keepalive) confirms the keypair when the keepalive is lost', () => {
    const pair = new TunnelPair();
    const { a, b } = pair;
    const response = b.decapsulate(a.initiateHandshake().network[0]!);
    const kb = b.keypairs.next!;
    expect(b.encapsulate(packet(1)).network).toEqual([]);
    a.decapsulate(response.network[0]!); // its keepalive is lost

    pair.clock.advance(2_000);
    const data = a.encapsulate(packet(2)).network;
    expect(types(data)).toEqual([MSG_TRANSPORT]);
    expect(b.keypairs.current).toBeNull();
    const got = b.decapsulate(data[0]!);
    expect(ids([got.tunnel!])).toEqual([2]);
    expect(b.keypairs.current).toBe(kb);
    expect(types(got.network)).toEqual([MSG_TRANSPORT]);
    expect(ids([a.decapsulate(got.network[0]!).tunnel!])).toEqual([1]);
  });
});

describe('KEEPALIVE_TIMEOUT: passive keepalive', () => {
  it('after receiving data and sending nothing back for KEEPALIVE_TIMEOUT, a keepalive (32-byte type 4) goes out', () => {
    const pair = new TunnelPair();
    pair.handshake(); // t = 0; a's keepalive at 0 completes it
    expect(pair.keepaliveTimes('a')).toEqual([0]);
    pair.advanceTo(1_000);
    pair.encapsulate('b', packet(1));
    expect(ids(pair.received.a)).toEqual([1]);
    expect(pair.a.timers.deadline('send-keepalive')).toBe(1_000 + KEEPALIVE_TIMEOUT_MS);

    pair.advanceTo(1_000 + KEEPALIVE_TIMEOUT_MS - 1);
    expect(pair.keepaliveTimes('a')).toEqual([0]);
    pair.advanceTo(1_000 + KEEPALIVE_TIMEOUT_MS);
    expect(pair.keepaliveTimes('a')).toEqual([0, 11_000]);
    const keepalive = pair.sentBy('a').at(-1)!;
    expect(keepalive.type).toBe(MSG_TRANSPORT);
    expect(keepalive.datagram.length).toBe(32);

    // The keepalive told b that a is alive: b's new-handshake timer (16 s) was cancelled; nothing else happens.
    pair.advanceTo(100_000);
    expect(pair.keepaliveTimes('a')).toEqual([0, 11_000]);
    expect(pair.initiationTimes('a')).toEqual([0]);
    expect(pair.initiationTimes('b')).toEqual([]);
    expect(pair.keepaliveTimes('b')).toEqual([]);
  });

  it('no keepalive if data was sent back in the meantime', () => {
    const pair = new TunnelPair();
    pair.handshake();
    pair.advanceTo(1_000);
    pair.encapsulate('b', packet(1));
    pair.advanceTo(5_000);
    pair.encapsulate('a', packet(2));
    expect(pair.a.timers.isPending('send-keepalive')).toBe(false);

    pair.advanceTo(100_000);
    expect(pair.keepaliveTimes('a')).toEqual([0]);
    // b received a's data at 5 s and answered nothing: its keepalive goes at 15 s.
    expect(pair.keepaliveTimes('b')).toEqual([5_000 + KEEPALIVE_TIMEOUT_MS]);
    expect(pair.initiationTimes('a')).toEqual([0]);
    expect(pair.initiationTimes('b')).toEqual([]);
  });

  it('data received while the keepalive timer is pending earns another keepalive KEEPALIVE_TIMEOUT after the first (needAnotherKeepalive)', () => {
    const pair = new TunnelPair();
    pair.handshake();
    pair.advanceTo(1_000);
    pair.encapsulate('b', packet(1));
    pair.advanceTo(6_000);
    pair.encapsulate('b', packet(2));
    expect(pair.a.timers.deadline('send-keepalive')).toBe(11_000); // not pushed back
    pair.advanceTo(100_000);
    expect(pair.keepaliveTimes('a')).toEqual([0, 11_000, 21_000]);
  });
});

describe('KEEPALIVE_TIMEOUT + REKEY_TIMEOUT: new handshake when the peer stops answering', () => {
  it('sending data and hearing nothing back for 15 s (+ jitter) starts a new handshake', () => {
    const pair = new TunnelPair();
    pair.handshake();
    pair.advanceTo(1_000);
    pair.drop = (d) => d.from === 'a' && isData(d.datagram);
    pair.encapsulate('a', packet(1));
    const due = 1_000 + KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS;
    expect(pair.a.timers.deadline('new-handshake')).toBe(due);
    // More data does not push the deadline back.
    pair.advanceTo(5_000);
    pair.encapsulate('a', packet(2));
    expect(pair.a.timers.deadline('new-handshake')).toBe(due);

    pair.advanceTo(due - 1);
    expect(pair.initiationTimes('a')).toEqual([0]);
    pair.advanceTo(due);
    expect(pair.initiationTimes('a')).toEqual([0, due]);
    // The initiation got through: a new session exists.
    expect(pair.a.keypairs.current!.createdAt).toBe(due);
  });

  it('adds the injected jitter to the new-handshake deadline', () => {
    const pair = new TunnelPair({ jitter: () => 123 });
    pair.handshake();
    pair.advanceTo(1_000);
    pair.drop = (d) => d.from === 'a' && isData(d.datagram);
    pair.encapsulate('a', packet(1));
    pair.advanceTo(16_122);
    expect(pair.initiationTimes('a')).toEqual([0]);
    pair.advanceTo(16_123);
    expect(pair.initiationTimes('a')).toEqual([0, 16_123]);
  });

  it('with the default jitter the new-handshake deadline is 15 s + [0, 334] ms after the data', () => {
    const pair = new TunnelPair({ jitter: null });
    pair.handshake();
    pair.advanceTo(1_000);
    pair.drop = (d) => d.from === 'a' && isData(d.datagram);
    pair.encapsulate('a', packet(1));
    const at = pair.a.timers.deadline('new-handshake')! - 1_000;
    expect(at).toBeGreaterThanOrEqual(15_000);
    expect(at).toBeLessThanOrEqual(15_334);
  });

  it('does not start a handshake when the peer answers (its keepalive cancels the timer)', () => {
    const pair = new TunnelPair();
    pair.handshake();
    pair.advanceTo(1_000);
    pair.encapsulate('a', packet(1));
    pair.advanceTo(100_000);
    expect(pair.keepaliveTimes('b')).toEqual([11_000]);
    expect(pair.initiationTimes('a')).toEqual([0]);
    expect(pair.initiationTimes('b')).toEqual([]);
  });
});

describe('REKEY_AFTER_TIME and REJECT_AFTER_TIME', () => {
  it('the initiator starts a new handshake when it sends after REKEY_AFTER_TIME; the responder does not rekey on time when sending', () => {
    const pair = new TunnelPair();
    pair.handshake();
    const { a, b } = pair;
    expect(a.keypairs.current!.isInitiator).toBe(true);
    expect(b.keypairs.current!.isInitiator).toBe(false);

    pair.clock.advance(REKEY_AFTER_TIME_MS); // exactly 120 s: not yet
    expect(types(a.encapsulate(packet(1)).network)).toEqual([MSG_TRANSPORT]);
    expect(types(b.encapsulate(packet(2)).network)).toEqual([MSG_TRANSPORT]);

    pair.clock.advance(1);
    expect(types(b.encapsulate(packet(3)).network)).toEqual([MSG_TRANSPORT]);
    const out = a.encapsulate(packet(4));
    expect(types(out.network)).toEqual([MSG_TRANSPORT, MSG_INITIATION]);
    expect(a.keypairs.current!.createdAt).toBe(0);

    // And that initiation completes a new session.
    pair.send('a', { ...out, network: [out.network[1]!] });
    expect(a.keypairs.current!.createdAt).toBe(REKEY_AFTER_TIME_MS + 1);
    expect(b.keypairs.current!.createdAt).toBe(REKEY_AFTER_TIME_MS + 1);
  });

  it('after REJECT_AFTER_TIME a session is not used to send (packet staged, initiation sent) and data under it is refused', () => {
    const pair = new TunnelPair();
    pair.handshake();
    const { a, b } = pair;

    pair.clock.advance(100_000);
    const fromA = a.encapsulate(packet(10)).network;
    expect(types(fromA)).toEqual([MSG_TRANSPORT]);
    pair.clock.advance(79_000); // 179 s
    const fromB = b.encapsulate(packet(11)).network;
    expect(types(fromB)).toEqual([MSG_TRANSPORT]);

    pair.clock.advance(999); // 179.999 s: still valid
    const accepted = b.decapsulate(fromA[0]!);
    expect(accepted.error).toBeNull();
    expect(ids([accepted.tunnel!])).toEqual([10]);

    pair.clock.advance(1); // 180 s
    const aOut = a.encapsulate(packet(12));
    expect(types(aOut.network)).toEqual([MSG_INITIATION]);
    expect(a.stagedCount).toBe(1);
    const bOut = b.encapsulate(packet(13));
    expect(types(bOut.network)).toEqual([MSG_INITIATION]);
    expect(b.stagedCount).toBe(1);
    expect(a.sendKeepalive().network).toEqual([]); // nothing under the expired session, initiation rate limited

    pair.clock.advance(1);
    const refused = a.decapsulate(fromB[0]!);
    expect(refused.error?.code).toBe('ExpiredKeypair');
    expect(refused.tunnel).toBeNull();
    expect(refused.authenticated).toBe(false);

    // The staged packet goes out once the new handshake completes.
    pair.send('a', aOut);
    expect(a.stagedCount).toBe(0);
    expect(ids(pair.received.b)).toEqual([12]);
    expect(a.keypairs.current!.createdAt).toBe(REJECT_AFTER_TIME_MS + 1);
  });

  it('the initiator rekeys on receive after REJECT_AFTER_TIME − KEEPALIVE_TIMEOUT − REKEY_TIMEOUT (165 s), once; the responder never does', () => {
    const pair = new TunnelPair();
    pair.handshake();
    const { a, b } = pair;

    pair.clock.advance(REKEY_ON_RECEIVE_AFTER_MS); // exactly 165 s: not yet
    let got = a.decapsulate(b.encapsulate(packet(1)).network[0]!);
    expect(ids([got.tunnel!])).toEqual([1]);
    expect(got.network).toEqual([]);

    pair.clock.advance(1);
    got = a.decapsulate(b.encapsulate(packet(2)).network[0]!);
    expect(ids([got.tunnel!])).toEqual([2]);
    expect(types(got.network)).toEqual([MSG_INITIATION]);
    expect(a.timers.sentLastMinuteHandshake).toBe(true);

    // Sent once: later packets (past the REKEY_TIMEOUT rate limit) do not trigger another.
    pair.clock.advance(REKEY_TIMEOUT_MS + 1_000); // 171.001 s
    got = a.decapsulate(b.encapsulate(packet(3)).network[0]!);
    expect(ids([got.tunnel!])).toEqual([3]);
    expect(got.network).toEqual([]);
    got = a.decapsulate(craftTransport(b, b.keypairs.current!, 1000n, EMPTY)); // a keepalive neither
    expect(got.error).toBeNull();
    expect(got.network).toEqual([]);

    // The responder receiving data this late does not initiate.
    const fromA = a.encapsulate(packet(4)).network.filter(isData);
    const onB = b.decapsulate(fromA[0]!);
    expect(ids([onB.tunnel!])).toEqual([4]);
    expect(onB.network).toEqual([]);
  });
});

describe('REKEY_AFTER_MESSAGES and REJECT_AFTER_MESSAGES', () => {
  it('sending past REKEY_AFTER_MESSAGES (2^60) starts a new handshake, on either side', () => {
    const pair = new TunnelPair();
    pair.handshake();
    pair.clock.advance(10_000);
    const { a, b } = pair;

    a.keypairs.current!.sendCounter = REKEY_AFTER_MESSAGES - 1n;
    const first = a.encapsulate(packet(1)).network;
    expect(types(first)).toEqual([MSG_TRANSPORT]); // next counter is exactly 2^60: not past it
    expect(counterOf(first[0]!)).toBe(REKEY_AFTER_MESSAGES - 1n);
    const second = a.encapsulate(packet(2)).network;
    expect(types(second)).toEqual([MSG_TRANSPORT, MSG_INITIATION]);
    expect(counterOf(second[0]!)).toBe(REKEY_AFTER_MESSAGES);
    expect(ids([b.decapsulate(first[0]!).tunnel!, b.decapsulate(second[0]!).tunnel!])).toEqual([1, 2]);

    // The responder rekeys on message count too (unlike on time), well before REKEY_AFTER_TIME.
    b.keypairs.current!.sendCounter = REKEY_AFTER_MESSAGES;
    const fromB = b.encapsulate(packet(3)).network;
    expect(types(fromB)).toEqual([MSG_TRANSPORT, MSG_INITIATION]);
    expect(counterOf(fromB[0]!)).toBe(REKEY_AFTER_MESSAGES);
  });

  it('never sends a packet with a counter >= REJECT_AFTER_MESSAGES: it stages and initiates instead', () => {
    const pair = new TunnelPair();
    pair.handshake();
    pair.clock.advance(10_000);
    const { a } = pair;
    const keypair = a.keypairs.current!;
    keypair.sendCounter = REJECT_AFTER_MESSAGES - 2n;

    const out1 = a.encapsulate(packet(1)).network;
    expect(types(out1)).toEqual([MSG_TRANSPORT, MSG_INITIATION]);
    expect(counterOf(out1[0]!)).toBe(REJECT_AFTER_MESSAGES - 2n);
    const out2 = a.encapsulate(packet(2)).network;
    expect(types(out2)).toEqual([MSG_TRANSPORT]); // last usable counter; initiation rate limited
    expect(counterOf(out2[0]!)).toBe(REJECT_AFTER_MESSAGES - 1n);

    const out3 = a.encapsulate(packet(3)).network;
    expect(out3).toEqual([]);
    expect(a.stagedCount).toBe(1);
    expect(a.sendKeepalive().network).toEqual([]);
    expect(keypair.sendCounter).toBeLessThanOrEqual(REJECT_AFTER_MESSAGES);

    pair.clock.advance(REKEY_TIMEOUT_MS);
    const out4 = a.encapsulate(packet(4));
    expect(types(out4.network)).toEqual([MSG_INITIATION]);
    expect(a.stagedCount).toBe(2);

    // The peer accepts the last usable counter.
    pair.deliver('b', out1[0]!);
    pair.deliver('b', out2[0]!);
    // The new handshake sends the staged packets under the new session.
    pair.send('a', out4);
    expect(a.stagedCount).toBe(0);
    expect(a.keypairs.current).not.toBe(keypair);
    expect(ids(pair.received.b)).toEqual([1, 2, 3, 4]);
    const transports = [...out1, ...out2, ...pair.sentBy('a', MSG_TRANSPORT).map((d) => d.datagram)].filter(
      (d) => d[0] === MSG_TRANSPORT,
    );
    for (const d of transports) expect(counterOf(d) < REJECT_AFTER_MESSAGES).toBe(true);
  });

  it('refuses a received transport message with a counter >= REJECT_AFTER_MESSAGES', () => {
    const pair = new TunnelPair();
    pair.handshake();
    const { a, b } = pair;
    const kb = b.keypairs.current!;
    const payload = packet(7);

    // The crafting itself is sound: an ordinary counter is accepted.
    expect(ids([a.decapsulate(craftTransport(b, kb, 5n, payload)).tunnel!])).toEqual([7]);

    for (const counter of [REJECT_AFTER_MESSAGES, REJECT_AFTER_MESSAGES + 1n, 2n ** 64n - 1n]) {
      const refused = a.decapsulate(craftTransport(b, kb, counter, payload));
      expect(refused.error).not.toBeNull();
      expect(refused.tunnel).toBeNull();
      expect(refused.authenticated).toBe(false);
    }
    const last = a.decapsulate(craftTransport(b, kb, REJECT_AFTER_MESSAGES - 1n, payload));
    expect(last.error).toBeNull();
    expect(ids([last.tunnel!])).toEqual([7]);

    // The same limit through the send path: b cannot be made to send at the limit.
    kb.sendCounter = REJECT_AFTER_MESSAGES;
    expect(b.encapsulate(packet(8)).network.filter((d) => d[0] === MSG_TRANSPORT)).toEqual([]);
    expect(b.stagedCount).toBe(1);
  });
});

describe('persistent keepalive', () => {
  it('with persistentKeepaliveSeconds = 25 an idle established tunnel sends a keepalive every 25 s', () => {
    const pair = new TunnelPair({ persistentKeepaliveA: 25 });
    expect(pair.a.persistentKeepaliveSeconds).toBe(25);
    pair.handshake(); // a's last packet (the confirming keepalive) at t = 0
    pair.advanceTo(24_999);
    expect(pair.keepaliveTimes('a')).toEqual([0]);
    pair.advanceTo(100_000);
    expect(pair.keepaliveTimes('a')).toEqual([0, 25_000, 50_000, 75_000, 100_000]);
    expect(pair.a.nextDeadline()).toBe(125_000);
    // The other side has no persistent keepalive and nothing to answer.
    expect(pair.keepaliveTimes('b')).toEqual([]);
    expect(pair.initiationTimes('b')).toEqual([]);
  });

  it('any authenticated packet, sent or received, pushes the next persistent keepalive back', () => {
    const pair = new TunnelPair({ persistentKeepaliveA: 25 });
    pair.handshake();
    pair.advanceTo(10_000);
    pair.encapsulate('a', packet(1)); // sent: next at 35 s
    expect(pair.a.timers.deadline('persistent-keepalive')).toBe(35_000);
    // b answers with its keepalive at 20 s (received: next at 45 s).
    pair.advanceTo(100_000);
    expect(pair.keepaliveTimes('b')).toEqual([20_000]);
    expect(pair.keepaliveTimes('a')).toEqual([0, 45_000, 70_000, 95_000]);
  });

  it('is off by default: an idle tunnel sends nothing', () => {
    const pair = new TunnelPair();
    pair.handshake();
    const before = pair.sent.length;
    pair.advanceTo(ZERO_KEY_MATERIAL_AFTER_MS - 1);
    expect(pair.sent.length).toBe(before);
  });
});

describe('zeroing key material after 3 × REJECT_AFTER_TIME', () => {
  it('540 s after the last session was derived all keypairs are gone and the handshake is zeroed; a new packet then handshakes afresh', () => {
    const pair = new TunnelPair();
    pair.handshake();
    const { a, b } = pair;
    const oldA = a.keypairs.current!;
    expect(a.timers.deadline('zero-key-material')).toBe(ZERO_KEY_MATERIAL_AFTER_MS);
    expect(b.timers.deadline('zero-key-material')).toBe(ZERO_KEY_MATERIAL_AFTER_MS);

    pair.advanceTo(ZERO_KEY_MATERIAL_AFTER_MS - 1);
    expect(a.keypairs.current).not.toBeNull();
    expect(b.keypairs.current).not.toBeNull();

    pair.advanceTo(ZERO_KEY_MATERIAL_AFTER_MS);
    for (const t of [a, b]) {
      expect(allKeypairs(t)).toEqual([null, null, null]);
      expect(t.handshake.state).toBe('zeroed');
      expect(t.nextDeadline()).toBeNull();
    }
    expect(Array.from(oldA.sendKey).every((x) => x === 0)).toBe(true); // wiped
    expect(Array.from(oldA.receiveKey).every((x) => x === 0)).toBe(true);
    expect(pair.initiationTimes('a')).toEqual([0]);

    pair.advanceTo(600_000);
    pair.encapsulate('a', packet(1));
    expect(pair.initiationTimes('a')).toEqual([0, 600_000]);
    expect(ids(pair.received.b)).toEqual([1]);
    expect(a.keypairs.current!.createdAt).toBe(600_000);
    expect(b.keypairs.current!.createdAt).toBe(600_000);
    expect(a.timers.deadline('zero-key-material')).toBe(600_000 + ZERO_KEY_MATERIAL_AFTER_MS);
    pair.encapsulate('b', packet(2));
    expect(ids(pair.received.a)).toEqual([2]);
  });

  it('a rekey moves the deadline: it counts from the newest session', () => {
    const pair = new TunnelPair();
    pair.handshake();
    pair.advanceTo(100_000);
    pair.handshake();
    const due = 100_000 + ZERO_KEY_MATERIAL_AFTER_MS;
    expect(pair.a.timers.deadline('zero-key-material')).toBe(due);
    expect(pair.b.timers.deadline('zero-key-material')).toBe(due);
    pair.advanceTo(due - 1);
    expect(pair.a.keypairs.current).not.toBeNull();
    expect(pair.a.keypairs.previous).not.toBeNull();
    pair.advanceTo(due);
    expect(allKeypairs(pair.a)).toEqual([null, null, null]);
    expect(allKeypairs(pair.b)).toEqual([null, null, null]);
  });

  // wireguard-go's expiredZeroKeyMaterial calls ZeroAndFlushAll(), which ends with FlushStagedPackets().
  it('zeroing key material also flushes staged packets (wireguard-go ZeroAndFlushAll)', () => {
    const pair = new TunnelPair();
    pair.handshake();
    pair.advanceTo(ZERO_KEY_MATERIAL_AFTER_MS - 4_000); // session long expired
    pair.drop = () => true;
    pair.encapsulate('a', packet(99)); // staged; its initiation is lost
    expect(pair.a.stagedCount).toBe(1);

    pair.advanceTo(ZERO_KEY_MATERIAL_AFTER_MS);
    expect(allKeypairs(pair.a)).toEqual([null, null, null]);
    expect(pair.a.stagedCount).toBe(0);

    // The retry completes a handshake; the flushed packet must not appear.
    pair.drop = () => false;
    pair.advanceTo(ZERO_KEY_MATERIAL_AFTER_MS + 2_000);
    expect(pair.a.keypairs.current).not.toBeNull();
    expect(pair.received.b).toEqual([]);
  });
});

describe('keypair rotation', () => {
  it('a rekey moves current to previous on the initiator; data under previous is accepted until a third handshake drops it', () => {
    const pair = new TunnelPair();
    pair.handshake();
    const { a, b } = pair;
    const k1 = a.keypairs.current!;

    pair.advanceTo(1_000);
    const oldB1 = b.encapsulate(packet(1)).network[0]!; // under k1, delivered late
    const oldB2 = b.encapsulate(packet(2)).network[0]!;

    pair.advanceTo(6_000);
    pair.handshake(); // second handshake (a initiates again)
    const k2 = a.keypairs.current!;
    expect(k2).not.toBe(k1);
    expect(k2.isInitiator).toBe(true);
    expect(a.keypairs.previous).toBe(k1);
    expect(a.keypairs.next).toBeNull();
    // b confirmed too (a's keepalive): previous = old session.
    expect(b.keypairs.current!.remoteIndex).toBe(k2.localIndex);
    expect(b.keypairs.previous!.remoteIndex).toBe(k1.localIndex);

    let got = pair.deliver('a', oldB1);
    expect(got.error).toBeNull();
    expect(ids([got.tunnel!])).toEqual([1]);
    expect(a.keypairs.current).toBe(k2); // receiving under previous does not rotate back

    pair.advanceTo(7_000);
    const midB = b.encapsulate(packet(3)).network[0]!; // under k2
    pair.advanceTo(12_000);
    pair.handshake(); // third handshake
    const k3 = a.keypairs.current!;
    expect(a.keypairs.previous).toBe(k2);
    expect(a.keypairs.all()).not.toContain(k1);
    expect(a.keypairs.byLocalIndex(k1.localIndex)).toBeNull();
    expect(a.indexTable.lookup(k1.localIndex)).toBeUndefined();
    expect(Array.from(k1.receiveKey).every((x) => x === 0)).toBe(true);
    expect(k3).not.toBe(k2);

    got = pair.deliver('a', midB);
    expect(got.error).toBeNull();
    expect(ids([got.tunnel!])).toEqual([3]);

    got = pair.deliver('a', oldB2);
    expect(got.error?.code).toBe('UnknownIndex');
    expect(got.tunnel).toBeNull();
    expect(ids(pair.received.a)).toEqual([1, 3]);
  });

  it('the responder drops its previous keypair when a new initiation arrives and holds the new one in next until confirmed', () => {
    const pair = new TunnelPair();
    pair.handshake();
    pair.advanceTo(6_000);
    pair.handshake();
    const { a, b } = pair;
    const bCurrent = b.keypairs.current!;
    expect(b.keypairs.previous).not.toBeNull();

    pair.advanceTo(12_000);
    const init = a.initiateHandshake().network[0]!;
    b.decapsulate(init);
    expect(b.keypairs.current).toBe(bCurrent);
    expect(b.keypairs.previous).toBeNull();
    expect(b.keypairs.next).not.toBeNull();
  });
});

describe('nextDeadline()', () => {
  it('returns the earliest pending deadline, and null when idle', () => {
    const pair = new TunnelPair();
    const { a, b } = pair;
    expect(a.nextDeadline()).toBeNull();
    expect(b.nextDeadline()).toBeNull();
    expect(a.updateTimers().network).toEqual([]);

    pair.drop = () => true;
    pair.encapsulate('a', packet(1));
    expect(a.nextDeadline()).toBe(REKEY_TIMEOUT_MS); // retransmit
    expect(b.nextDeadline()).toBeNull();

    // At 1 s the initiation gets through after all.
    pair.drop = () => false;
    pair.advanceTo(1_000);
    pair.deliver('b', pair.sentBy('a', MSG_INITIATION)[0]!.datagram);
    expect(ids(pair.received.b)).toEqual([1]);
    // a: retransmit cleared; zero-key at 541 s; new-handshake at 16 s (it sent data).
    expect(a.timers.isPending('retransmit-handshake')).toBe(false);
    expect(a.timers.deadline('zero-key-material')).toBe(1_000 + ZERO_KEY_MATERIAL_AFTER_MS);
    expect(a.nextDeadline()).toBe(16_000);
    // b: zero-key at 541 s; keepalive at 11 s (it received data).
    expect(b.nextDeadline()).toBe(11_000);

    pair.advanceTo(11_000); // b's keepalive cancels a's new-handshake timer
    expect(pair.keepaliveTimes('b')).toEqual([11_000]);
    expect(a.nextDeadline()).toBe(1_000 + ZERO_KEY_MATERIAL_AFTER_MS);
    expect(b.nextDeadline()).toBe(1_000 + ZERO_KEY_MATERIAL_AFTER_MS);

    // Calling updateTimers before a deadline does nothing and changes nothing.
    expect(a.updateTimers().network).toEqual([]);
    expect(a.nextDeadline()).toBe(1_000 + ZERO_KEY_MATERIAL_AFTER_MS);

    pair.advanceTo(1_000 + ZERO_KEY_MATERIAL_AFTER_MS);
    expect(a.nextDeadline()).toBeNull();
    expect(b.nextDeadline()).toBeNull();
  });

  it('is the minimum over all pending timers, including persistent keepalive', () => {
    const pair = new TunnelPair({ persistentKeepaliveA: 7 });
    pair.handshake();
    expect(pair.a.nextDeadline()).toBe(7_000);
    pair.a.persistentKeepaliveSeconds = 0;
    pair.advanceTo(7_000); // fires, but disabled: sends nothing
    expect(pair.keepaliveTimes('a')).toEqual([0]);
    expect(pair.a.nextDeadline()).toBe(ZERO_KEY_MATERIAL_AFTER_MS);
    pair.a.close();
    expect(pair.a.nextDeadline()).toBeNull();
  });
});

describe('updateTimers() called late (periodic polling)', () => {
  it('stepping through each deadline: the retransmitted initiation cancels the pending keepalive', () => {
    const pair = new TunnelPair();
    pair.handshake();
    pair.advanceTo(6_000);
    pair.drop = (d) => d.from === 'a';
    pair.send('a', pair.a.initiateHandshake()); // lost; retransmit at 11 s
    pair.advanceTo(7_000);
    pair.encapsulate('b', packet(1)); // a owes a keepalive at 17 s
    expect(pair.a.timers.deadline('retransmit-handshake')).toBe(11_000);
    expect(pair.a.timers.deadline('send-keepalive')).toBe(17_000);

    pair.advanceTo(17_000);
    expect(pair.initiationTimes('a')).toEqual([0, 6_000, 11_000, 16_000]);
    expect(pair.keepaliveTimes('a')).toEqual([0]); // the initiation at 11 s was the authenticated packet sent
  });

  // wireguard-go's Timer re-checks isPending before running the expiry function, so a timer cancelled by an
  // earlier handler in the same late updateTimers() call does not fire, and timers take effect in time order.
  it('one late updateTimers() call behaves like firing each timer at its deadline (a cancelled timer does not fire)', () => {
    const pair = new TunnelPair();
    pair.handshake();
    pair.advanceTo(6_000);
    pair.drop = (d) => d.from === 'a';
    pair.send('a', pair.a.initiateHandshake()); // lost; retransmit at 11 s
    pair.advanceTo(7_000);
    pair.encapsulate('b', packet(1)); // a owes a keepalive at 17 s

    expect(pair.a.timers.deadline('retransmit-handshake')).toBe(11_000);
    expect(pair.a.timers.deadline('send-keepalive')).toBe(17_000);

    pair.clock.advance(10_000); // 17 s, no updateTimers() on the way (e.g. a device polling every few seconds)
    const out = pair.a.updateTimers();
    // The retransmit (due 11 s) runs and its initiation cancels the keepalive (due 17 s).
    expect(types(out.network)).toEqual([MSG_INITIATION]);
    expect(pair.a.timers.isPending('send-keepalive')).toBe(false);
  });
});
