/**
 * The zero-allocation transport fast paths against the reference paths they
 * shortcut, for every crypto backend:
 *
 *   Tunnel.sealTransport(slot, n)  ≡ encapsulate(packet)       (one transport datagram)
 *   Tunnel.openTransport(slot, n)  ≡ decapsulate(datagram)     (transport messages)
 *
 * "Equal" means the same bytes on the wire, the same plaintext, the same
 * counters, rxBytes/txBytes and timer state, and a fast path that declines
 * (0 / -1) exactly where the reference path has something else to do,
 * leaving state and bytes untouched. Also: the Keypair's two-word send
 * counter against BigInt arithmetic, ReplayWindow.isFresh against check(),
 * and a measurement that sealTransport and openTransport allocate nothing per
 * packet.
 */
import { runInNewContext } from 'node:vm';
import v8 from 'node:v8';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/noise/clock.js';
import {
  MAX_MESSAGE_SIZE,
  MESSAGE_TRANSPORT_MIN_SIZE,
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME_MS,
  REKEY_ON_RECEIVE_AFTER_MS,
} from '../../src/noise/constants.js';
import { availableBackends } from '../../src/noise/default-backend.js';
import { IndexTable } from '../../src/noise/index-table.js';
import { Keypair, Keypairs } from '../../src/noise/keypair.js';
import type { Primitives } from '../../src/noise/primitives.js';
import { ReplayWindow } from '../../src/noise/replay.js';
import { sodiumBackend } from '../../src/noise/sodium-backend.js';
import type { TimerName } from '../../src/noise/timers.js';
import { TransportSlot } from '../../src/noise/transport-slot.js';
import { OPEN_DECLINED, OPEN_FAILED, Tunnel, paddedLength, type TunnelOutput } from '../../src/noise/tunnel.js';
import { Rng } from '../helpers/fuzz.js';
import { completeHandshake, errorCode, hex, makePair, newIdentity, only, type Pair } from '../helpers/handshake-fixtures.js';

const TIMER_NAMES: readonly TimerName[] = ['retransmit-handshake', 'send-keepalive', 'new-handshake', 'zero-key-material', 'persistent-keepalive'];
/** Packets per MTU setting and backend in the seal comparison (two MTUs: ≥ 2000 per backend). */
const SEAL_PACKETS_PER_MTU = 1100;
const MAX_TEST_PACKET = 1500;
/** A slot big enough for any test packet, padded. */
const BIG_SLOT_SIZE = 2048;
/** Datagrams from the peer in the receive stream (plus replays and forgeries mixed in). */
const RECEIVE_STREAM_PACKETS = 1000;
const MAX_PLAINTEXT_SIZE = MAX_MESSAGE_SIZE - MESSAGE_TRANSPORT_MIN_SIZE;
const JUNK = 0xee;

let prngSeed = 0x1234;
/** A fresh seeded PRNG for tests that need a few random bytes. */
function seededPrng(): Rng {
  return new Rng(prngSeed++);
}

const backends = availableBackends.map((backend) => [backend.name, backend] as const);

/** Two tunnels with a confirmed session (a initiated), on one ManualClock, using `primitives`. */
function sessionPair(primitives: Primitives, mtu = 0): Pair {
  const clock = new ManualClock();
  const pair = makePair({ clock, mtu, identityA: newIdentity(clock, primitives), identityB: newIdentity(clock, primitives) });
  completeHandshake(pair.a, pair.b);
  return pair;
}

function randomPacket(prng: Rng, size: number): Uint8Array {
  const packet = prng.bytes(size);
  packet[0] = 0x45;
  return packet;
}

/** A slot whose packet area holds `packet` and junk after it (padding must be zeroed by the sealer). */
function slotWith(packet: Uint8Array, size: number): TransportSlot {
  const slot = new TransportSlot(new Uint8Array(size).fill(JUNK));
  slot.packetArea.set(packet);
  return slot;
}

interface TimerState {
  deadlines: (number | null)[];
  needAnotherKeepalive: boolean;
  sentLastMinuteHandshake: boolean;
  handshakeAttempts: number;
}

function timerState(tunnel: Tunnel): TimerState {
  const t = tunnel.timers;
  return {
    deadlines: TIMER_NAMES.map((name) => t.deadline(name) ?? null),
    needAnotherKeepalive: t.needAnotherKeepalive,
    sentLastMinuteHandshake: t.sentLastMinuteHandshake,
    handshakeAttempts: t.handshakeAttempts,
  };
}

function restoreTimers(tunnel: Tunnel, state: TimerState): void {
  const t = tunnel.timers;
  TIMER_NAMES.forEach((name, i) => {
    const at = state.deadlines[i];
    if (at === null || at === undefined) t.clear(name);
    else t.set(name, at);
  });
  t.needAnotherKeepalive = state.needAnotherKeepalive;
  t.sentLastMinuteHandshake = state.sentLastMinuteHandshake;
  t.handshakeAttempts = state.handshakeAttempts;
}

/** What a receive path made of a datagram, comparable between paths. */
interface Delivery {
  /** Hex of the (padded) plaintext; '' for a keepalive; null when nothing was delivered. */
  plaintext: string | null;
  error: string | null;
  network: number;
}

function fromOutput(out: TunnelOutput): Delivery {
  const keepalive = out.error === null && out.tunnel === null && out.authenticated;
  return { plaintext: out.tunnel !== null ? hex(out.tunnel) : keepalive ? '' : null, error: errorCode(out), network: out.network.length };
}

/** The fast path's result for a datagram, falling back to decapsulate() with the original bytes on -1 (as the device does). */
function receiveFast(tunnel: Tunnel, slot: TransportSlot, datagram: Uint8Array): { delivery: Delivery; fast: boolean; intact: boolean } {
  slot.bytes.set(datagram);
  const n = tunnel.openTransport(slot, datagram.length);
  if (n >= 0) return { delivery: { plaintext: hex(slot.plaintext(n)), error: null, network: 0 }, fast: true, intact: true };
  // Did not authenticate: the device drops it (the AEAD may have wiped the bytes), as decapsulate would with DecryptionFailed.
  if (n === OPEN_FAILED) return { delivery: { plaintext: null, error: 'DecryptionFailed', network: 0 }, fast: false, intact: true };
  expect(n).toBe(OPEN_DECLINED);
  const intact = hex(slot.bytes.subarray(0, datagram.length)) === hex(datagram);
  return { delivery: fromOutput(tunnel.decapsulate(datagram)), fast: false, intact };
}

// ---------------------------------------------------------------------------

describe.each(backends)('%s: sealTransport ≡ encapsulate', (_name, backend) => {
  it.each([0, 1420])(`${SEAL_PACKETS_PER_MTU} random packets of 1..${MAX_TEST_PACKET} bytes, mtu %i: same bytes, counter, txBytes and timers`, (mtu) => {
    const pair = sessionPair(backend, mtu);
    pair.a.persistentKeepaliveSeconds = 25; // so the traversal timer moves too
    const prng = new Rng(0xfa57 + mtu);
    const reusedSlot = new TransportSlot(new Uint8Array(BIG_SLOT_SIZE));
    for (let i = 0; i < SEAL_PACKETS_PER_MTU; i++) {
      pair.clock.advance(prng.int(20));
      const [sender, receiver] = prng.int(2) === 0 ? [pair.a, pair.b] : [pair.b, pair.a];
      const size = i < 3 ? [1, MAX_TEST_PACKET, mtu || 16][i]! : 1 + prng.int(MAX_TEST_PACKET);
      const packet = randomPacket(prng, size);
      // Alternate a reused slot (stale bytes in the padding area, views of changing length) and an exact-size fresh one.
      let slot: TransportSlot;
      if (prng.int(2) === 0) {
        slot = reusedSlot;
        slot.bytes.fill(JUNK, TransportSlot.PACKET_OFFSET + size);
        slot.packetArea.set(packet);
      } else {
        slot = slotWith(packet, paddedLength(size, mtu) + TransportSlot.OVERHEAD);
      }
      const keypair = sender.keypairs.current!;
      const counterBefore = keypair.sendCounter;
      const txBefore = sender.txBytes;
      const timersBefore = timerState(sender);

      const n = sender.sealTransport(slot, size);
      expect(n, `packet ${i} (${size} bytes)`).toBeGreaterThan(0);
      const fast = Uint8Array.from(slot.bytes.subarray(0, n));
      const afterFast = { counter: keypair.sendCounter, tx: sender.txBytes - txBefore, timers: timerState(sender) };

      keypair.sendCounter = counterBefore;
      sender.txBytes = txBefore;
      restoreTimers(sender, timersBefore);
      const slow = only(sender.encapsulate(packet).network);
      expect(hex(fast), `packet ${i} (${size} bytes)`).toBe(hex(slow));
      expect(afterFast).toEqual({ counter: keypair.sendCounter, tx: sender.txBytes - txBefore, timers: timerState(sender) });
      expect(afterFast.counter).toBe(counterBefore + 1n);

      // And the peer opens it: the padded plaintext starts with the packet.
      const opened = receiver.decapsulate(fast);
      expect(errorCode(opened)).toBeNull();
      expect(hex(opened.tunnel!.subarray(0, size))).toBe(hex(packet));
      expect(opened.tunnel!.length).toBe(paddedLength(size, mtu));
    }
  });
});

describe('sealTransport declines (returns 0, changes nothing) where encapsulate has more to do', () => {
  const prng = new Rng(0xdec1);
  const backend = availableBackends[0]!;

  /** sealTransport that must decline: it returns 0 and leaves counter, txBytes, timers and slot bytes alone. */
  function expectDecline(tunnel: Tunnel, slot: TransportSlot, length: number): void {
    const keypair = tunnel.keypairs.current;
    const before = { counter: keypair?.sendCounter, tx: tunnel.txBytes, timers: timerState(tunnel), bytes: hex(slot.bytes) };
    expect(tunnel.sealTransport(slot, length)).toBe(0);
    expect({ counter: keypair?.sendCounter, tx: tunnel.txBytes, timers: timerState(tunnel), bytes: hex(slot.bytes) }).toEqual(before);
  }

  it('no session yet', () => {
    const clock = new ManualClock();
    const pair = makePair({ clock, identityA: newIdentity(clock, backend), identityB: newIdentity(clock, backend) });
    const packet = randomPacket(prng, 100);
    expectDecline(pair.a, slotWith(packet, BIG_SLOT_SIZE), packet.length);
    expect(pair.a.encapsulate(packet).network.map((d) => d[0])).toEqual([1]); // the slow path starts a handshake
  });

  it('packets are staged (they must leave first, in order)', () => {
    const pair = sessionPair(backend);
    const keypair = pair.a.keypairs.current!;
    const first = randomPacket(prng, 64);
    const second = randomPacket(prng, 64);
    keypair.sendCounter = REJECT_AFTER_MESSAGES; // no usable session: encapsulate stages the packet
    pair.a.encapsulate(first);
    expect(pair.a.stagedCount).toBe(1);
    keypair.sendCounter = 5n; // usable again, with a packet still waiting
    expectDecline(pair.a, slotWith(second, BIG_SLOT_SIZE), second.length);
    const sent = pair.a.encapsulate(second).network;
    expect(sent.map((d) => new DataView(d.buffer, d.byteOffset).getBigUint64(8, true))).toEqual([5n, 6n]);
    expect(hex(pair.b.decapsulate(sent[0]!).tunnel!.subarray(0, 64))).toBe(hex(first));
  });

  it.each([
    ['REJECT_AFTER_MESSAGES', REJECT_AFTER_MESSAGES],
    ['REJECT_AFTER_MESSAGES - 1', REJECT_AFTER_MESSAGES - 1n],
    ['2^64 - 1', (1n << 64n) - 1n],
    ['REKEY_AFTER_MESSAGES + 1', REKEY_AFTER_MESSAGES + 1n],
    ['2^62', 1n << 62n],
  ])('send counter at %s', (_what, counter) => {
    const pair = sessionPair(backend);
    pair.a.keypairs.current!.sendCounter = counter;
    const packet = randomPacket(prng, 80);
    expectDecline(pair.a, slotWith(packet, BIG_SLOT_SIZE), packet.length);
  });

  it('below the limits it seals: counter REKEY_AFTER_MESSAGES - 1 and 2^32 - 1 (the low word wraps)', () => {
    for (const counter of [REKEY_AFTER_MESSAGES - 1n, 0xffff_ffffn]) {
      const pair = sessionPair(backend);
      const keypair = pair.a.keypairs.current!;
      keypair.sendCounter = counter;
      const packet = randomPacket(prng, 80);
      const slot = slotWith(packet, BIG_SLOT_SIZE);
      const n = pair.a.sealTransport(slot, packet.length);
      expect(n).toBe(80 + TransportSlot.OVERHEAD);
      expect(slot.view.getBigUint64(8, true)).toBe(counter);
      expect(keypair.sendCounter).toBe(counter + 1n);
      expect(hex(pair.b.decapsulate(slot.bytes.slice(0, n)).tunnel)).toBe(hex(packet));
    }
  });

  it('the packet that takes the counter past REKEY_AFTER_MESSAGES starts a handshake on either path', () => {
    // encapsulate() sends counter REKEY_AFTER_MESSAGES and then, the counter now past the limit, an initiation
    // (wireguard-go's keepKeyFreshSending after the send). The fast path cannot send an initiation, so it must decline.
    const slow = sessionPair(backend);
    slow.a.keypairs.current!.sendCounter = REKEY_AFTER_MESSAGES;
    slow.clock.advance(10_000); // past the initiation rate limit of the handshake
    expect(slow.a.encapsulate(randomPacket(prng, 80)).network.map((d) => d[0])).toEqual([4, 1]);

    const fast = sessionPair(backend);
    fast.a.keypairs.current!.sendCounter = REKEY_AFTER_MESSAGES;
    fast.clock.advance(10_000);
    const packet = randomPacket(prng, 80);
    expectDecline(fast.a, slotWith(packet, BIG_SLOT_SIZE), packet.length);
  });

  it('keypair too old: initiator past REKEY_AFTER_TIME, anyone at REJECT_AFTER_TIME', () => {
    const pair = sessionPair(backend);
    const packet = randomPacket(prng, 48);
    pair.clock.advance(REKEY_AFTER_TIME_MS);
    expect(pair.a.sealTransport(slotWith(packet, BIG_SLOT_SIZE), 48)).toBeGreaterThan(0); // not yet past it
    pair.clock.advance(1);
    expectDecline(pair.a, slotWith(packet, BIG_SLOT_SIZE), 48); // a, the initiator, must rekey: encapsulate does
    expect(pair.b.sealTransport(slotWith(packet, BIG_SLOT_SIZE), 48)).toBeGreaterThan(0); // b, the responder, need not
    expect(pair.a.encapsulate(packet).network.map((d) => d[0])).toEqual([4, 1]);
    pair.clock.advance(REJECT_AFTER_TIME_MS - REKEY_AFTER_TIME_MS - 1);
    expectDecline(pair.b, slotWith(packet, BIG_SLOT_SIZE), 48);
  });

  it('the slot is too small for the padded packet (one byte short), but not when it fits exactly', () => {
    const pair = sessionPair(backend, 1420);
    for (const size of [1, 15, 17, 1419, 1420, 1421, 1500]) {
      const packet = randomPacket(prng, size);
      const padded = paddedLength(size, 1420);
      expectDecline(pair.a, slotWith(packet, padded + TransportSlot.OVERHEAD - 1), size);
      expect(pair.a.sealTransport(slotWith(packet, padded + TransportSlot.OVERHEAD), size)).toBe(padded + TransportSlot.OVERHEAD);
    }
  });

  it('an empty packet, or one larger than a datagram carries', () => {
    const pair = sessionPair(backend);
    expectDecline(pair.a, new TransportSlot(new Uint8Array(BIG_SLOT_SIZE)), 0);
    expectDecline(pair.a, new TransportSlot(new Uint8Array(MAX_MESSAGE_SIZE + 64)), MAX_PLAINTEXT_SIZE + 1);
    expect(pair.a.sealTransport(new TransportSlot(new Uint8Array(MAX_MESSAGE_SIZE + 64)), MAX_PLAINTEXT_SIZE)).toBe(MAX_MESSAGE_SIZE);
  });
});

// ---------------------------------------------------------------------------

type StreamKind = 'fresh' | 'replay' | 'tampered' | 'forged-counter' | 'unknown-index';

describe.each(backends)('%s: openTransport ≡ decapsulate', (_name, backend) => {
  it('a random stream (reordered, replayed, tampered) through both paths interleaved, against a decapsulate-only twin', () => {
    const prng = new Rng(0x0be7);
    const pair = sessionPair(backend);
    const receiver = pair.b;
    // The twin: same identity, the same session keys, only ever decapsulate().
    const twin = new Tunnel({
      identity: pair.idB,
      peerPublicKey: pair.idA.publicKey,
      clock: pair.clock,
      jitter: () => 0,
    });
    const k = receiver.keypairs.current!;
    const twinKeypair = new Keypair(Uint8Array.from(k.sendKey), Uint8Array.from(k.receiveKey), k.localIndex, k.remoteIndex, k.isInitiator, k.createdAt);
    twinKeypair.replay.check(0n); // the confirming keepalive completeHandshake delivered
    twin.keypairs.current = twinKeypair;
    twin.rxBytes = receiver.rxBytes;
    restoreTimers(twin, timerState(receiver));

    const packets: Uint8Array[] = [];
    const datagrams: Uint8Array[] = [];
    for (let i = 0; i < RECEIVE_STREAM_PACKETS; i++) {
      const packet = prng.int(20) === 0 ? new Uint8Array(0) : randomPacket(prng, 1 + prng.int(1400));
      packets.push(packet);
      datagrams.push(only(pair.a.encapsulate(packet).network));
    }
    // Reorder locally (within the replay window), then mix in replays and forgeries.
    const order = datagrams.map((_, i) => i);
    for (let i = 0; i < order.length; i++) {
      const j = Math.min(order.length - 1, i + prng.int(8));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const stream: { kind: StreamKind; id: number; datagram: Uint8Array }[] = [];
    const seen: number[] = [];
    for (const id of order) {
      stream.push({ kind: 'fresh', id, datagram: datagrams[id]! });
      seen.push(id);
      const roll = prng.int(100);
      const other = seen[prng.int(seen.length)]!;
      const copy = Uint8Array.from(datagrams[other]!);
      if (roll < 10) stream.push({ kind: 'replay', id: other, datagram: copy });
      else if (roll < 18) {
        copy[16 + prng.int(copy.length - 16)]! ^= 1 << prng.int(8); // ciphertext or tag
        stream.push({ kind: 'tampered', id: other, datagram: copy });
      } else if (roll < 21) {
        copy[8 + prng.int(8)]! ^= 1 << prng.int(8); // the counter: a different nonce, or past REJECT_AFTER_MESSAGES
        stream.push({ kind: 'forged-counter', id: other, datagram: copy });
      } else if (roll < 23) {
        copy[4 + prng.int(4)]! ^= 1 << prng.int(8);
        stream.push({ kind: 'unknown-index', id: other, datagram: copy });
      }
    }

    const slot = new TransportSlot(new Uint8Array(BIG_SLOT_SIZE));
    const deliveredTimes = new Array<number>(datagrams.length).fill(0);
    const notIntact: string[] = [];
    let fastDeliveries = 0;
    for (const [step, item] of stream.entries()) {
      if (prng.int(4) === 0) pair.clock.advance(prng.int(50));
      const what = `step ${step} (${item.kind} #${item.id})`;
      let got: Delivery;
      if (prng.int(2) === 0) {
        const result = receiveFast(receiver, slot, item.datagram);
        if (!result.intact) notIntact.push(what);
        if (item.kind !== 'fresh') expect(result.fast, `${what}: the fast path must not accept it`).toBe(false);
        else expect(result.fast, `${what}: the fast path must take fresh data`).toBe(true);
        if (result.fast) fastDeliveries++;
        got = result.delivery;
      } else {
        got = fromOutput(receiver.decapsulate(item.datagram));
      }
      const expected = fromOutput(twin.decapsulate(item.datagram));
      expect(got, what).toEqual(expected);
      expect({ rx: receiver.rxBytes, timers: timerState(receiver) }, what).toEqual({ rx: twin.rxBytes, timers: timerState(twin) });
      if (item.kind === 'replay') expect(expected.error).toBe('ReplayedCounter');
      if (item.kind === 'tampered') expect(expected.error).toBe('DecryptionFailed');
      if (item.kind === 'unknown-index') expect(expected.error).toBe('UnknownIndex');
      if (got.plaintext !== null) {
        expect(item.kind, `${what} delivered`).toBe('fresh');
        deliveredTimes[item.id]!++;
        const packet = packets[item.id]!;
        expect(got.plaintext.slice(0, packet.length * 2)).toBe(hex(packet));
      }
    }
    expect(deliveredTimes.every((n) => n === 1)).toBe(true);
    expect(fastDeliveries).toBeGreaterThan(RECEIVE_STREAM_PACKETS / 3);
    for (let counter = 0n; counter <= BigInt(datagrams.length) + 2n; counter++) {
      expect(receiver.keypairs.current!.replay.isFresh(counter)).toBe(twinKeypair.replay.isFresh(counter));
    }
    // The device hands a declined datagram to decapsulate() as it is: declining must leave it intact.
    expect({ changed: notIntact.length, examples: notIntact.slice(0, 3) }, `${backend.name}: openTransport changed refused datagrams`).toEqual({ changed: 0, examples: [] });
  });

  it('a transport datagram with non-zero reserved header bytes: dropped by both paths', () => {
    // messageType() requires bytes 1..3 to be zero (so do wireguard-go and the kernel: the type is a 32-bit word).
    const pair = sessionPair(backend);
    for (const reserved of [1, 2, 3]) {
      const datagram = only(pair.a.encapsulate(randomPacket(seededPrng(), 64)).network);
      datagram[reserved] = 1;
      const slot = new TransportSlot(new Uint8Array(BIG_SLOT_SIZE));
      slot.bytes.set(datagram);
      expect(pair.b.openTransport(slot, datagram.length), `reserved byte ${reserved}`).toBe(-1);
      expect(errorCode(pair.b.decapsulate(datagram))).toBe('InvalidMessage');
    }
  });

  it('the first datagram under a responder keypair still to confirm goes to decapsulate, which confirms it', () => {
    const clock = new ManualClock();
    const { a, b } = makePair({ clock, identityA: newIdentity(clock, backend), identityB: newIdentity(clock, backend) });
    const response = only(b.decapsulate(only(a.initiateHandshake().network)).network);
    const confirmation = only(a.decapsulate(response).network); // a keepalive under the new session
    const pending = b.keypairs.next!;
    expect(pending).not.toBeNull();
    const slot = new TransportSlot(new Uint8Array(BIG_SLOT_SIZE));
    slot.bytes.set(confirmation);
    const rx = b.rxBytes;
    expect(b.openTransport(slot, confirmation.length)).toBe(-1);
    expect(hex(slot.bytes.subarray(0, confirmation.length))).toBe(hex(confirmation));
    expect({ next: b.keypairs.next, current: b.keypairs.current, rx: b.rxBytes }).toEqual({ next: pending, current: null, rx });
    expect(errorCode(b.decapsulate(confirmation))).toBeNull();
    expect(b.keypairs.current).toBe(pending);
    expect(b.keypairs.next).toBeNull();
    // From now on the fast path takes it.
    const packet = randomPacket(seededPrng(), 100);
    const datagram = only(a.encapsulate(packet).network);
    slot.bytes.set(datagram);
    const n = b.openTransport(slot, datagram.length);
    expect(n).toBe(paddedLength(100));
    expect(hex(slot.plaintext(n).subarray(0, 100))).toBe(hex(packet));
  });

  it('an expired keypair, a rekey due on receive, an unknown index, a runt: -1 with the bytes intact; decapsulate says why', () => {
    const pair = sessionPair(backend);
    const slot = new TransportSlot(new Uint8Array(BIG_SLOT_SIZE));
    const refuse = (tunnel: Tunnel, datagram: Uint8Array): TunnelOutput => {
      slot.bytes.set(datagram);
      expect(tunnel.openTransport(slot, datagram.length)).toBe(-1);
      expect(hex(slot.bytes.subarray(0, datagram.length))).toBe(hex(datagram));
      return tunnel.decapsulate(datagram);
    };
    const fresh = only(pair.a.encapsulate(randomPacket(seededPrng(), 40)).network);
    const unknown = Uint8Array.from(fresh);
    unknown[4]! ^= 0xff;
    expect(errorCode(refuse(pair.b, unknown))).toBe('UnknownIndex');
    expect(errorCode(refuse(pair.b, fresh.subarray(0, MESSAGE_TRANSPORT_MIN_SIZE - 1)))).toBe('InvalidMessage');

    // a initiated the session: receiving under it past REKEY_ON_RECEIVE_AFTER starts a last-minute handshake.
    pair.clock.advance(REKEY_ON_RECEIVE_AFTER_MS + 1);
    const late = only(pair.b.encapsulate(randomPacket(seededPrng(), 40)).network);
    const out = refuse(pair.a, late);
    expect(errorCode(out)).toBeNull();
    expect(out.tunnel).not.toBeNull();
    expect(out.network.map((d) => d[0])).toEqual([1]);

    pair.clock.advance(REJECT_AFTER_TIME_MS - REKEY_ON_RECEIVE_AFTER_MS);
    expect(errorCode(refuse(pair.b, fresh))).toBe('ExpiredKeypair');
  });
});

// ---------------------------------------------------------------------------

describe('the receive rules hold alike on both paths, one millisecond either side of each limit', () => {
  const backend = availableBackends[0]!;

  /**
   * The receiver's outcome for a datagram its peer sealed at time 0 and it
   * receives `age` ms later, through the fast path (decapsulate when it
   * declines, as the device does) or through decapsulate alone. A initiated
   * the session, so the rekey-on-receive rule applies to A, not to B.
   */
  function outcome(receiverName: 'a' | 'b', age: number, fast: boolean): Outcome {
    const pair = sessionPair(backend);
    const [receiver, sender] = receiverName === 'a' ? [pair.a, pair.b] : [pair.b, pair.a];
    const datagram = only(sender.encapsulate(randomPacket(seededPrng(), 60)).network);
    pair.clock.advance(age);
    const rxBefore = receiver.rxBytes;
    if (fast) {
      const slot = new TransportSlot(new Uint8Array(BIG_SLOT_SIZE));
      slot.bytes.set(datagram);
      if (receiver.openTransport(slot, datagram.length) >= 0) {
        return { fastTook: true, delivered: true, error: null, sent: [], rx: receiver.rxBytes - rxBefore, timers: timerState(receiver) };
      }
    }
    const out = receiver.decapsulate(datagram);
    return { fastTook: false, delivered: out.tunnel !== null, error: errorCode(out), sent: out.network.map((d) => d[0]!), rx: receiver.rxBytes - rxBefore, timers: timerState(receiver) };
  }

  interface Outcome {
    fastTook: boolean;
    delivered: boolean;
    error: string | null;
    /** Message types the receiver sent in answer. */
    sent: number[];
    rx: number;
    timers: TimerState;
  }
  const withoutPath = ({ fastTook: _, ...rest }: Outcome) => rest;

  it.each([
    // Rekey on receive once the keys are older than the limit; refuse once they are as old as it.
    ['REKEY_ON_RECEIVE_AFTER (the initiator receives)', 'a', REKEY_ON_RECEIVE_AFTER_MS + 1, { sent: [1], error: null }],
    ['REJECT_AFTER_TIME (the responder receives)', 'b', REJECT_AFTER_TIME_MS, { sent: [], error: 'ExpiredKeypair' }],
  ] as const)('%s', (_name, receiver, limit, pastLimit) => {
    for (const age of [limit - 1, limit, limit + 1]) {
      const fast = outcome(receiver, age, true);
      const reference = outcome(receiver, age, false);
      expect(withoutPath(fast), `age ${age}`).toEqual(withoutPath(reference));
      // The fast path takes the datagram exactly where the reference path has nothing more to do than deliver it.
      expect(fast.fastTook, `age ${age}`).toBe(reference.delivered && reference.sent.length === 0);
    }
    // Below the first age the rule acts on, the fast path delivers; from it on, the reference path starts a handshake or refuses.
    expect(outcome(receiver, limit - 1, true).fastTook).toBe(true);
    for (const age of [limit, limit + 1]) {
      const past = outcome(receiver, age, false);
      expect({ age, sent: past.sent, error: past.error }).toEqual({ age, ...pastLimit });
    }
  });
});

describe('Keypair send counter in two 32-bit words', () => {
  const newKeypair = () => new Keypair(new Uint8Array(32), new Uint8Array(32), 1, 2, true, 0);
  const VALUES = [0n, 1n, 0xffff_ffffn, 0x1_0000_0000n, 0x1_0000_0001n, 1n << 60n, (1n << 64n) - (1n << 13n) - 2n, (1n << 64n) - 1n];

  it.each(VALUES)('sendCounter round trip at %s', (value) => {
    const keypair = newKeypair();
    keypair.sendCounter = value;
    expect(keypair.sendCounter).toBe(value);
  });

  it('takeSendCounter writes the little-endian counter into datagram[8, 16) and sendNonce[4, 12), then increments (carrying across 2^32)', () => {
    for (const start of [0n, 0xffff_fffen, 0xffff_ffffn, 0x1_ffff_ffffn, (1n << 60n) - 1n, (1n << 64n) - (1n << 13n) - 3n]) {
      const keypair = newKeypair();
      keypair.sendCounter = start;
      for (let i = 0n; i < 3n; i++) {
        const datagram = new Uint8Array(32).fill(0xcc);
        keypair.takeSendCounter(datagram);
        const expected = new Uint8Array(8);
        new DataView(expected.buffer).setBigUint64(0, start + i, true);
        expect(hex(datagram.subarray(8, 16))).toBe(hex(expected));
        expect(`${hex(datagram.subarray(0, 8))}${hex(datagram.subarray(16))}`).toBe('cc'.repeat(24)); // nothing else written
        expect(hex(keypair.sendNonce)).toBe(`00000000${hex(expected)}`);
        expect(keypair.sendCounter).toBe(start + i + 1n);
      }
    }
  });

  it('sendExhausted and sendRekeyDue equal the BigInt comparisons around both limits and word boundaries', () => {
    const keypair = newKeypair();
    const probes: bigint[] = [];
    for (const center of [0n, 0xffff_ffffn, 0x1_0000_0000n, REKEY_AFTER_MESSAGES, REJECT_AFTER_MESSAGES, (1n << 64n) - 1n]) {
      for (let d = -3n; d <= 3n; d++) if (center + d >= 0n && center + d < 1n << 64n) probes.push(center + d);
    }
    // Same high word as a limit, low word above/below; and random 64-bit values.
    probes.push(REKEY_AFTER_MESSAGES | 0xffff_ffffn, REJECT_AFTER_MESSAGES & ~0xffff_ffffn, REJECT_AFTER_MESSAGES - 0x1_0000_0000n);
    const random = new Rng(0xc0de);
    for (let i = 0; i < 2000; i++) probes.push((BigInt(random.u32()) << 32n) | BigInt(random.u32()), (1n << 60n) + BigInt(random.u32()));
    for (const value of probes) {
      keypair.sendCounter = value;
      expect({ value, exhausted: keypair.sendExhausted, rekey: keypair.sendRekeyDue }).toEqual({
        value,
        exhausted: value >= REJECT_AFTER_MESSAGES,
        rekey: value > REKEY_AFTER_MESSAGES,
      });
    }
  });
});

describe('Keypairs.byReceiverField (the receive fast path) ≡ byLocalIndex', () => {
  it('indices at 0, around 2^30, 2^31 and 2^32 - 1, and each of them with one bit flipped', () => {
    const edges = [0, 1, 2 ** 30 - 1, 2 ** 30, 2 ** 31 - 1, 2 ** 31, 2 ** 31 + 1, 2 ** 32 - 2, 2 ** 32 - 1];
    const random = new Rng(0x1dec);
    for (let run = 0; run < 20; run++) {
      const keypairs = new Keypairs();
      const pick = () => (run < 9 ? edges[(run + random.int(3)) % edges.length]! : random.u32());
      const made = [true, false].map((isInitiator) => new Keypair(new Uint8Array(32), new Uint8Array(32), pick(), 7, isInitiator, 0));
      keypairs.install(made[0]!);
      keypairs.install(made[1]!); // a responder's: in next
      if (run % 2 === 0) keypairs.install(new Keypair(new Uint8Array(32), new Uint8Array(32), pick() ^ 0x100, 7, true, 0));
      const field = new DataView(new ArrayBuffer(12));
      const probes = [...keypairs.all().map((k) => k.localIndex), ...edges];
      for (const probe of probes) {
        for (const bit of [-1, 0, 7, 30, 31]) {
          const index = bit < 0 ? probe : (probe ^ (1 << bit)) >>> 0;
          field.setUint32(4, index, true);
          expect(keypairs.byReceiverField(field, 4), `index ${index}`).toBe(keypairs.byLocalIndex(index));
        }
      }
    }
  });
});

describe('ReplayWindow.isFresh', () => {
  /** A copy of a window (its private ring and last counter) to ask check() without touching the original. */
  function cloneWindow(window: ReplayWindow): ReplayWindow {
    const copy = new ReplayWindow();
    const from = window as unknown as { ring: Uint16Array; lastLow: number; lastHigh: number };
    const to = copy as unknown as { ring: Uint16Array; lastLow: number; lastHigh: number };
    to.ring.set(from.ring);
    to.lastLow = from.lastLow;
    to.lastHigh = from.lastHigh;
    return copy;
  }

  it('answers what check() would, and changes nothing (random counter sequences, against a check()-only copy)', () => {
    const random = new Rng(0xf7e5);
    for (let run = 0; run < 20; run++) {
      const asked = new ReplayWindow();
      const reference = new ReplayWindow();
      let last = run % 2 === 0 ? 0n : REJECT_AFTER_MESSAGES - 20_000n;
      const recent: bigint[] = [];
      for (let step = 0; step < 1500; step++) {
        const roll = random.int(100);
        let counter: bigint;
        if (roll < 45) counter = last + BigInt(1 + random.int(3));
        else if (roll < 65) counter = last - BigInt(random.int(9000));
        else if (roll < 75) counter = last + BigInt(random.int(20_000));
        else if (roll < 88 && recent.length > 0) counter = recent[random.int(recent.length)]!;
        else if (roll < 93) counter = last + (1n << BigInt(20 + random.int(40)));
        else counter = REJECT_AFTER_MESSAGES - BigInt(random.int(4)) + BigInt(random.int(3));
        if (counter < 0n) counter = 0n;
        const limit = random.int(10) === 0 ? counter + BigInt(random.int(3)) - 1n : REJECT_AFTER_MESSAGES;
        // Probes first: isFresh on counters that are not then checked.
        for (let p = 0; p < 2; p++) {
          const probe = last - BigInt(random.int(9000)) + BigInt(random.int(100));
          expect(asked.isFresh(probe)).toBe(cloneWindow(reference).check(probe));
        }
        const fresh = asked.isFresh(counter, limit);
        expect(asked.isFresh(counter, limit)).toBe(fresh);
        const accepted = reference.check(counter, limit);
        expect({ step, counter, fresh }).toEqual({ step, counter, fresh: accepted });
        expect(asked.check(counter, limit)).toBe(accepted);
        if (accepted && counter > last) last = counter;
        recent.push(counter);
        if (recent.length > 50) recent.shift();
      }
    }
  });
});

// ---------------------------------------------------------------------------

describe('sealTransport and openTransport allocate nothing per packet (sodium backend)', () => {
  /**
   * Bytes allocated on the V8 heap while `work` runs. Node 20 has no
   * total_allocated_bytes in v8.getHeapStatistics(), so (as bench/alloc.ts
   * does) allocation = used heap after − used heap before + what every GC
   * in the window freed (v8.GCProfiler), starting from a collected heap.
   */
  function allocatedBytes(work: () => void): { bytes: number; gcs: number } {
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const profiler = new v8.GCProfiler();
    profiler.start();
    const before = v8.getHeapStatistics().used_heap_size;
    work();
    const after = v8.getHeapStatistics().used_heap_size;
    const { statistics } = profiler.stop();
    let freed = 0;
    for (const event of statistics) freed += event.beforeGC.heapStatistics.usedHeapSize - event.afterGC.heapStatistics.usedHeapSize;
    return { bytes: after - before + freed, gcs: statistics.length };
  }

  /** Two windows, the smaller counts: the first may include V8 compiling the loop (a one-off ~200 KB of code objects). */
  function leastOfTwoWindows(measure: () => { bytes: number; gcs: number }): { bytes: number; gcs: number } {
    const first = measure();
    const second = measure();
    return first.bytes <= second.bytes ? first : second;
  }

  const PACKETS = 200_000;
  const WARMUP = 50_000;
  /**
   * Bytes per packet allowed. The smallest heap object V8 can allocate per
   * packet (a boxed number) is 12-16 bytes, a typed-array view ~100, so an
   * average under 1 byte/packet over 200,000 packets means no per-packet
   * allocation; what remains is one-off (the profiler: ~16 KB a window).
   */
  const MAX_BYTES_PER_PACKET = 1;

  /** Hands out only indices of 2^31 and more: no small integers to V8, so a path that boxes the receiver index shows it. */
  class HighIndexTable extends IndexTable<Tunnel> {
    override allocate(owner: Tunnel): number {
      for (;;) {
        const index = super.allocate(owner);
        if (index >= 2 ** 31) return index;
        this.release(index);
      }
    }
  }

  /** Datagrams per decrypt window: each needs its own counter, so they are sealed beforehand (unmeasured) into one buffer. */
  const DECRYPT_PACKETS = 100_000;
  /** Small packets keep that buffer small (16 MB); what the path allocates does not depend on the size. */
  const DECRYPT_PACKET_SIZE = 128;

  it(`${PACKETS} packets of 1420 bytes sealed in one slot and ${DECRYPT_PACKETS} datagrams opened in one slot: < ${MAX_BYTES_PER_PACKET} byte per packet each; encapsulate and decapsulate, the controls, allocate`, () => {
    expect(sodiumBackend).not.toBeNull();
    const clock = new ManualClock();
    const identities = { identityA: newIdentity(clock, sodiumBackend!), identityB: newIdentity(clock, sodiumBackend!) };
    const pair = makePair({ clock, mtu: 1420, ...identities, indexTableA: new HighIndexTable(), indexTableB: new HighIndexTable() });
    completeHandshake(pair.a, pair.b);
    expect(pair.b.keypairs.current!.localIndex).toBeGreaterThanOrEqual(2 ** 31);
    const slot = new TransportSlot(new Uint8Array(BIG_SLOT_SIZE));
    slot.packetArea.set(randomPacket(seededPrng(), 1420));
    const seal = (count: number) => {
      for (let i = 0; i < count; i++) if (pair.a.sealTransport(slot, 1420) === 0) throw new Error('sealTransport declined');
    };
    seal(WARMUP);
    const fast = leastOfTwoWindows(() => allocatedBytes(() => seal(PACKETS)));
    const packet = slot.packetArea.slice(0, 1420);
    const control = allocatedBytes(() => {
      for (let i = 0; i < 20_000; i++) pair.a.encapsulate(packet);
    });

    // Decrypt: b opens a's datagrams, each copied into one reused slot as the UDP ring would hand it over.
    const sendSlot = new TransportSlot(new Uint8Array(BIG_SLOT_SIZE));
    sendSlot.packetArea.set(randomPacket(seededPrng(), DECRYPT_PACKET_SIZE));
    const datagramSize = DECRYPT_PACKET_SIZE + TransportSlot.OVERHEAD;
    const datagrams = new Uint8Array(DECRYPT_PACKETS * datagramSize);
    const sealDatagrams = () => {
      for (let i = 0; i < DECRYPT_PACKETS; i++) {
        if (pair.a.sealTransport(sendSlot, DECRYPT_PACKET_SIZE) !== datagramSize) throw new Error('sealTransport declined');
        datagrams.set(sendSlot.bytes.subarray(0, datagramSize), i * datagramSize);
      }
    };
    // Views made once, outside the measured windows (a subarray per packet would be the test's own allocation).
    const views = Array.from({ length: DECRYPT_PACKETS }, (_, i) => datagrams.subarray(i * datagramSize, (i + 1) * datagramSize));
    const receiveSlot = new TransportSlot(new Uint8Array(BIG_SLOT_SIZE));
    const open = () => {
      for (let i = 0; i < DECRYPT_PACKETS; i++) {
        receiveSlot.bytes.set(views[i]!);
        if (pair.b.openTransport(receiveSlot, datagramSize) !== DECRYPT_PACKET_SIZE) throw new Error(`openTransport refused datagram ${i}`);
      }
    };
    // Warm-up, two passes as the seal side has its own: under CPU contention the optimizing compiler's
    // one-off code objects (~200 KB) landed in both measured windows after a single pass (2.2 B/packet once in CI).
    for (let pass = 0; pass < 2; pass++) {
      sealDatagrams();
      open();
    }
    const opened = leastOfTwoWindows(() => {
      sealDatagrams();
      return allocatedBytes(open);
    });
    sealDatagrams();
    const decapsulateControl = allocatedBytes(() => {
      for (let i = 0; i < 20_000; i++) pair.b.decapsulate(views[i]!);
    });

    const perPacket = {
      fast: fast.bytes / PACKETS,
      control: control.bytes / 20_000,
      open: opened.bytes / DECRYPT_PACKETS,
      openControl: decapsulateControl.bytes / 20_000,
    };
    console.log(
      `allocation: sealTransport ${perPacket.fast.toFixed(4)} B/packet (${fast.bytes} B, ${fast.gcs} GCs in ${PACKETS}); encapsulate ${perPacket.control.toFixed(0)} B/packet; ` +
        `openTransport ${perPacket.open.toFixed(4)} B/packet (${opened.bytes} B, ${opened.gcs} GCs in ${DECRYPT_PACKETS}); decapsulate ${perPacket.openControl.toFixed(0)} B/packet`,
    );
    expect(perPacket.control).toBeGreaterThan(100); // the method sees allocation where there is some
    expect(perPacket.openControl).toBeGreaterThan(100);
    expect(perPacket.fast).toBeLessThan(MAX_BYTES_PER_PACKET);
    expect(perPacket.open).toBeLessThan(MAX_BYTES_PER_PACKET);
  });

  it(`a ping's pattern, a request sealed and opened and its reply sealed and opened, each side's timers set and cleared on every packet: < ${MAX_BYTES_PER_PACKET} byte per packet`, () => {
    const clock = new ManualClock();
    const identities = { identityA: newIdentity(clock, sodiumBackend!), identityB: newIdentity(clock, sodiumBackend!) };
    const pair = makePair({ clock, mtu: 1420, ...identities });
    completeHandshake(pair.a, pair.b);
    const SIZE = 96;
    const datagramSize = SIZE + TransportSlot.OVERHEAD;
    const sendSlot = new TransportSlot(new Uint8Array(BIG_SLOT_SIZE));
    const receiveSlot = new TransportSlot(new Uint8Array(BIG_SLOT_SIZE));
    sendSlot.packetArea.set(randomPacket(seededPrng(), SIZE));
    const sealed = sendSlot.bytes.subarray(0, datagramSize);
    const cross = (from: Tunnel, to: Tunnel) => {
      if (from.sealTransport(sendSlot, SIZE) !== datagramSize) throw new Error('sealTransport declined');
      receiveSlot.bytes.set(sealed);
      if (to.openTransport(receiveSlot, datagramSize) !== SIZE) throw new Error('openTransport refused the datagram');
    };
    const pings = (count: number) => {
      for (let i = 0; i < count; i++) {
        cross(pair.a, pair.b);
        cross(pair.b, pair.a);
      }
    };
    // Each ping moves the timers both ways: a's new-handshake and b's send-keepalive are set, then cleared by the reply.
    pings(1);
    expect(pair.a.timers.isPending('new-handshake')).toBe(false);
    expect(pair.b.timers.isPending('send-keepalive')).toBe(false);
    cross(pair.a, pair.b);
    expect(pair.a.timers.isPending('new-handshake')).toBe(true);
    expect(pair.b.timers.isPending('send-keepalive')).toBe(true);
    cross(pair.b, pair.a);
    const PINGS = 50_000;
    pings(2 * PINGS);
    const least = leastOfTwoWindows(() => allocatedBytes(() => pings(PINGS)));
    const perPacket = least.bytes / (4 * PINGS);
    console.log(`allocation, a ping's pattern: ${perPacket.toFixed(4)} B/packet (${least.bytes} B, ${least.gcs} GCs in ${4 * PINGS} seals and opens)`);
    expect(perPacket).toBeLessThan(MAX_BYTES_PER_PACKET);
  });

  it(`a datagram's receiver index of 2^31 and more finds its tunnel in the shared IndexTable: the same owner read signed or unsigned, < ${MAX_BYTES_PER_PACKET} byte per lookup`, () => {
    const clock = new ManualClock();
    const identities = { identityA: newIdentity(clock, sodiumBackend!), identityB: newIdentity(clock, sodiumBackend!) };
    const pair = makePair({ clock, mtu: 1420, ...identities, indexTableA: new HighIndexTable(), indexTableB: new HighIndexTable() });
    completeHandshake(pair.a, pair.b);
    const index = pair.b.keypairs.current!.localIndex;
    expect(index).toBeGreaterThanOrEqual(2 ** 31);
    const slot = new TransportSlot(new Uint8Array(BIG_SLOT_SIZE));
    slot.packetArea.set(randomPacket(seededPrng(), 64));
    expect(pair.a.sealTransport(slot, 64)).toBeGreaterThan(0);
    const table = pair.b.indexTable;
    expect(slot.view.getUint32(4, true)).toBe(index);
    expect(table.lookupReceiverField(slot.view, 4)).toBe(pair.b);
    expect(table.lookup(index)).toBe(pair.b);
    expect(table.lookup(index | 0)).toBe(pair.b);
    expect(table.lookup((index + 1) >>> 0)).toBeUndefined();

    const lookUp = (count: number) => {
      for (let i = 0; i < count; i++) if (table.lookupReceiverField(slot.view, 4) !== pair.b) throw new Error('lookup missed');
    };
    lookUp(WARMUP);
    const best = leastOfTwoWindows(() => allocatedBytes(() => lookUp(PACKETS)));
    console.log(`allocation: IndexTable.lookupReceiverField ${(best.bytes / PACKETS).toFixed(4)} B/lookup (${best.bytes} B, ${best.gcs} GCs in ${PACKETS})`);
    expect(best.bytes / PACKETS).toBeLessThan(MAX_BYTES_PER_PACKET);

    // Released by its unsigned number, the index is gone in every reading.
    table.release(index);
    expect(table.lookupReceiverField(slot.view, 4)).toBeUndefined();
    expect(table.lookup(index)).toBeUndefined();
  });
});
