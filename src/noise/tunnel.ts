/**
 * A Tunnel is one peer's WireGuard state machine, free of I/O (boringtun's
 * Tunn is the model). The device feeds it three things and acts on what
 * comes back:
 *
 *   encapsulate(ipPacket)     an IP packet from the TUN device for this peer
 *   decapsulate(datagram)     a UDP datagram routed to this peer
 *   updateTimers()            call at nextDeadline() (or periodically)
 *
 * Each returns a TunnelOutput: datagrams for the peer's endpoint, a cookie
 * reply for the datagram's source, an IP packet for the TUN device, and the
 * reason a datagram was dropped. Nothing is ever thrown at the caller for a
 * bad datagram, and a datagram that does not authenticate changes no state.
 *
 * The rules for when to handshake, rekey, send keepalives and wipe keys are
 * wireguard-go's (send.go, receive.go, timers.go); see timers.ts.
 */
import { constantTimeEqual, wipe } from './bytes.js';
import { systemClock, type Clock } from './clock.js';
import {
  KEY_SIZE,
  MESSAGE_TRANSPORT_TYPE,
  MAX_MESSAGE_SIZE,
  MAX_STAGED_PACKETS,
  MESSAGE_TRANSPORT_MIN_SIZE,
  MAX_TIMER_HANDSHAKES,
  PADDING_MULTIPLE,
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_TIME_MS,
  REKEY_ON_RECEIVE_AFTER_MS,
  REKEY_TIMEOUT_MS,
  ZERO_KEY_MATERIAL_AFTER_MS,
} from './constants.js';
import { CookieGenerator } from './cookie.js';
import { NoiseError } from './errors.js';
import { Handshake, readInitiation, wipeInitiationStart, type InitiationStart } from './handshake.js';
import type { StaticIdentity } from './identity.js';
import { IndexTable } from './index-table.js';
import { Keypair, Keypairs } from './keypair.js';
import {
  messageType,
  parseCookieReply,
  parseInitiation,
  parseResponse,
  parseTransportHeader,
  serializeTransport,
  type HandshakeInitiation,
} from './messages.js';
import { StagingBudget } from './staging-budget.js';
import { PeerTimers, type TimerName } from './timers.js';
import { TransportSlot } from './transport-slot.js';

export interface TunnelOptions {
  identity: StaticIdentity;
  peerPublicKey: Uint8Array;
  /** 32 bytes; all zeros (the default) means no pre-shared key, as in WireGuard. */
  presharedKey?: Uint8Array;
  /** Seconds; 0 or absent disables persistent keepalive. */
  persistentKeepaliveSeconds?: number;
  /** Shared by all tunnels of one device. A tunnel gets a private table when absent. */
  indexTable?: IndexTable<Tunnel>;
  clock?: Clock;
  /** The TUN MTU: padding never takes a plaintext past it. Absent: pad to 16 without a cap. */
  mtu?: number;
  /** Milliseconds of jitter added to REKEY_TIMEOUT; random in [0, 334] by default. */
  jitter?: () => number;
  /** Shared by all tunnels of one device: caps the bytes they stage together. A tunnel gets its own when absent. */
  stagingBudget?: StagingBudget;
}

export interface DecapsulateOptions {
  /** The sender's address as bytes; MAC2 cookies are bound to it. */
  source?: Uint8Array;
  /** The device is under load: handshakes must carry a valid MAC2, else they get a cookie reply. */
  underLoad?: boolean;
}

export interface TunnelOutput {
  /** Datagrams for the peer's endpoint, in order. */
  network: Uint8Array[];
  /** A cookie reply for the source of the datagram being decapsulated. */
  cookieReply: Uint8Array | null;
  /** A decrypted IP packet for the TUN device (never a keepalive). */
  tunnel: Uint8Array | null;
  /** The datagram authenticated: the device should move the peer's endpoint to its source. */
  authenticated: boolean;
  /** Why the datagram was dropped, when it was. */
  error: NoiseError | null;
}

function emptyOutput(): TunnelOutput {
  return { network: [], cookieReply: null, tunnel: null, authenticated: false, error: null };
}

function failed(error: NoiseError): TunnelOutput {
  return { ...emptyOutput(), error };
}

const ZERO_KEY = new Uint8Array(KEY_SIZE);
/** The largest plaintext whose transport message still fits a datagram. */
const MAX_PLAINTEXT_SIZE = MAX_MESSAGE_SIZE - MESSAGE_TRANSPORT_MIN_SIZE;

/** openTransport(): the ordinary path (decapsulate) must take this datagram; its bytes are intact. */
export const OPEN_DECLINED = -1;
/** openTransport(): the datagram did not authenticate; drop it. */
export const OPEN_FAILED = -2;
/** finishOpenTransport(): the counter was taken meanwhile (a replay within one batch); drop it. */
export const OPEN_REPLAYED = -3;

export class Tunnel {
  readonly identity: StaticIdentity;
  readonly peerPublicKey: Uint8Array;
  readonly handshake: Handshake;
  readonly keypairs = new Keypairs();
  readonly timers: PeerTimers;
  readonly indexTable: IndexTable<Tunnel>;
  /** Padding never takes a plaintext past this; 0 means no cap. */
  mtu: number;
  /** Wall-clock ms of the last completed handshake, 0 when none. */
  lastHandshakeWallTime = 0;
  /** Bytes of authenticated datagrams received from, and datagrams sent to, the peer. */
  rxBytes = 0;
  txBytes = 0;

  private readonly clock: Clock;
  private readonly cookies: CookieGenerator;
  private readonly staged: Uint8Array[] = [];
  private readonly stagingBudget: StagingBudget;
  /** True while handshake.localIndex is ours in the index table but no keypair owns it yet. */
  private handshakeIndexLive = false;

  constructor(options: TunnelOptions) {
    this.identity = options.identity;
    this.clock = options.clock ?? systemClock;
    if (options.peerPublicKey.length !== KEY_SIZE) {
      throw new NoiseError('InvalidKey', `peer public key must be ${KEY_SIZE} bytes, got ${options.peerPublicKey.length}`);
    }
    this.peerPublicKey = new Uint8Array(options.peerPublicKey);
    const psk = options.presharedKey ?? ZERO_KEY;
    if (psk.length !== KEY_SIZE) throw new NoiseError('InvalidKey', `pre-shared key must be ${KEY_SIZE} bytes, got ${psk.length}`);
    this.handshake = new Handshake(this.identity, this.peerPublicKey, new Uint8Array(psk), this.clock);
    this.cookies = new CookieGenerator(this.peerPublicKey, this.identity.primitives, this.clock);
    this.timers = new PeerTimers(options.jitter);
    this.timers.persistentKeepaliveMs = (options.persistentKeepaliveSeconds ?? 0) * 1000;
    this.indexTable = options.indexTable ?? new IndexTable<Tunnel>();
    this.mtu = options.mtu ?? 0;
    this.stagingBudget = options.stagingBudget ?? new StagingBudget();
  }

  set presharedKey(key: Uint8Array) {
    if (key.length !== KEY_SIZE) throw new NoiseError('InvalidKey', `pre-shared key must be ${KEY_SIZE} bytes, got ${key.length}`);
    wipe(this.handshake.presharedKey);
    this.handshake.presharedKey = new Uint8Array(key);
  }

  set persistentKeepaliveSeconds(seconds: number) {
    this.timers.persistentKeepaliveMs = seconds * 1000;
  }

  get persistentKeepaliveSeconds(): number {
    return this.timers.persistentKeepaliveMs / 1000;
  }

  /** Packets waiting for a session. */
  get stagedCount(): number {
    return this.staged.length;
  }

  /** When updateTimers() next has work to do (Clock.now() units), or null. */
  nextDeadline(): number | null {
    return this.timers.nextDeadline();
  }

  /** Send an IP packet to the peer, starting a handshake first if there is no usable session. */
  encapsulate(packet: Uint8Array): TunnelOutput {
    if (packet.length > MAX_PLAINTEXT_SIZE) {
      return failed(new NoiseError('InvalidMessage', `packet of ${packet.length} bytes is larger than ${MAX_PLAINTEXT_SIZE}, the most one datagram carries`));
    }
    const out = emptyOutput();
    const copy = new Uint8Array(packet);
    if (!this.stage(copy)) {
      // The device's staging budget is full: a packet that need not wait goes out now; one that must wait is dropped.
      const now = this.clock.now();
      const keypair = this.staged.length === 0 ? this.sendableKeypair(now) : null;
      if (keypair !== null) {
        this.sendTransport(out, keypair, copy, now);
        this.keepKeyFreshSending(out, keypair, now);
        return out;
      }
      this.stagingBudget.refused++;
      out.error = new NoiseError('StagingFull', `the ${this.stagingBudget.limitBytes} bytes for packets waiting for handshakes are taken; packet dropped`);
    }
    this.sendStaged(out);
    return out;
  }

  /**
   * The data fast path, allocating nothing: the IP packet sits in
   * slot.bytes[16, 16 + length); pad it, seal it in place for the current
   * session and write the transport header in front. Returns the datagram's
   * length (it is slot.bytes[0, returned)), or 0 when encapsulate() must take
   * the packet instead: no usable session, packets already waiting, a rekey
   * due, or no room in the slot. Same bytes on the wire as encapsulate().
   */
  sealTransport(slot: TransportSlot, length: number): number {
    const now = this.clock.now();
    const keypair = this.prepareTransport(slot, length, now);
    if (keypair === null) return 0;
    const padded = paddedLength(length, this.mtu);
    this.identity.primitives.aeadSealInPlace(keypair.sendKey, keypair.sendNonce, slot.sealed(padded), slot.plaintext(padded));
    const datagramLength = padded + TransportSlot.OVERHEAD;
    this.transportSent(datagramLength, length, now);
    return datagramLength;
  }

  /**
   * The receive fast path: open the transport message in slot.bytes[0,
   * length) in place. Returns the plaintext's length (the plaintext is then
   * slot.plaintext(n); 0 is a keepalive); OPEN_DECLINED when decapsulate()
   * must take the datagram instead — an unknown index, a keypair still to
   * confirm, a rekey to start, a replayed counter (nothing has changed then
   * and the bytes are intact); or OPEN_FAILED when it did not authenticate
   * (drop it: the AEAD may have wiped the bytes).
   */
  openTransport(slot: TransportSlot, length: number): number {
    const now = this.clock.now();
    const keypair = this.openableKeypair(slot, length, now);
    if (keypair === null) return OPEN_DECLINED;
    const plaintextLength = length - TransportSlot.OVERHEAD;
    const nonce = keypair.receiveNonce;
    const bytes = slot.bytes;
    for (let i = 0; i < 8; i++) nonce[4 + i] = bytes[8 + i]!;
    if (!this.identity.primitives.aeadOpenInPlace(keypair.receiveKey, nonce, slot.sealed(plaintextLength), slot.plaintext(plaintextLength))) return OPEN_FAILED;
    keypair.replay.checkWords(slot.view.getUint32(8, true), slot.view.getUint32(12, true));
    this.transportReceived(length, plaintextLength, now);
    return plaintextLength;
  }

  /**
   * sealTransport without the AEAD, for a caller that seals elsewhere (a
   * worker thread) and keeps packets in order itself: same declines, the
   * same padding, header and counter (the nonce is 4 zero bytes and
   * slot.bytes[8, 16)), the same accounting; the send key is copied into
   * `keyOut`. Returns the padded plaintext's length (seal
   * slot.plaintext(n) into slot.sealed(n); the datagram is n + OVERHEAD
   * bytes), or 0 when encapsulate() must take the packet.
   */
  beginSealTransport(slot: TransportSlot, length: number, keyOut: Uint8Array): number {
    const now = this.clock.now();
    const keypair = this.prepareTransport(slot, length, now);
    if (keypair === null) return 0;
    keyOut.set(keypair.sendKey);
    const padded = paddedLength(length, this.mtu);
    this.transportSent(padded + TransportSlot.OVERHEAD, length, now);
    return padded;
  }

  /**
   * openTransport without the AEAD, for a caller that opens elsewhere: the
   * same declines (OPEN_DECLINED, bytes intact), the replay window only
   * asked, the receive key copied into `keyOut`. Returns the plaintext's
   * length: open slot.sealed(n) into slot.plaintext(n) with the nonce 4 zero
   * bytes and slot.bytes[8, 16), then call finishOpenTransport — in the
   * order the datagrams arrived.
   */
  beginOpenTransport(slot: TransportSlot, length: number, keyOut: Uint8Array): number {
    const keypair = this.openableKeypair(slot, length, this.clock.now());
    if (keypair === null) return OPEN_DECLINED;
    keyOut.set(keypair.receiveKey);
    return length - TransportSlot.OVERHEAD;
  }

  /**
   * The datagram beginOpenTransport accepted authenticated: record its
   * counter in the replay window and account for it. Returns the plaintext's
   * length, or OPEN_REPLAYED when its counter came in meanwhile (the same
   * counter twice in one batch) — or OPEN_FAILED when its session is gone —
   * and the plaintext must be dropped.
   */
  finishOpenTransport(slot: TransportSlot, length: number): number {
    const keypair = this.keypairs.byReceiverField(slot.view, 4);
    if (keypair === null) return OPEN_FAILED;
    if (!keypair.replay.checkWords(slot.view.getUint32(8, true), slot.view.getUint32(12, true))) return OPEN_REPLAYED;
    const plaintextLength = length - TransportSlot.OVERHEAD;
    this.transportReceived(length, plaintextLength, this.clock.now());
    return plaintextLength;
  }

  /**
   * Both seal fast paths: the keypair to seal under, with the packet padded
   * and the header and counter written in front of it; null when
   * encapsulate() must take the packet (packets already waiting, no usable
   * session, a rekey due — the fast path sends no initiation — or no room).
   */
  private prepareTransport(slot: TransportSlot, length: number, now: number): Keypair | null {
    if (this.staged.length > 0 || length === 0 || length > MAX_PLAINTEXT_SIZE) return null;
    const keypair = this.sendableKeypair(now);
    if (keypair === null || this.rekeyDueSending(keypair, now, true)) return null;
    const padded = paddedLength(length, this.mtu);
    if (padded > slot.capacity) return null;
    const bytes = slot.bytes;
    const start = TransportSlot.PACKET_OFFSET;
    bytes.fill(0, start + length, start + padded);
    bytes[0] = MESSAGE_TRANSPORT_TYPE;
    bytes[1] = bytes[2] = bytes[3] = 0;
    const receiver = keypair.remoteIndex;
    bytes[4] = receiver & 0xff;
    bytes[5] = (receiver >>> 8) & 0xff;
    bytes[6] = (receiver >>> 16) & 0xff;
    bytes[7] = receiver >>> 24;
    keypair.takeSendCounter(bytes);
    return keypair;
  }

  /**
   * Both open fast paths: the keypair a transport message in slot.bytes[0,
   * length) opens under, or null when decapsulate() must take it (not a
   * transport message, an unknown index, a keypair still to confirm, an
   * expired session, a rekey to start, a counter already seen).
   */
  private openableKeypair(slot: TransportSlot, length: number, now: number): Keypair | null {
    const bytes = slot.bytes;
    if (length < TransportSlot.OVERHEAD || bytes[0] !== MESSAGE_TRANSPORT_TYPE || bytes[1] !== 0 || bytes[2] !== 0 || bytes[3] !== 0) return null;
    const keypair = this.keypairs.byReceiverField(slot.view, 4);
    if (keypair === null || this.awaitsConfirmation(keypair)) return null;
    if (this.expired(keypair, now) || this.rekeyOnReceiveDue(now)) return null;
    if (!keypair.replay.isFreshWords(slot.view.getUint32(8, true), slot.view.getUint32(12, true))) return null;
    return keypair;
  }

  /** Start a handshake now (subject to the one-per-REKEY_TIMEOUT limit). */
  initiateHandshake(): TunnelOutput {
    const out = emptyOutput();
    this.sendInitiation(out, false);
    return out;
  }

  /**
   * Let the next initiation go out at once, despite the one-per-REKEY_TIMEOUT
   * limit: the peer has a new endpoint (NAT traversal moved it), so an earlier
   * initiation went somewhere else or nowhere.
   */
  endpointChanged(): void {
    this.handshake.lastSentAt = null;
  }

  /** Send a keepalive now (e.g. right after configuring persistent keepalive). */
  sendKeepalive(): TunnelOutput {
    const out = emptyOutput();
    this.keepalive(out);
    return out;
  }

  /** Handle a datagram from the network addressed to this peer. */
  decapsulate(datagram: Uint8Array, options: DecapsulateOptions = {}): TunnelOutput {
    try {
      switch (messageType(datagram)) {
        case 'initiation':
          return this.handleInitiation(datagram, options);
        case 'response':
          return this.handleResponse(datagram, options);
        case 'cookie-reply':
          return this.handleCookieReply(datagram);
        case 'transport':
          return this.handleTransport(datagram);
        default:
          return failed(new NoiseError('InvalidMessage', `malformed datagram of ${datagram.length} bytes`));
      }
    } catch (error) {
      // Defensive: the handlers return errors rather than throw, but a bug must not take the device down.
      return failed(error instanceof NoiseError ? error : new NoiseError('InvalidMessage', String(error)));
    }
  }

  /**
   * Handle an initiation that a device already read with readInitiation()
   * (to find out it is for this peer). Checks MACs like decapsulate().
   */
  handleReadInitiation(datagram: Uint8Array, start: InitiationStart, options: DecapsulateOptions = {}): TunnelOutput {
    try {
      const message = parseInitiation(datagram);
      if (message === null) return failed(new NoiseError('InvalidMessage', 'malformed handshake initiation'));
      const rejected = this.checkMacs(datagram, message.sender, options);
      if (rejected !== null) return rejected;
      return this.consumeInitiation(datagram, message, start);
    } finally {
      wipeInitiationStart(start);
    }
  }

  /** Run every timer that is due. */
  updateTimers(): TunnelOutput {
    const out = emptyOutput();
    const now = this.clock.now();
    for (let name = this.timers.takeDue(now); name !== null; name = this.timers.takeDue(now)) this.onTimer(name, out, now);
    return out;
  }

  /** Forget all sessions and staged packets, release our indices and zero every key this tunnel holds (peer removed or replaced). */
  close(): void {
    this.zeroKeyMaterial();
    this.handshake.destroy();
    this.clearStaged();
    this.timers.clearAll();
  }

  // ---- receive -----------------------------------------------------------

  private checkMacs(datagram: Uint8Array, senderIndex: number, options: DecapsulateOptions): TunnelOutput | null {
    const checker = this.identity.cookieChecker;
    if (!checker.checkMac1(datagram)) return failed(new NoiseError('InvalidMac1', 'handshake message has an invalid MAC1'));
    if (options.underLoad) {
      const source = options.source ?? new Uint8Array(0);
      if (!checker.checkMac2(datagram, source)) {
        return { ...emptyOutput(), cookieReply: checker.createReply(datagram, senderIndex, source), error: new NoiseError('CookieRequired', 'under load: handshake needs a valid MAC2; cookie reply sent') };
      }
    }
    return null;
  }

  private handleInitiation(datagram: Uint8Array, options: DecapsulateOptions): TunnelOutput {
    const message = parseInitiation(datagram)!;
    const rejected = this.checkMacs(datagram, message.sender, options);
    if (rejected !== null) return rejected;
    const start = readInitiation(this.identity, message);
    if (start === null) return failed(new NoiseError('DecryptionFailed', 'initiation did not decrypt under our key'));
    try {
      return this.consumeInitiation(datagram, message, start);
    } finally {
      wipeInitiationStart(start);
    }
  }

  private consumeInitiation(datagram: Uint8Array, message: HandshakeInitiation, start: InitiationStart): TunnelOutput {
    if (!constantTimeEqual(start.peerPublicKey, this.peerPublicKey)) {
      return failed(new NoiseError('WrongPeer', 'initiation comes from a different peer key'));
    }
    const error = this.handshake.consumeInitiation(message, start);
    if (error !== null) return failed(error);
    const now = this.clock.now();
    const out = this.acceptHandshakeMessage(datagram, now);
    this.sendResponse(out, now);
    return out;
  }

  /** Book-keeping shared by every authenticated handshake message; returns the output to fill. */
  private acceptHandshakeMessage(datagram: Uint8Array, now: number): TunnelOutput {
    const out = emptyOutput();
    out.authenticated = true;
    this.rxBytes += datagram.length;
    this.timers.anyAuthenticatedPacketTraversal(now);
    this.timers.anyAuthenticatedPacketReceived();
    return out;
  }

  private handleResponse(datagram: Uint8Array, options: DecapsulateOptions): TunnelOutput {
    const message = parseResponse(datagram)!;
    if (this.handshake.state !== 'initiation-created' || message.receiver !== this.handshake.localIndex) {
      return failed(new NoiseError('UnknownIndex', 'response does not answer our pending initiation'));
    }
    const rejected = this.checkMacs(datagram, message.sender, options);
    if (rejected !== null) return rejected;
    const error = this.handshake.consumeResponse(message);
    if (error !== null) return failed(error);
    const now = this.clock.now();
    const out = this.acceptHandshakeMessage(datagram, now);
    this.installKeypair(this.handshake.deriveKeypair());
    this.timers.sessionDerived(now);
    this.handshakeComplete();
    this.keepalive(out);
    return out;
  }

  private handleCookieReply(datagram: Uint8Array): TunnelOutput {
    const reply = parseCookieReply(datagram)!;
    // Like wireguard-go, a cookie reply may answer our initiation or our response (whose index a keypair now owns).
    const answersInitiation = this.handshake.state === 'initiation-created' && reply.receiver === this.handshake.localIndex;
    if (!answersInitiation && this.keypairs.byLocalIndex(reply.receiver) === null) {
      return failed(new NoiseError('UnknownIndex', 'cookie reply does not answer a handshake message of ours'));
    }
    if (!this.cookies.consumeReply(reply)) return failed(new NoiseError('DecryptionFailed', 'cookie reply did not authenticate'));
    return emptyOutput();
  }

  private handleTransport(datagram: Uint8Array): TunnelOutput {
    const header = parseTransportHeader(datagram)!;
    const keypair = this.keypairs.byLocalIndex(header.receiver);
    if (keypair === null) return failed(new NoiseError('UnknownIndex', `no session with receiver index ${header.receiver}`));
    const now = this.clock.now();
    if (this.expired(keypair, now)) return failed(new NoiseError('ExpiredKeypair', 'session is older than REJECT_AFTER_TIME'));
    if (header.counter >= REJECT_AFTER_MESSAGES) return failed(new NoiseError('ReplayedCounter', 'counter at or above REJECT_AFTER_MESSAGES'));
    const plaintext = this.identity.primitives.aeadOpen(keypair.receiveKey, header.counter, header.ciphertext, new Uint8Array(0));
    if (plaintext === null) return failed(new NoiseError('DecryptionFailed', 'transport data did not authenticate'));
    if (!keypair.replay.check(header.counter)) return failed(new NoiseError('ReplayedCounter', `counter ${header.counter} replayed or too old`));

    const out = emptyOutput();
    out.authenticated = true;
    if (this.awaitsConfirmation(keypair)) {
      const { dropped } = this.keypairs.confirm(keypair);
      if (dropped !== null) this.releaseKeypair(dropped);
      this.handshakeComplete();
      this.sendStaged(out);
    }
    this.keepKeyFreshReceiving(out);
    this.transportReceived(datagram.length, plaintext.length, now);
    if (plaintext.length > 0) out.tunnel = plaintext;
    return out;
  }

  // ---- send --------------------------------------------------------------

  /** Queue a packet for the next session; false when the shared staging budget refused it. */
  private stage(packet: Uint8Array): boolean {
    if (this.staged.length >= MAX_STAGED_PACKETS) this.unstage();
    if (!this.stagingBudget.reserve(packet.length)) return false;
    this.staged.push(packet);
    return true;
  }

  /** The oldest staged packet, its bytes given back to the budget. */
  private unstage(): Uint8Array {
    const packet = this.staged.shift()!;
    this.stagingBudget.release(packet.length);
    return packet;
  }

  private clearStaged(): void {
    for (const packet of this.staged) this.stagingBudget.release(packet.length);
    this.staged.length = 0;
  }

  private keepalive(out: TunnelOutput): void {
    if (this.staged.length === 0) this.staged.push(new Uint8Array(0));
    this.sendStaged(out);
  }

  /** Encrypt and send staged packets with the current session, or start a handshake for them. */
  private sendStaged(out: TunnelOutput): void {
    const now = this.clock.now();
    const keypair = this.sendableKeypair(now);
    if (keypair === null) {
      this.sendInitiation(out, false);
      return;
    }
    while (this.staged.length > 0) {
      if (keypair.sendExhausted) {
        this.sendInitiation(out, false);
        return;
      }
      const packet = this.unstage();
      this.sendTransport(out, keypair, packet, now);
    }
    this.keepKeyFreshSending(out, keypair, now);
  }

  private sendTransport(out: TunnelOutput, keypair: Keypair, packet: Uint8Array, now: number): void {
    const counter = keypair.sendCounter++;
    const padded = padPacket(packet, this.mtu);
    const ciphertext = this.identity.primitives.aeadSeal(keypair.sendKey, counter, padded, new Uint8Array(0));
    const datagram = serializeTransport(keypair.remoteIndex, counter, ciphertext);
    out.network.push(datagram);
    this.transportSent(datagram.length, packet.length, now);
  }

  private sendInitiation(out: TunnelOutput, isRetry: boolean): void {
    if (!isRetry) this.timers.handshakeAttempts = 0;
    const now = this.clock.now();
    const lastSent = this.handshake.lastSentAt;
    if (lastSent !== null && now - lastSent < REKEY_TIMEOUT_MS) return;
    this.handshake.lastSentAt = now;
    this.releaseHandshakeIndex();
    const message = this.handshake.createInitiation(this.indexTable.allocate(this));
    this.handshakeIndexLive = true;
    this.cookies.addMacs(message);
    out.network.push(message);
    this.txBytes += message.length;
    this.timers.anyAuthenticatedPacketTraversal(now);
    this.timers.anyAuthenticatedPacketSent();
    this.timers.handshakeInitiated(now);
  }

  private sendResponse(out: TunnelOutput, now: number): void {
    this.handshake.lastSentAt = now;
    this.releaseHandshakeIndex();
    const message = this.handshake.createResponse(this.indexTable.allocate(this));
    this.handshakeIndexLive = true;
    this.cookies.addMacs(message);
    this.installKeypair(this.handshake.deriveKeypair());
    this.timers.sessionDerived(now);
    this.timers.anyAuthenticatedPacketTraversal(now);
    this.timers.anyAuthenticatedPacketSent();
    out.network.push(message);
    this.txBytes += message.length;
  }

  private keepKeyFreshSending(out: TunnelOutput, keypair: Keypair, now: number): void {
    if (this.rekeyDueSending(keypair, now, false)) this.sendInitiation(out, false);
  }

  private keepKeyFreshReceiving(out: TunnelOutput): void {
    if (this.rekeyOnReceiveDue(this.clock.now())) {
      this.timers.sentLastMinuteHandshake = true;
      this.sendInitiation(out, false);
    }
  }

  // ---- session rules: both data paths ask these ------------------------------
  // The reference path (encapsulate/decapsulate) acts on them; the fast paths
  // (sealTransport/openTransport) decline wherever acting takes more than
  // sealing or opening one message, and leave it to the reference path.

  /** The keypair is past REJECT_AFTER_TIME: nothing may be sent or received under it. */
  private expired(keypair: Keypair, now: number): boolean {
    return now - keypair.createdAt >= REJECT_AFTER_TIME_MS;
  }

  /** The current keypair when it may still send (not expired, counter below REJECT_AFTER_MESSAGES), else null. */
  private sendableKeypair(now: number): Keypair | null {
    const keypair = this.keypairs.current;
    if (keypair === null || keypair.sendExhausted || this.expired(keypair, now)) return null;
    return keypair;
  }

  /**
   * wireguard-go's keepKeyFreshSending: a new handshake is due once the send
   * counter is past REKEY_AFTER_MESSAGES, or keys we initiated are past
   * REKEY_AFTER_TIME. `beforeSending`: judge the counter as the next message
   * will leave it (the fast path asks before it seals, the reference path after).
   */
  private rekeyDueSending(keypair: Keypair, now: number, beforeSending: boolean): boolean {
    const counterPast = beforeSending ? keypair.rekeyDueAfterSend : keypair.sendRekeyDue;
    return counterPast || (keypair.isInitiator && now - keypair.createdAt > REKEY_AFTER_TIME_MS);
  }

  /** Receiving under an old session we started: time for one last-minute handshake (keepKeyFreshReceiving). */
  private rekeyOnReceiveDue(now: number): boolean {
    if (this.timers.sentLastMinuteHandshake) return false;
    const keypair = this.keypairs.current;
    return keypair !== null && keypair.isInitiator && now - keypair.createdAt > REKEY_ON_RECEIVE_AFTER_MS;
  }

  /** A responder's keypair that no data has confirmed yet: the first message under it rotates the sessions. */
  private awaitsConfirmation(keypair: Keypair): boolean {
    return keypair === this.keypairs.next;
  }

  /** Counters and timers after a transport message went out (`dataLength` 0: a keepalive). */
  private transportSent(datagramLength: number, dataLength: number, now: number): void {
    this.txBytes += datagramLength;
    this.timers.anyAuthenticatedPacketTraversal(now);
    this.timers.anyAuthenticatedPacketSent();
    if (dataLength > 0) this.timers.dataSent(now);
  }

  /** Counters and timers after a transport message authenticated (`plaintextLength` 0: a keepalive). */
  private transportReceived(datagramLength: number, plaintextLength: number, now: number): void {
    this.rxBytes += datagramLength;
    this.timers.anyAuthenticatedPacketTraversal(now);
    this.timers.anyAuthenticatedPacketReceived();
    if (plaintextLength > 0) this.timers.dataReceived(now);
  }

  // ---- timers ------------------------------------------------------------

  private onTimer(name: TimerName, out: TunnelOutput, now: number): void {
    switch (name) {
      case 'retransmit-handshake':
        if (this.timers.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
          // Gave up after REKEY_ATTEMPT_TIME: drop what waited for this handshake.
          this.timers.clear('send-keepalive');
          this.clearStaged();
          if (!this.timers.isPending('zero-key-material')) this.timers.set('zero-key-material', now + ZERO_KEY_MATERIAL_AFTER_MS);
        } else {
          this.timers.handshakeAttempts++;
          this.sendInitiation(out, true);
        }
        break;
      case 'send-keepalive':
        this.keepalive(out);
        if (this.timers.needAnotherKeepalive) {
          this.timers.needAnotherKeepalive = false;
          this.timers.dataReceived(now);
        }
        break;
      case 'new-handshake':
        this.sendInitiation(out, false);
        break;
      case 'zero-key-material':
        // wireguard-go's ZeroAndFlushAll: packets waiting for a session go too.
        this.zeroKeyMaterial();
        this.clearStaged();
        break;
      case 'persistent-keepalive':
        if (this.timers.persistentKeepaliveMs > 0) this.keepalive(out);
        break;
    }
  }

  // ---- sessions and indices ----------------------------------------------

  private handshakeComplete(): void {
    this.timers.handshakeComplete();
    this.lastHandshakeWallTime = this.clock.wallTime();
  }

  private installKeypair(keypair: Keypair): void {
    this.handshakeIndexLive = false; // the keypair owns the handshake's index now
    for (const dropped of this.keypairs.install(keypair)) this.releaseKeypair(dropped);
  }

  private releaseKeypair(keypair: Keypair): void {
    this.indexTable.release(keypair.localIndex);
    keypair.wipe();
  }

  private releaseHandshakeIndex(): void {
    if (this.handshakeIndexLive) this.indexTable.release(this.handshake.localIndex);
    this.handshakeIndexLive = false;
  }

  private zeroKeyMaterial(): void {
    for (const keypair of this.keypairs.clear()) this.releaseKeypair(keypair);
    this.releaseHandshakeIndex();
    this.handshake.reset();
  }
}

/**
 * Zero-pad a plaintext to a multiple of 16 bytes without passing the MTU,
 * exactly as wireguard-go's calculatePaddingSize (a packet longer than the
 * MTU pads its remainder). Keepalives stay empty.
 */
export function padPacket(packet: Uint8Array, mtu = 0): Uint8Array {
  const length = paddedLength(packet.length, mtu);
  if (length === packet.length) return packet;
  const padded = new Uint8Array(length);
  padded.set(packet);
  return padded;
}

/** The length padPacket() pads a packet of `length` bytes to. */
function roundUp(n: number): number {
  return Math.ceil(n / PADDING_MULTIPLE) * PADDING_MULTIPLE;
}

/** The length padPacket() pads a packet of `length` bytes to (allocates nothing: the send fast path calls it). */
export function paddedLength(length: number, mtu = 0): number {
  let padding: number;
  if (mtu <= 0) {
    padding = roundUp(length) - length;
  } else {
    const lastUnit = length > mtu ? length % mtu : length;
    padding = Math.min(roundUp(lastUnit), mtu) - lastUnit;
  }
  padding = Math.min(padding, MAX_PLAINTEXT_SIZE - length);
  return padding <= 0 ? length : length + padding;
}
