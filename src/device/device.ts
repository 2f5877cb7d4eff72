/**
 * The device: one TUN interface, one UDP port, many peers.
 *
 * This file holds the device's lifecycle, its peers and their configuration
 * (UAPI get/set, the NAT traversal hooks), and the switch that carries out a
 * Tunnel's outputs on the reference path (ARCHITECTURE.md, the boringtun
 * model). The data path is in its parts: send.ts (TUN → allowed IPs → seal →
 * UDP batch), receive.ts (UDP → receiver index or handshake → open → TUN) and
 * timers.ts (each peer's next deadline, one setTimeout). The I/O thread fills
 * shared rings (TUN and UDP); everything here runs on the main thread.
 */
import type { Worker } from 'node:worker_threads';
import { IndexTable, MESSAGE_TRANSPORT_TYPE, NoiseError, StagingBudget, StaticIdentity, systemClock, TransportSlot, type Clock, type Tunnel, type TunnelOutput, isAllZero } from '../noise/index.js';
import type { TunDevice } from '../tun/index.js';
import { endpointsEqual, formatEndpoint, type Endpoint } from './addr.js';
import { AllowedIps } from './allowed-ips.js';
import { UdpBind } from './bind.js';
import { UdpBatchSender } from './udp-batch.js';
import { replyRoute, sameLocalSource } from './sticky-source.js';
import { type LocalSource, EADDRINUSE, EIO, PlatformError, errorMessage, type UdpReceiveCounters } from '../platform/index.js';
import { DEFAULT_LISTEN_PORT, TUN_SLOT_LAYOUT } from './constants.js';
import { DeviceCounters } from './counters.js';
import { TransportBatch } from './crypto-batch.js';
import { CryptoPool, cryptoWorkersFromEnvironment } from './crypto-pool.js';
import { peerLogName, type Logger } from './logger.js';
import { Peer } from './peer.js';
import { HandshakeBudget, HandshakeLoad, RateLimiter } from './ratelimiter.js';
import { HANDSHAKE_MESSAGE_NAMES, ReceivePath, type DatagramInterceptor } from './receive.js';
import { SendPath } from './send.js';
import { PeerTimers } from './timers.js';
import { UapiError, type UapiDeviceState, type UapiSetRequest } from './uapi.js';
import type { UapiHandler } from './uapi-server.js';

export type { DatagramInterceptor } from './receive.js';

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
  private readonly interceptors: DatagramInterceptor[] = [];
  private readonly timers: PeerTimers;
  private readonly sendPath: SendPath;
  private readonly receivePath: ReceivePath;
  /** Drops and refusals by reason. */
  readonly counters = new DeviceCounters();
  /** Packets waiting for handshakes, all peers together: bytes held and packets refused. */
  readonly staging: StagingBudget;
  /** The crypto workers; null when the AEAD runs inline. */
  private readonly cryptoPool: CryptoPool | null;
  private closed = false;
  private closeListeners: Array<(error: Error | null) => void> = [];

  constructor(options: DeviceOptions) {
    this.tun = options.tun;
    this.log = options.log;
    this.clock = options.clock ?? systemClock;
    this.staging = new StagingBudget(options.maxStagedBytes);
    const act = (peer: Peer, out: TunnelOutput, source: Endpoint | null, local: LocalSource | null): void => this.act(peer, out, source, local);
    this.timers = new PeerTimers(this.clock, (peer, out) => this.act(peer, out, null, null));
    this.bind = new UdpBind(
      {
        datagram: (slot, length, source) => this.receivePath.receiveSlot(slot, length, source),
        flush: () => this.sendPath.flush(),
        // A device without its UDP port is dead: close it, so onClose listeners hear why.
        closed: (error) => void this.close(error),
      },
      this.log,
    );
    const batchSender = new UdpBatchSender<Peer>(
      this.bind,
      this.log,
      (peer, bytes) => (peer.txBytes += bytes),
      (peer) => peer.setLocalSource(null),
    );
    const cryptoWorkers = options.cryptoWorkers ?? cryptoWorkersFromEnvironment(this.log);
    this.cryptoPool = cryptoWorkers > 0 ? new CryptoPool({ workers: cryptoWorkers, log: this.log }) : null;
    if (cryptoWorkers > 0) this.log.verbose(`packet crypto on ${cryptoWorkers} worker thread(s) and the main thread`);
    const transportBatch =
      this.cryptoPool === null
        ? null
        : new TransportBatch<Peer, Endpoint | Uint8Array>(this.cryptoPool, {
            sealed: (peer, slot, datagramLength, endpoint) => this.sendPath.sealed(peer, slot, datagramLength, endpoint as Endpoint),
            opened: (peer, slot, plaintextLength, source) => this.receivePath.opened(peer, slot, plaintextLength, source as Uint8Array),
            dropped: (peer, reason) => this.receivePath.droppedTransport(peer, reason),
          });
    const { allowedIps, counters, timers } = this;
    this.sendPath = new SendPath({ allowedIps, batchSender, transportBatch, timers, counters, act });
    this.receivePath = new ReceivePath({
      identity: () => this.identity,
      peers: this.peers,
      indexTable: this.indexTable,
      peerOfTunnel: this.peerOfTunnel,
      allowedIps,
      transportBatch,
      timers,
      counters,
      handshakeLoad: new HandshakeLoad(options.underLoadThreshold),
      handshakeBudget: new HandshakeBudget(options.handshakeBudget),
      rateLimiter: new RateLimiter(),
      interceptors: this.interceptors,
      bind: this.bind,
      tun: this.tun,
      log: this.log,
      clock: this.clock,
      act,
    });
  }

  /** Bind the UDP port and start reading the TUN device. */
  async start(): Promise<void> {
    await this.bind.open(DEFAULT_LISTEN_PORT);
    this.tun.start({
      packet: (packet) => this.sendPath.sendPacket(packet),
      slots: {
        layout: TUN_SLOT_LAYOUT,
        wrap: (bytes, address) => new TransportSlot(bytes, address),
        packet: (slot, length) => this.sendPath.sendSlotPacket(slot, length),
      },
      flush: () => this.sendPath.flush(),
      closed: (error) => void this.close(error),
      failed: (error) => this.log.error(`TUN receive: a handler failed (dropped, reading goes on): ${errorMessage(error)}`),
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
    this.timers.stop();
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

  /** The crypto worker threads running now (empty when the AEAD runs inline). */
  get cryptoWorkerThreads(): readonly Worker[] {
    return this.cryptoPool?.threads ?? [];
  }

  /** Crypto workers that exited (or stalled) and were replaced since start. */
  get cryptoWorkersReplaced(): number {
    return this.cryptoPool?.replaced ?? 0;
  }

  /** Packet batches the crypto workers shared in since start. */
  get cryptoBatchesShared(): number {
    return this.cryptoPool?.sharedBatches ?? 0;
  }

  get peerCount(): number {
    return this.peers.size;
  }

  // ---- the reference path ----------------------------------------------

  /** Carry out what a Tunnel asked for. `source` is where the datagram came from, if any, and `local` where it arrived. */
  private act(peer: Peer, out: TunnelOutput, source: Endpoint | null, local: LocalSource | null): void {
    if (out.error !== null) this.log.verbose(`${peerLogName(peer.publicKey)}: ${out.error.code}: ${out.error.message}`);
    if (out.cookieReply !== null && source !== null) this.bind.send(out.cookieReply, source, undefined, undefined, replyRoute(local));
    if (out.authenticated && source !== null) {
      if (!endpointsEqual(peer.endpoint, source)) peer.endpoint = source;
      if (!sameLocalSource(peer.localSource, local)) peer.setLocalSource(local);
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
    if (out.tunnel !== null) this.receivePath.deliver(peer, out.tunnel);
    this.timers.schedule(peer);
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
      peer.setLocalSource(null);
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
    this.act(peer, out, null, null);
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
      if (!endpointsEqual(peer.endpoint, change.endpoint)) peer.setLocalSource(null);
      peer.endpoint = change.endpoint;
    }
    if (change.replaceAllowedIps) this.allowedIps.removeByPeer(peer);
    for (const cidr of change.allowedIps) this.allowedIps.insert(cidr, peer);
    if (change.persistentKeepaliveInterval !== undefined) {
      const wasOff = peer.persistentKeepaliveInterval === 0;
      peer.setPersistentKeepalive(change.persistentKeepaliveInterval);
      // Like wireguard-go: turning keepalive on sends one now, which starts a handshake.
      if (wasOff && change.persistentKeepaliveInterval > 0 && peer.tunnel !== null) this.act(peer, peer.tunnel.sendKeepalive(), null, null);
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
