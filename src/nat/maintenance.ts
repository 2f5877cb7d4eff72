/**
 * The NAT maintenance tick (the NatTick request)
 * and the NAT status view (NatStatusWire), for a node's global device.
 *
 * tick():
 *  - First tick (no traversal yet):
 *    1. the config (setConfig's, else defaultNatConfig()); disabled → nothing;
 *    2. a configured relay server that is not running is started; a failure
 *       only warns (and is not retried once NAT is up);
 *    3. new NatTraversal + gatherCandidates(); on error warn and return
 *       (the next tick tries again); on success keep it, note the refresh
 *       time, connect the known peers.
 *  - Every tick, the first included: refresh() (an error fails the tick with
 *    "NAT maintenance tick failed: …"), note the refresh time, connect the
 *    known peers again.
 * Connecting the known peers: every peer with candidates whose last
 * handshake is older than 75 s (3 × the 25 s keepalive), all at once; a
 * success records the connection type, a failure is logged (verbose).
 * A tick called while one runs waits for it and returns its outcome.
 *
 * setPeerCandidates() takes the wire candidates of a peer (AddPeer's);
 * an empty or all-invalid list removes the entry. removePeer() forgets the
 * candidates and the connection type. setConfig() replaces the config; a
 * running traversal with another config is closed so the next tick starts
 * over with the new one (null keeps the earlier config: the control plane sends null for "unchanged").
 */
import { formatEndpoint, type Device, peerLogName, silentLogger, type Logger } from '../device/index.js';
import { decodeKey } from '../noise/index.js';
import { candidateToWire, candidatesFromWire, type Candidate, type CandidateWire } from './candidates.js';
import { defaultNatConfig, type NatConfig } from './config.js';
import { RECONNECT_AFTER_MS } from './constants.js';
import type { ConnectionType } from './hole-punch.js';
import { RelayServer } from './relay/server.js';
import { NatTraversal } from './traversal.js';

/** NatPeerWire in camelCase. */
export interface NatPeerStatusWire {
  /** The peer's base64 public key. */
  nodeId: string;
  connectionType: ConnectionType;
  /** The device's endpoint for the peer ("ip:port"), null when it has none. */
  remoteEndpoint: string | null;
}

/** NatStatusWire in camelCase. */
export interface NatStatusWire {
  candidates: CandidateWire[];
  peers: NatPeerStatusWire[];
  /** Unix seconds of the last successful gather/refresh; 0 before the first. */
  lastRefresh: number;
}

export class NatMaintenanceError extends Error {
  override readonly name = 'NatMaintenanceError';
}

export interface NatMaintenanceOptions {
  log?: Logger;
  /** Wall clock in ms (tests). */
  now?: () => number;
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

export class NatMaintenance {
  private config: NatConfig | null;
  private natTraversal: NatTraversal | null = null;
  private relay: RelayServer | null = null;
  private relayEndpoint: string | null = null;
  private readonly peerCandidates = new Map<string, Candidate[]>();
  private readonly connectionTypes = new Map<string, ConnectionType>();
  private lastRefreshSecs = 0;
  private running: Promise<void> | null = null;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(
    private readonly device: Device,
    config: NatConfig | null = null,
    options: NatMaintenanceOptions = {},
  ) {
    this.config = config;
    this.log = options.log ?? silentLogger;
    this.now = options.now ?? Date.now;
  }

  /** The running traversal (null before the first successful tick). */
  get traversal(): NatTraversal | null {
    return this.natTraversal;
  }

  /** The relay server this node runs, and the address it reported (null when none runs). */
  get relayServer(): { server: RelayServer; endpoint: string } | null {
    return this.relay === null ? null : { server: this.relay, endpoint: this.relayEndpoint! };
  }

  setConfig(config: NatConfig | null): void {
    if (config === null) return;
    const changed = JSON.stringify(config) !== JSON.stringify(this.config);
    this.config = config;
    if (changed && this.natTraversal !== null) {
      void this.natTraversal.close();
      this.natTraversal = null;
    }
  }

  /** Record a peer's advertised candidates (wire form); empty or all invalid → the entry is removed. */
  setPeerCandidates(publicKey: string | Uint8Array, wire: readonly unknown[]): void {
    const name = this.keyName(publicKey);
    const candidates = candidatesFromWire(wire);
    if (candidates.length < wire.length) this.log.verbose(`NAT: dropped ${wire.length - candidates.length} invalid candidate(s) of ${peerLogName(name)}`);
    if (candidates.length === 0) this.peerCandidates.delete(name);
    else this.peerCandidates.set(name, candidates);
  }

  /** Forget a peer's candidates and connection type. */
  removePeer(publicKey: string | Uint8Array): void {
    const name = this.keyName(publicKey);
    this.peerCandidates.delete(name);
    this.connectionTypes.delete(name);
  }

  /** The candidates recorded for a peer (empty when none). */
  candidatesOf(publicKey: string | Uint8Array): Candidate[] {
    return [...(this.peerCandidates.get(this.keyName(publicKey)) ?? [])];
  }

  /** One maintenance round (see the file comment). Rejects with NatMaintenanceError when the refresh fails. */
  tick(): Promise<void> {
    if (this.running !== null) return this.running;
    this.running = this.runTick().finally(() => (this.running = null));
    return this.running;
  }

  status(): NatStatusWire {
    const peers: NatPeerStatusWire[] = [];
    for (const [nodeId, connectionType] of this.connectionTypes) {
      const endpoint = this.device.peerStatus(decodeKey(nodeId))?.endpoint ?? null;
      peers.push({ nodeId, connectionType, remoteEndpoint: endpoint === null ? null : formatEndpoint(endpoint) });
    }
    return {
      candidates: (this.natTraversal?.localCandidates() ?? []).map(candidateToWire),
      peers,
      lastRefresh: this.lastRefreshSecs,
    };
  }

  /** Stop the traversal and the relay server. */
  async close(): Promise<void> {
    const traversal = this.natTraversal;
    this.natTraversal = null;
    this.relay?.close();
    this.relay = null;
    await traversal?.close();
  }

  private async runTick(): Promise<void> {
    if (this.natTraversal === null) {
      const config = this.config ?? defaultNatConfig();
      if (!config.enabled) return;
      if (config.relayServer !== undefined && this.relay === null) await this.startRelayServer(config);
      const traversal = new NatTraversal(config, this.device, this.log);
      try {
        await traversal.gatherCandidates();
      } catch (error) {
        this.log.error(`NAT: gathering candidates failed (next tick tries again): ${(error as Error).message}`);
        await traversal.close();
        return;
      }
      this.natTraversal = traversal;
      this.lastRefreshSecs = Math.floor(this.now() / 1000);
      await this.connectKnownPeers();
    }
    const traversal = this.natTraversal;
    if (traversal === null) return;
    try {
      if (await traversal.refresh()) this.log.verbose('NAT: our candidates changed');
    } catch (error) {
      throw new NatMaintenanceError(`NAT maintenance tick failed: ${(error as Error).message}`);
    }
    this.lastRefreshSecs = Math.floor(this.now() / 1000);
    await this.connectKnownPeers();
  }

  private async startRelayServer(config: NatConfig): Promise<void> {
    let server: RelayServer | null = null;
    try {
      // No default credential: the constructor refuses a missing or weak one, naming the option.
      server = new RelayServer(config.relayServer!, config.clusterRelayCredential ?? '', this.log);
      const endpoint = await server.start();
      this.relay = server;
      this.relayEndpoint = formatEndpoint(endpoint);
      this.log.verbose(`NAT: relay server running at ${this.relayEndpoint}`);
    } catch (error) {
      server?.close();
      this.log.error(`NAT: starting the relay server on port ${config.relayServer!.listenPort} failed: ${(error as Error).message}`);
    }
  }

  private async connectKnownPeers(): Promise<void> {
    const traversal = this.natTraversal;
    if (traversal === null || this.peerCandidates.size === 0) return;
    const cutoff = this.now() - RECONNECT_AFTER_MS;
    const attempts: Promise<void>[] = [];
    for (const [name, candidates] of [...this.peerCandidates]) {
      const key = decodeKey(name);
      const status = this.device.peerStatus(key);
      if (status !== null && status.lastHandshakeTimeMs >= cutoff) continue;
      attempts.push(
        traversal.connectToPeer(key, candidates).then(
          (type) => {
            if (this.peerCandidates.has(name)) this.connectionTypes.set(name, type);
          },
          (error: Error) => this.log.verbose(`NAT: connecting to ${peerLogName(name)} failed: ${error.message}`),
        ),
      );
    }
    await Promise.all(attempts);
  }

  private keyName(publicKey: string | Uint8Array): string {
    const bytes = typeof publicKey === 'string' ? decodeKey(publicKey, 'peer public key') : publicKey;
    if (bytes.length !== 32) throw new NatMaintenanceError(`a peer public key is 32 bytes, got ${bytes.length}`);
    return b64(bytes);
  }
}
