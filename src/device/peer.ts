/**
 * A configured peer: its key, endpoint and settings, and the protocol Tunnel
 * that carries its sessions. The Tunnel is rebuilt when the device's private
 * key changes; the transfer counters survive that.
 */
import { wipe, KEY_SIZE, Tunnel, type IndexTable, type StagingBudget, type StaticIdentity } from '../noise/index.js';
import type { Endpoint } from './addr.js';
import type { LocalSource } from '../platform/index.js';
import { cancelPeerTimer } from './timers.js';

const NO_PRESHARED_KEY = new Uint8Array(KEY_SIZE);

export class Peer {
  readonly publicKeyHex: string;
  tunnel: Tunnel | null = null;
  endpoint: Endpoint | null = null;
  /** The local address (and interface) the peer's packets arrive on: ours leave from it (sticky-source.ts). */
  localSource: LocalSource | null = null;
  /** localSource as a bind route, made when it changes (so sends allocate nothing). */
  sourceRoute: { source: LocalSource; gone(): void } | null = null;
  presharedKey: Uint8Array = NO_PRESHARED_KEY;
  persistentKeepaliveInterval = 0;
  /** The pending updateTimers() call and the deadline it is for (timers.ts arms and disarms it). */
  timer: NodeJS.Timeout | null = null;
  timerDeadline: number | null = null;
  /** Set while a fast path owes this peer a timer reschedule (PeerTimers.touched). */
  timersDirty = false;
  // Counters of tunnels this peer had before the current one.
  private rxBefore = 0;
  private lastHandshakeBefore = 0;

  constructor(readonly publicKey: Uint8Array) {
    this.publicKeyHex = Buffer.from(publicKey).toString('hex');
  }

  get rxBytes(): number {
    return this.rxBefore + (this.tunnel?.rxBytes ?? 0);
  }

  /** Bytes of datagrams the socket actually sent to the peer (as wireguard-go counts: after a successful send). */
  txBytes = 0;

  /** Wall-clock ms of the latest handshake, 0 when none. */
  get lastHandshakeTime(): number {
    return this.tunnel?.lastHandshakeWallTime || this.lastHandshakeBefore;
  }

  /**
   * (Re)build the Tunnel for `identity` (null: the device has no private key).
   * Throws NoiseError for a peer key no handshake can use (a low-order point).
   */
  rebuildTunnel(identity: StaticIdentity | null, indexTable: IndexTable<Tunnel>, mtu: number, stagingBudget: StagingBudget): void {
    this.dropTunnel();
    if (identity === null) return;
    this.tunnel = new Tunnel({
      identity,
      peerPublicKey: this.publicKey,
      presharedKey: this.presharedKey,
      persistentKeepaliveSeconds: this.persistentKeepaliveInterval,
      indexTable,
      clock: identity.clock,
      mtu,
      stagingBudget,
    });
  }

  setPresharedKey(key: Uint8Array): void {
    this.wipePresharedKey();
    this.presharedKey = new Uint8Array(key);
    if (this.tunnel !== null) this.tunnel.presharedKey = this.presharedKey;
  }

  setPersistentKeepalive(seconds: number): void {
    this.persistentKeepaliveInterval = seconds;
    if (this.tunnel !== null) this.tunnel.persistentKeepaliveSeconds = seconds;
  }

  /**
   * Remember where the peer's packets arrive (null: let the kernel choose),
   * also as a route for the bind's single sends.
   */
  setLocalSource(local: LocalSource | null): void {
    this.localSource = local;
    this.sourceRoute = local === null ? null : { source: local, gone: () => this.setLocalSource(null) };
  }

  /** Forget sessions and timers (peer removed, or its tunnel is being replaced). */
  dropTunnel(): void {
    cancelPeerTimer(this);
    if (this.tunnel === null) return;
    this.rxBefore += this.tunnel.rxBytes;
    this.lastHandshakeBefore = this.tunnel.lastHandshakeWallTime || this.lastHandshakeBefore;
    this.tunnel.close();
    this.tunnel = null;
  }

  /** The peer is removed: sessions and timers go, and its pre-shared key is zeroed. */
  remove(): void {
    this.dropTunnel();
    this.wipePresharedKey();
    this.presharedKey = NO_PRESHARED_KEY;
  }

  private wipePresharedKey(): void {
    // The shared all-zero default needs no wiping (and must stay zero).
    if (this.presharedKey !== NO_PRESHARED_KEY) wipe(this.presharedKey);
  }
}
