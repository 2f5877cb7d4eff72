/**
 * The receive path: UDP datagrams to IP packets on the TUN device.
 *
 * The I/O thread reads the UDP socket into a shared ring (recvmmsg, GRO runs
 * split) and hands each datagram over in its slot, with its source address
 * and the local address it arrived on. Here:
 *   1. transport data is looked up by its receiver index, which names the
 *      session and so the peer, and opened in place (inline, or by the crypto
 *      workers in order); one that does not authenticate is dropped and counted;
 *   2. an authenticated datagram may move the peer: its endpoint and sticky
 *      source address follow it (roaming), and its timers are touched;
 *   3. the plaintext goes to the TUN device only if its inner source lies in
 *      that peer's allowed IPs.
 * Everything else is copied out to the reference path: handshake messages
 * pass MAC1, then under load MAC2 (or get a cookie reply), the source's rate
 * limit and the global budget before any X25519 work; an initiation's static
 * key names the peer, other messages their receiver index; the Tunnel's
 * output is carried out by the device. Datagrams that are no WireGuard
 * message go to the interceptors (STUN, relay, hole punching).
 */
import {
  MESSAGE_COOKIE_REPLY_TYPE,
  MESSAGE_INITIATION_TYPE,
  MESSAGE_RESPONSE_TYPE,
  MESSAGE_TRANSPORT_MIN_SIZE,
  MESSAGE_TRANSPORT_TYPE,
  OPEN_FAILED,
  messageType,
  parseInitiation,
  readInitiation,
  wipeInitiationStart,
  type Clock,
  type IndexTable,
  type StaticIdentity,
  type TransportSlot,
  type Tunnel,
} from '../noise/index.js';
import type { TunDevice } from '../tun/index.js';
import { endpointBytes, formatEndpoint, type Endpoint } from './addr.js';
import type { AllowedIps } from './allowed-ips.js';
import type { UdpBind } from './bind.js';
import type { DeviceCounters } from './counters.js';
import type { TransportBatch, TransportDrop } from './crypto-batch.js';
import { trimIpPacket } from './ip-packet.js';
import { peerLogName, type Logger } from './logger.js';
import type { Peer } from './peer.js';
import { rateLimitKey, type HandshakeBudget, type HandshakeLoad, type RateLimiter } from './ratelimiter.js';
import type { TunnelOutputHandler } from './send.js';
import { endpointFromSockaddr, sockaddrMatches } from './sockaddr.js';
import { localSourceOf, replyRoute } from './sticky-source.js';
import type { PeerTimers } from './timers.js';
import type { LocalSource } from '../platform/index.js';

export const HANDSHAKE_MESSAGE_NAMES: Record<number, string> = {
  [MESSAGE_INITIATION_TYPE]: 'handshake initiation',
  [MESSAGE_RESPONSE_TYPE]: 'handshake response',
  [MESSAGE_COOKIE_REPLY_TYPE]: 'cookie reply',
};

/**
 * A handler for datagrams on the WireGuard port that are not WireGuard
 * messages (STUN replies, relay and punch messages). Returns true when it
 * consumed the datagram; unconsumed ones are dropped with a log line.
 */
export type DatagramInterceptor = (datagram: Uint8Array, source: Endpoint) => boolean;

export interface ReceivePathParts {
  /** The device's static identity now (null: no private key, handshakes are dropped). */
  identity: () => StaticIdentity | null;
  /** Peers by hex public key. */
  peers: ReadonlyMap<string, Peer>;
  indexTable: IndexTable<Tunnel>;
  peerOfTunnel: WeakMap<Tunnel, Peer>;
  allowedIps: AllowedIps<Peer>;
  /** The crypto workers' ordered batch; null when the AEAD runs inline. */
  transportBatch: TransportBatch<Peer, Endpoint | Uint8Array> | null;
  timers: PeerTimers;
  counters: DeviceCounters;
  handshakeLoad: HandshakeLoad;
  handshakeBudget: HandshakeBudget;
  rateLimiter: RateLimiter;
  interceptors: readonly DatagramInterceptor[];
  bind: UdpBind;
  tun: TunDevice;
  log: Logger;
  clock: Clock;
  act: TunnelOutputHandler;
}

export class ReceivePath {
  private readonly identity: () => StaticIdentity | null;
  private readonly peers: ReadonlyMap<string, Peer>;
  private readonly indexTable: IndexTable<Tunnel>;
  private readonly peerOfTunnel: WeakMap<Tunnel, Peer>;
  private readonly allowedIps: AllowedIps<Peer>;
  private readonly transportBatch: TransportBatch<Peer, Endpoint | Uint8Array> | null;
  private readonly timers: PeerTimers;
  private readonly counters: DeviceCounters;
  private readonly handshakeLoad: HandshakeLoad;
  private readonly handshakeBudget: HandshakeBudget;
  private readonly rateLimiter: RateLimiter;
  private readonly interceptors: readonly DatagramInterceptor[];
  private readonly bind: UdpBind;
  private readonly tun: TunDevice;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly act: TunnelOutputHandler;

  constructor(parts: ReceivePathParts) {
    this.identity = parts.identity;
    this.peers = parts.peers;
    this.indexTable = parts.indexTable;
    this.peerOfTunnel = parts.peerOfTunnel;
    this.allowedIps = parts.allowedIps;
    this.transportBatch = parts.transportBatch;
    this.timers = parts.timers;
    this.counters = parts.counters;
    this.handshakeLoad = parts.handshakeLoad;
    this.handshakeBudget = parts.handshakeBudget;
    this.rateLimiter = parts.rateLimiter;
    this.interceptors = parts.interceptors;
    this.bind = parts.bind;
    this.tun = parts.tun;
    this.log = parts.log;
    this.clock = parts.clock;
    this.act = parts.act;
  }

  /**
   * A datagram the UDP reader put in a ring slot. Transport data takes the
   * fast path (opened in place, no copy); everything else, and transport
   * data the fast path declines, is copied out for the reference path.
   */
  receiveSlot(slot: TransportSlot, length: number, meta: Uint8Array): void {
    if (this.receiveTransport(slot, length, meta)) return;
    // Handshakes may replace sessions: the packets before this one go first.
    this.transportBatch?.finish();
    const source = endpointFromSockaddr(meta);
    if (source !== null) this.receiveDatagram(slot.bytes.slice(0, length), source, localSourceOf(meta, null));
  }

  /** The receive fast path; false hands the datagram, untouched, to receiveDatagram. */
  private receiveTransport(slot: TransportSlot, length: number, meta: Uint8Array): boolean {
    const bytes = slot.bytes;
    if (length < MESSAGE_TRANSPORT_MIN_SIZE || bytes[0] !== MESSAGE_TRANSPORT_TYPE || bytes[1] !== 0 || bytes[2] !== 0 || bytes[3] !== 0) return false;
    const tunnel = this.indexTable.lookupReceiverField(slot.view, 4);
    const peer = tunnel === undefined ? undefined : this.peerOfTunnel.get(tunnel);
    if (tunnel === undefined || peer === undefined || peer.tunnel !== tunnel) return false;
    if (this.transportBatch !== null) return this.transportBatch.open(tunnel, slot, length, peer, meta);
    const plaintextLength = tunnel.openTransport(slot, length);
    if (plaintextLength === OPEN_FAILED) {
      this.counters.transportForged++;
      this.log.verbose(`${peerLogName(peer.publicKey)}: DecryptionFailed: transport data did not authenticate`);
      return true;
    }
    if (plaintextLength < 0) return false;
    this.opened(peer, slot, plaintextLength, meta);
    return true;
  }

  /**
   * A transport datagram that authenticated (inline, or from the crypto
   * workers in its turn): the peer may have roamed, to another endpoint or
   * local address; then the plaintext goes to the TUN device.
   */
  opened(peer: Peer, slot: TransportSlot, plaintextLength: number, meta: Uint8Array): void {
    if (!sockaddrMatches(peer.endpoint, meta)) peer.endpoint = endpointFromSockaddr(meta) ?? peer.endpoint;
    const local = localSourceOf(meta, peer.localSource);
    if (local !== peer.localSource) peer.setLocalSource(local);
    this.timers.touched(peer);
    if (plaintextLength > 0) this.deliver(peer, slot.plaintext(plaintextLength));
  }

  /** Transport data the crypto workers' batch dropped, by reason. */
  droppedTransport(peer: Peer, reason: TransportDrop): void {
    if (reason === 'forged') this.counters.transportForged++;
    else if (reason === 'replayed') this.counters.transportReplayed++;
    else this.counters.cryptoLost++;
    this.log.verbose(`${peerLogName(peer.publicKey)}: transport data dropped (${reason})`);
  }

  /** A decrypted packet from the peer: to the TUN device if it is IP and its source lies in the peer's allowed IPs. */
  deliver(peer: Peer, plaintext: Uint8Array): void {
    const packet = trimIpPacket(plaintext);
    if (packet === null) {
      this.log.verbose(`${peerLogName(peer.publicKey)} sent a packet that is not IPv4/IPv6`);
      return;
    }
    if (this.allowedIps.lookupPacketSource(packet) !== peer) {
      this.log.verbose(`${peerLogName(peer.publicKey)} sent a packet from a source outside its allowed IPs`);
      return;
    }
    this.tun.write(packet);
  }

  private receiveDatagram(data: Uint8Array, source: Endpoint, local: LocalSource | null): void {
    switch (messageType(data)) {
      case 'initiation':
        this.receiveInitiation(data, source, local);
        return;
      case 'response':
        if (!this.admitHandshake(data, source, local)) return;
        this.receiveForIndex(data, source, local);
        return;
      case 'cookie-reply':
      case 'transport':
        this.receiveForIndex(data, source, local);
        return;
      default:
        for (const interceptor of this.interceptors) if (interceptor(data, source)) return;
        this.log.verbose(`dropped a malformed datagram of ${data.length} bytes from ${source.address}:${source.port}`);
    }
  }

  /**
   * MAC1; then, under load, MAC2, the source's rate limit and the global
   * budget. Returns false (after sending a cookie reply when that is the
   * answer, from the address the message arrived on) to drop; true means
   * the message may cost X25519 work.
   */
  private admitHandshake(data: Uint8Array, source: Endpoint, local: LocalSource | null): boolean {
    const identity = this.identity();
    if (identity === null) return false;
    const checker = identity.cookieChecker;
    if (!checker.checkMac1(data)) {
      this.log.verbose(`dropped a handshake message with an invalid MAC1 from ${source.address}`);
      return false;
    }
    const now = this.clock.now();
    const busy = this.handshakeLoad.record(now);
    // Not under load: the budget alone decides; the message that finds it dry is treated as under load.
    if (!busy && !this.handshakeBudget.spent(now) && this.handshakeBudget.take(now)) {
      this.counters.handshakesAdmitted++;
      return true;
    }
    const sourceBytes = endpointBytes(source);
    if (!checker.checkMac2(data, sourceBytes)) {
      const senderIndex = new DataView(data.buffer, data.byteOffset + 4, 4).getUint32(0, true);
      this.bind.send(checker.createReply(data, senderIndex, sourceBytes), source, undefined, undefined, replyRoute(local));
      this.counters.cookieReplies++;
      return false;
    }
    if (!this.rateLimiter.allow(rateLimitKey(source), now)) {
      this.counters.rateLimited++;
      return false;
    }
    if (!this.handshakeBudget.take(now)) {
      this.counters.overBudget++;
      return false;
    }
    this.counters.handshakesAdmitted++;
    return true;
  }

  private receiveInitiation(data: Uint8Array, source: Endpoint, local: LocalSource | null): void {
    if (!this.admitHandshake(data, source, local)) return;
    const message = parseInitiation(data)!;
    const start = readInitiation(this.identity()!, message);
    if (start === null) {
      this.log.verbose(`dropped an initiation from ${source.address} that did not decrypt`);
      return;
    }
    const peer = this.peers.get(Buffer.from(start.peerPublicKey).toString('hex'));
    if (peer === undefined || peer.tunnel === null) {
      wipeInitiationStart(start);
      this.log.verbose(`dropped an initiation from an unknown peer at ${source.address}`);
      return;
    }
    // MACs were checked above (with the load state); the tunnel re-checks MAC1 only.
    this.act(peer, peer.tunnel.handleReadInitiation(data, start), source, local);
  }

  private receiveForIndex(data: Uint8Array, source: Endpoint, local: LocalSource | null): void {
    // The receiver index follows the sender index in a response, and the type in the others.
    const receiverOffset = data[0] === MESSAGE_RESPONSE_TYPE ? 8 : 4;
    const receiver = new DataView(data.buffer, data.byteOffset + receiverOffset, 4).getUint32(0, true);
    if (data[0] !== MESSAGE_TRANSPORT_TYPE) this.log.verbose(`received ${HANDSHAKE_MESSAGE_NAMES[data[0]!]} for index ${receiver} from ${formatEndpoint(source)}`);
    const tunnel = this.indexTable.lookup(receiver);
    const peer = tunnel === undefined ? undefined : this.peerOfTunnel.get(tunnel);
    if (peer === undefined || peer.tunnel !== tunnel) {
      this.log.verbose(`dropped a datagram for unknown receiver index ${receiver} from ${source.address}:${source.port}`);
      return;
    }
    const out = tunnel.decapsulate(data);
    // Counted as the fast paths count it: a session's data that did not authenticate.
    if (data[0] === MESSAGE_TRANSPORT_TYPE && out.error?.code === 'DecryptionFailed') this.counters.transportForged++;
    this.act(peer, out, source, local);
  }
}
