/**
 * The device: one TUN interface, one UDP port, many peers.
 *
 * Outbound: TUN packet → allowed-IPs lookup of its destination → the peer's
 * Tunnel → UDP datagrams to the peer's endpoint.
 * Inbound: UDP datagram → message type → (handshake) MAC checks, cookies
 * under load, the initiator's static key names the peer; (others) the
 * receiver index names the peer → Tunnel → IP packet, whose inner source
 * must be in that peer's allowed IPs → TUN.
 * Timers: each peer's next deadline is one setTimeout calling updateTimers.
 *
 * The I/O thread fills shared rings (TUN and UDP); everything here runs on
 * the main thread, in batches. Data packets take the fast paths — sealed or
 * opened in place in their ring slot (Tunnel.sealTransport/openTransport),
 * sent with one sendmmsg per batch, timers rescheduled once per batch. The
 * rest goes through the reference path: the Tunnel returns what to send and
 * the device is a switch over its outputs (ARCHITECTURE.md, the boringtun model).
 */
import { IndexTable, MESSAGE_COOKIE_REPLY_TYPE, MESSAGE_INITIATION_TYPE, MESSAGE_RESPONSE_TYPE, MESSAGE_TRANSPORT_MIN_SIZE, MESSAGE_TRANSPORT_TYPE, NoiseError, OPEN_FAILED, StagingBudget, StaticIdentity, messageType, parseInitiation, readInitiation, systemClock, TransportSlot, wipeInitiationStart, type Clock, type Tunnel, type TunnelOutput, isAllZero } from '../noise/index.js';
import type { TunDevice } from '../tun/index.js';
import { endpointBytes, endpointsEqual, formatEndpoint, type Endpoint } from './addr.js';
import { AllowedIps } from './allowed-ips.js';
import { UdpBind } from './bind.js';
import { UdpBatchSender } from './udp-batch.js';
import { endpointFromSockaddr, sockaddrMatches } from './sockaddr.js';
import { localSourceOf, sameLocalSource } from './sticky-source.js';
import { type LocalSource, PlatformError, type UdpReceiveCounters } from '../platform/index.js';
import { DEFAULT_LISTEN_PORT, TUN_SLOT_LAYOUT } from './constants.js';
import { DeviceCounters } from './counters.js';
import { TransportBatch, type TransportDrop } from './crypto-batch.js';
import { CryptoPool, cryptoWorkersFromEnvironment } from './crypto-pool.js';
import { ipHeaderFits, trimIpPacket } from './ip-packet.js';
import { peerLogName, type Logger } from './logger.js';
import { Peer } from './peer.js';
import { HandshakeBudget, HandshakeLoad, RateLimiter, rateLimitKey } from './ratelimiter.js';
import { UapiError, type UapiDeviceState, type UapiSetRequest } from './uapi.js';
import type { UapiHandler } from './uapi-server.js';

const EADDRINUSE = 98;
const HANDSHAKE_MESSAGE_NAMES: Record<number, string> = {
  [MESSAGE_INITIATION_TYPE]: 'handshake initiation',
  [MESSAGE_RESPONSE_TYPE]: 'handshake response',
  [MESSAGE_COOKIE_REPLY_TYPE]: 'cookie reply',
};
const EIO = 5;

/**
 * A handler for datagrams on the WireGuard port that are not WireGuard
 * messages (STUN replies, relay and punch messages). Returns true when it
 * consumed the datagram; unconsumed ones are dropped with a log line.
 */
export type DatagramInterceptor = (datagram: Uint8Array, source: Endpoint) => boolean;

/** What NAT traversal and the overlay node read of a peer. */
export interface PeerStatus {
  endpoint: Endpoint | null;
  /** Wall-clock ms of the latest handshake, 0 when none. */
  lastHandshakeTimeMs: number;
  rxBytes: number;
  txBytes: number;
}

export interface DeviceOptions {
  tun: TunDevice;
  log: Logger;
  clock?: Clock;
  /** Handshake messages per second above which cookies are demanded (tests lower it). */
  underLoadThreshold?: number;
  /** Handshake messages per second given X25519 work, device-wide (tests lower it). */
  handshakeBudget?: number;
  /** Bytes of packets all peers together may hold while waiting for handshakes (MAX_STAGED_BYTES). */
  maxStagedBytes?: number;
  /** Threads for the packet AEAD (0: inline); TSWG_CRYPTO_WORKERS when absent. */
  cryptoWorkers?: number;
}

export class Device implements UapiHandler {
  readonly tun: TunDevice;
  private readonly log: Logger;
  private readonly clock: Clock;
  private identity: StaticIdentity | null = null;
  private readonly peers = new Map<string, Peer>();
  private readonly peerOfTunnel = new WeakMap<Tunnel, Peer>();
  private readonly allowedIps = new AllowedIps<Peer>();
  private readonly indexTable = new IndexTable<Tunnel>();
  private readonly bind: UdpBind;
  private readonly handshakeLoad: HandshakeLoad;
  private readonly handshakeBudget: HandshakeBudget;
  private readonly rateLimiter = new RateLimiter();
  private readonly interceptors: DatagramInterceptor[] = [];
  private readonly batchSender: UdpBatchSender<Peer>;
  /** Peers whose timers the fast path touched since the last flush. */
  private readonly peersWithNewTimers: Peer[] = [];
  /** Drops and refusals by reason. */
  readonly counters = new DeviceCounters();
  /** Packets waiting for handshakes, all peers together: bytes held and packets refused. */
  readonly staging: StagingBudget;
  /** The crypto workers and the batch that keeps their packets in order; null when the AEAD runs inline. */
  private readonly cryptoPool: CryptoPool | null;
  private readonly transportBatch: TransportBatch<Peer, Endpoint | Uint8Array> | null;
  private closed = false;
  private closeListeners: Array<(error: Error | null) => void> = [];

  constructor(options: DeviceOptions) {
    this.tun = options.tun;
    this.log = options.log;
    this.clock = options.clock ?? systemClock;
    this.handshakeLoad = new HandshakeLoad(options.underLoadThreshold);
    this.handshakeBudget = new HandshakeBudget(options.handshakeBudget);
    this.staging = new StagingBudget(options.maxStagedBytes);
    this.bind = new UdpBind(
      {
        datagram: (slot, length, source) => this.receiveSlot(slot, length, source),
        flush: () => this.flushSends(),
        // A device without its UDP port is dead: close it, so onClose listeners hear why.
        closed: (error) => void this.close(error),
      },
      this.log,
    );
    this.batchSender = new UdpBatchSender<Peer>(
      this.bind,
      this.log,
      (peer, bytes) => (peer.txBytes += bytes),
      (peer) => this.setLocalSource(peer, null),
    );
    const cryptoWorkers = options.cryptoWorkers ?? cryptoWorkersFromEnvironment(this.log);
    this.cryptoPool = cryptoWorkers > 0 ? new CryptoPool({ workers: cryptoWorkers, log: this.log }) : null;
    if (cryptoWorkers > 0) this.log.verbose(`packet crypto on ${cryptoWorkers} worker thread(s) and the main thread`);
    this.transportBatch =
      this.cryptoPool === null
        ? null
        : new TransportBatch<Peer, Endpoint | Uint8Array>(this.cryptoPool, {
            sealed: (peer, slot, datagramLength, endpoint) => this.sealed(peer, slot, datagramLength, endpoint as Endpoint),
            opened: (peer, slot, plaintextLength, source) => this.opened(peer, slot, plaintextLength, source as Uint8Array),
            dropped: (peer, reason) => this.droppedTransport(peer, reason),
          });
  }

  /** Bind the UDP port and start reading the TUN device. */
  async start(): Promise<void> {
    await this.bind.open(DEFAULT_LISTEN_PORT);
    this.tun.start({
      packet: (packet) => this.sendPacket(packet),
      slots: {
        layout: TUN_SLOT_LAYOUT,
        wrap: (bytes, address) => new TransportSlot(bytes, address),
        packet: (slot, length) => this.sendSlotPacket(slot, length),
      },
      flush: () => this.flushSends(),
      closed: (error) => void this.close(error),
    });
    this.log.verbose(`device started, UDP port ${this.bind.port}`);
  }

  /** Called once when the device stops (interface deleted, UDP socket failed (a UdpBindError), or close()). */
  onClose(listener: (error: Error | null) => void): void {
    this.closeListeners.push(listener);
  }

  /** Stop: drop sessions, close the port and the TUN device. Listeners hear of it once. */
  async close(error: Error | null = null): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const peer of this.peers.values()) peer.remove();
    this.identity?.destroy();
    this.identity = null;
    await this.bind.close();
    await this.tun.close();
    await this.cryptoPool?.close();
    for (const listener of this.closeListeners) listener(error);
  }

  /** The UDP receive side's GRO figures and drops (joined datagrams split, malformed, truncated, no ring room). */
  get udpReceiveCounters(): UdpReceiveCounters {
    return this.bind.receiveCounters;
  }

  get listenPort(): number {
    return this.bind.port;
  }

  /** Threads running the packet AEAD now (0: inline on the main thread). */
  get cryptoWorkers(): number {
    return this.cryptoPool?.size ?? 0;
  }

  get peerCount(): number {
    return this.peers.size;
  }

  // ---- outbound ----------------------------------------------------------

  private sendPacket(packet: Uint8Array): void {
    if (!ipHeaderFits(packet, packet.length)) {
      this.counters.tunMalformed++;
      return;
    }
    const peer = this.allowedIps.lookupPacketDestination(packet);
    if (peer === undefined || peer.tunnel === null) return;
    this.act(peer, peer.tunnel.encapsulate(packet), null);
  }

  /**
   * The fast path for packets the TUN driver read into a ring slot: seal in
   * place and queue for sendmmsg; anything unusual (no session yet, a rekey
   * due) takes the ordinary path above with a copy.
   */
  private sendSlotPacket(slot: TransportSlot, length: number): void {
    // packetArea runs to the slot's end: past `length` lie a previous packet's bytes, never to be routed on.
    if (!ipHeaderFits(slot.packetArea, length)) {
      this.counters.tunMalformed++;
      return;
    }
    const peer = this.allowedIps.lookupPacketDestination(slot.packetArea);
    if (peer === undefined || peer.tunnel === null) return;
    const endpoint = peer.endpoint;
    if (this.transportBatch !== null && endpoint !== null) {
      if (!this.transportBatch.seal(peer.tunnel, slot, length, peer, endpoint)) this.act(peer, peer.tunnel.encapsulate(slot.packetArea.subarray(0, length)), null);
      return;
    }
    const sealed = endpoint === null ? 0 : peer.tunnel.sealTransport(slot, length);
    if (sealed === 0) {
      this.act(peer, peer.tunnel.encapsulate(slot.packetArea.subarray(0, length)), null);
      return;
    }
    this.batchSender.add(slot, sealed, endpoint!, peer, peer.localSource);
    this.timersTouched(peer);
  }

  /** The fast paths moved this peer's timers: reschedule once, at the end of the batch. */
  private timersTouched(peer: Peer): void {
    if (peer.timersDirty) return;
    peer.timersDirty = true;
    this.peersWithNewTimers.push(peer);
  }

  /** A datagram the crypto workers sealed, in its turn. */
  private sealed(peer: Peer, slot: TransportSlot, datagramLength: number, endpoint: Endpoint): void {
    this.batchSender.add(slot, datagramLength, endpoint, peer, peer.localSource);
    this.timersTouched(peer);
  }

  private flushSends(): void {
    this.transportBatch?.finish();
    this.batchSender.flush();
    for (const peer of this.peersWithNewTimers) {
      peer.timersDirty = false;
      this.scheduleTimers(peer);
    }
    this.peersWithNewTimers.length = 0;
  }

  // ---- inbound -----------------------------------------------------------

  /**
   * A datagram the UDP reader put in a ring slot. Transport data takes the
   * fast path (opened in place, no copy); everything else, and transport
   * data the fast path declines, is copied out for the ordinary path.
   */
  private receiveSlot(slot: TransportSlot, length: number, meta: Uint8Array): void {
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
    const tunnel = this.indexTable.lookup(slot.view.getUint32(4, true));
    const peer = tunnel === undefined ? undefined : this.peerOfTunnel.get(tunnel);
    if (tunnel === undefined || peer === undefined || peer.tunnel !== tunnel) return false;
    if (this.transportBatch !== null) return this.transportBatch.open(tunnel, slot, length, peer, meta);
    const plaintextLength = tunnel.openTransport(slot, length);
    if (plaintextLength === OPEN_FAILED) {
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
  private opened(peer: Peer, slot: TransportSlot, plaintextLength: number, meta: Uint8Array): void {
    if (!sockaddrMatches(peer.endpoint, meta)) peer.endpoint = endpointFromSockaddr(meta) ?? peer.endpoint;
    const local = localSourceOf(meta, peer.localSource);
    if (local !== peer.localSource) this.setLocalSource(peer, local);
    this.timersTouched(peer);
    if (plaintextLength > 0) this.deliver(peer, slot.plaintext(plaintextLength));
  }

  private droppedTransport(peer: Peer, reason: TransportDrop): void {
    if (reason === 'forged') this.counters.transportForged++;
    else if (reason === 'replayed') this.counters.transportReplayed++;
    else this.counters.cryptoLost++;
    this.log.verbose(`${peerLogName(peer.publicKey)}: transport data dropped (${reason})`);
  }

  private receiveDatagram(data: Uint8Array, source: Endpoint, local: LocalSource | null): void {
    switch (messageType(data)) {
      case 'initiation':
        this.receiveInitiation(data, source, local);
        return;
      case 'response':
        if (!this.admitHandshake(data, source)) return;
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
   * answer) to drop; true means the message may cost X25519 work.
   */
  private admitHandshake(data: Uint8Array, source: Endpoint): boolean {
    if (this.identity === null) return false;
    const checker = this.identity.cookieChecker;
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
      this.bind.send(checker.createReply(data, senderIndex, sourceBytes), source);
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
    if (!this.admitHandshake(data, source)) return;
    const message = parseInitiation(data)!;
    const start = readInitiation(this.identity!, message);
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
    this.act(peer, tunnel.decapsulate(data), source, local);
  }

  /** Carry out what a Tunnel asked for. `source` is where the datagram came from, if any, and `local` where it arrived. */
  private act(peer: Peer, out: TunnelOutput, source: Endpoint | null, local: LocalSource | null = null): void {
    if (out.error !== null) this.log.verbose(`${peerLogName(peer.publicKey)}: ${out.error.code}: ${out.error.message}`);
    if (out.cookieReply !== null && source !== null) this.bind.send(out.cookieReply, source);
    if (out.authenticated && source !== null) {
      if (!endpointsEqual(peer.endpoint, source)) peer.endpoint = source;
      if (!sameLocalSource(peer.localSource, local)) this.setLocalSource(peer, local);
    }
    if (out.network.length > 0) {
      if (peer.endpoint === null) this.log.verbose(`${peerLogName(peer.publicKey)} has no endpoint; ${out.network.length} datagram(s) dropped`);
      else {
        for (const datagram of out.network) {
          if (datagram[0] !== MESSAGE_TRANSPORT_TYPE) this.log.verbose(`${peerLogName(peer.publicKey)}: sending ${HANDSHAKE_MESSAGE_NAMES[datagram[0]!] ?? 'message'} to ${formatEndpoint(peer.endpoint)}`);
          this.bind.send(datagram, peer.endpoint, () => (peer.txBytes += datagram.length), undefined, peer.sourceRoute ?? undefined);
        }
      }
    }
    if (out.tunnel !== null) this.deliver(peer, out.tunnel);
    this.scheduleTimers(peer);
  }

  /** Remember where the peer's packets arrive (null: let the kernel choose), as a route for the bind's single sends too. */
  private setLocalSource(peer: Peer, local: LocalSource | null): void {
    peer.localSource = local;
    peer.sourceRoute = local === null ? null : { source: local, gone: () => this.setLocalSource(peer, null) };
  }

  private deliver(peer: Peer, plaintext: Uint8Array): void {
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

  // ---- timers ------------------------------------------------------------

  private scheduleTimers(peer: Peer): void {
    const tunnel = peer.tunnel;
    if (tunnel === null || this.closed) return;
    const deadline = tunnel.nextDeadline();
    if (deadline === null) return;
    // A pending earlier (or equal) timeout will reschedule when it fires.
    if (peer.timerDeadline !== null && peer.timerDeadline <= deadline) return;
    peer.cancelTimer();
    peer.timerDeadline = deadline;
    peer.timer = setTimeout(() => {
      peer.timer = null;
      peer.timerDeadline = null;
      if (peer.tunnel === tunnel) this.act(peer, tunnel.updateTimers(), null);
    }, Math.max(0, Math.ceil(deadline - this.clock.now())));
  }

  // ---- NAT traversal hooks -----------------------------------------------
  // The device's own UDP socket carries STUN and hole punching, so the
  // mapping a NAT made for it is the one WireGuard uses.

  /** See non-WireGuard datagrams arriving on the port. Returns a function that removes the handler. */
  addDatagramInterceptor(interceptor: DatagramInterceptor): () => void {
    this.interceptors.push(interceptor);
    return () => {
      const at = this.interceptors.indexOf(interceptor);
      if (at >= 0) this.interceptors.splice(at, 1);
    };
  }

  /** Send a datagram from the WireGuard port. Rejects when the socket refuses it. */
  sendDatagram(datagram: Uint8Array, endpoint: Endpoint): Promise<void> {
    return new Promise((resolve, reject) => this.bind.send(datagram, endpoint, resolve, reject));
  }

  /** The peer's endpoint, handshake time and counters; null for an unknown key. */
  peerStatus(publicKey: Uint8Array): PeerStatus | null {
    const peer = this.peers.get(Buffer.from(publicKey).toString('hex'));
    if (peer === undefined) return null;
    return { endpoint: peer.endpoint, lastHandshakeTimeMs: peer.lastHandshakeTime, rxBytes: peer.rxBytes, txBytes: peer.txBytes };
  }

  /**
   * Point a configured peer at `endpoint` (as `wg set … endpoint` does), and
   * let the next handshake initiation go there at once: one sent within the
   * last REKEY_TIMEOUT went to the old endpoint (or nowhere). Returns false
   * for an unknown key.
   */
  setPeerEndpoint(publicKey: Uint8Array, endpoint: Endpoint): boolean {
    const peer = this.peers.get(Buffer.from(publicKey).toString('hex'));
    if (peer === undefined) return false;
    if (!endpointsEqual(peer.endpoint, endpoint)) {
      peer.tunnel?.endpointChanged();
      this.setLocalSource(peer, null);
    }
    peer.endpoint = endpoint;
    return true;
  }

  /**
   * Start a handshake with the peer now (NAT traversal probes a candidate
   * with one). Returns true when an initiation went out; false for an unknown
   * key, no private key, no endpoint, or one sent within REKEY_TIMEOUT.
   */
  initiateHandshake(publicKey: Uint8Array): boolean {
    const peer = this.peers.get(Buffer.from(publicKey).toString('hex'));
    if (peer === undefined || peer.tunnel === null || peer.endpoint === null) return false;
    const out = peer.tunnel.initiateHandshake();
    const sent = out.network.length > 0;
    this.act(peer, out, null);
    return sent;
  }

  // ---- configuration (UAPI) ----------------------------------------------

  get(): UapiDeviceState {
    return {
      privateKey: this.identity?.privateKey ?? null,
      listenPort: this.bind.port,
      fwmark: this.bind.fwmark,
      peers: [...this.peers.values()].map((peer) => ({
        publicKey: peer.publicKey,
        presharedKey: isAllZero(peer.presharedKey) ? null : peer.presharedKey,
        endpoint: peer.endpoint,
        lastHandshakeTimeMs: peer.lastHandshakeTime,
        rxBytes: peer.rxBytes,
        txBytes: peer.txBytes,
        persistentKeepaliveInterval: peer.persistentKeepaliveInterval,
        allowedIps: this.allowedIps.entriesForPeer(peer),
      })),
    };
  }

  /**
   * Apply a parsed `set=1` request. Steps that can fail (binding the port,
   * setting the fwmark) come first, so a failure leaves the rest untouched.
   */
  async set(request: UapiSetRequest): Promise<void> {
    if (request.listenPort !== undefined && request.listenPort !== this.bind.port) {
      try {
        await this.bind.open(request.listenPort);
      } catch (error) {
        const inUse = error instanceof PlatformError && error.code === 'EADDRINUSE';
        throw new UapiError(inUse ? EADDRINUSE : EIO, (error as Error).message);
      }
    }
    if (request.fwmark !== undefined && request.fwmark !== this.bind.fwmark) {
      try {
        this.bind.setFwmark(request.fwmark);
      } catch (error) {
        throw new UapiError(EIO, (error as Error).message);
      }
    }
    if (request.privateKey !== undefined) this.setPrivateKey(request.privateKey);
    if (request.replacePeers) for (const peer of [...this.peers.values()]) this.removePeer(peer);
    for (const change of request.peers) this.applyPeerChange(change);
  }

  private setPrivateKey(privateKey: Uint8Array): void {
    if (this.identity !== null && Buffer.from(this.identity.privateKey).equals(privateKey)) return;
    const old = this.identity;
    this.identity = isAllZero(privateKey) ? null : new StaticIdentity(new Uint8Array(privateKey), undefined, this.clock);
    const ownKey = this.identity === null ? null : Buffer.from(this.identity.publicKey).toString('hex');
    for (const peer of [...this.peers.values()]) {
      // A peer with our own public key makes no sense; wireguard-go drops it too.
      if (peer.publicKeyHex === ownKey) this.removePeer(peer);
      else this.rebuildTunnel(peer);
    }
    // Every tunnel of the old key is closed now.
    old?.destroy();
  }

  private applyPeerChange(change: UapiSetRequest['peers'][number]): void {
    const hex = Buffer.from(change.publicKey).toString('hex');
    const ownKey = this.identity === null ? null : Buffer.from(this.identity.publicKey).toString('hex');
    if (hex === ownKey) {
      this.log.verbose('ignored a peer whose public key is our own');
      return;
    }
    let peer = this.peers.get(hex);
    if (change.remove) {
      if (peer !== undefined) this.removePeer(peer);
      return;
    }
    if (peer === undefined) {
      if (change.updateOnly) return;
      peer = new Peer(change.publicKey);
      this.peers.set(hex, peer);
      this.rebuildTunnel(peer);
    }
    if (change.presharedKey !== undefined) peer.setPresharedKey(change.presharedKey);
    if (change.endpoint !== undefined) {
      if (!endpointsEqual(peer.endpoint, change.endpoint)) this.setLocalSource(peer, null);
      peer.endpoint = change.endpoint;
    }
    if (change.replaceAllowedIps) this.allowedIps.removeByPeer(peer);
    for (const cidr of change.allowedIps) this.allowedIps.insert(cidr, peer);
    if (change.persistentKeepaliveInterval !== undefined) {
      const wasOff = peer.persistentKeepaliveInterval === 0;
      peer.setPersistentKeepalive(change.persistentKeepaliveInterval);
      // Like wireguard-go: turning keepalive on sends one now, which starts a handshake.
      if (wasOff && change.persistentKeepaliveInterval > 0 && peer.tunnel !== null) this.act(peer, peer.tunnel.sendKeepalive(), null);
    }
  }

  private rebuildTunnel(peer: Peer): void {
    try {
      peer.rebuildTunnel(this.identity, this.indexTable, this.tun.mtu, this.staging);
    } catch (error) {
      const reason = error instanceof NoiseError ? error.message : String(error);
      this.log.error(`${peerLogName(peer.publicKey)} cannot handshake: ${reason}`);
      return;
    }
    if (peer.tunnel !== null) this.peerOfTunnel.set(peer.tunnel, peer);
  }

  private removePeer(peer: Peer): void {
    peer.remove();
    this.allowedIps.removeByPeer(peer);
    this.peers.delete(peer.publicKeyHex);
  }
}
