/**
 * NatTraversal: one node's NAT traversal around its WireGuard device.
 *
 *  - gatherCandidates(): host candidates (every global address of a
 *    non-virtual interface, with the device's port), server-reflexive ones
 *    (a STUN Binding request to every configured server, sent from the
 *    device's own port so the mapping is WireGuard's), and relay ones (a TURN
 *    allocation per configured TURN server; a registration with every
 *    built-in relay in config.relays, advertised as that relay's address).
 *  - refresh(): the same again; true when the candidate set changed (the
 *    NAT gave us a new mapping, an address came or went, a relay came up).
 *    Failed TURN allocations and relay registrations are retried here.
 *  - connectToPeer(): permits the peer's addresses on our TURN allocations
 *    (so the peer can use our relayed address), then hole-punch.ts's attempt
 *    with relay routes: a relay candidate that is one of our built-in relays
 *    goes through its RelayClient; any other is first used as it is (a TURN
 *    relayed address), then as a built-in relay we register with on demand.
 *  - A ProbeResponder on the device's port answers the peers' probes.
 *
 * Individual STUN, TURN and relay failures are logged and leave the other
 * candidates standing; gathering fails only when it found no candidate at
 * all or the device is not ready (no port, no private key).
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { endpointsEqual, formatEndpoint, parseEndpoint, type Endpoint, type Device, silentLogger, type Logger } from '../device/index.js';
import { publicKeyOf } from '../noise/index.js';
import { candidateKey, gatherHostCandidates, makeCandidate, type Candidate } from './candidates.js';
import type { NatConfig, TurnServerConfig } from './config.js';
import { STUN_GATHER_TIMEOUT_MS } from './constants.js';
import { devicePort, type DatagramPort } from './datagram-port.js';
import { ProbeResponder, connectToPeer as punch, type ConnectionType } from './hole-punch.js';
import { RelayClient } from './relay/client.js';
import { StunClient, resolveStunServer } from './stun/client.js';
import { TurnClient } from './turn/client.js';

export class NatTraversalError extends Error {
  override readonly name = 'NatTraversalError';
}

interface TurnState {
  config: TurnServerConfig;
  client: TurnClient | null;
}

interface RelayState {
  server: Endpoint;
  client: RelayClient;
  ready: Promise<void>;
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

/** "ip:port", "[v6]:port" or "name:port" → an endpoint (names through the system resolver). */
export async function resolveHostPort(text: string, what: string): Promise<Endpoint> {
  try {
    return parseEndpoint(text);
  } catch {
    // not a literal: a name
  }
  const colon = text.lastIndexOf(':');
  const host = text.slice(0, colon);
  const port = Number(text.slice(colon + 1));
  if (colon <= 0 || !/^\d{1,5}$/.test(text.slice(colon + 1)) || port < 1 || port > 65535 || isIP(host) !== 0 || !/^[A-Za-z0-9._-]+$/.test(host)) {
    throw new NatTraversalError(`${what} '${text}' is not host:port`);
  }
  try {
    const found = await lookup(host);
    return { family: found.family === 6 ? 6 : 4, address: found.address, port };
  } catch (error) {
    throw new NatTraversalError(`${what} '${text}': cannot resolve '${host}': ${(error as Error).message}`);
  }
}

export class NatTraversal {
  private readonly port: DatagramPort;
  private readonly stun: StunClient;
  private probes: ProbeResponder | null = null;
  private localKey: Uint8Array | null = null;
  private readonly turns: TurnState[];
  private readonly relays = new Map<string, RelayState>();
  private candidates: Candidate[] = [];
  private readonly inFlight = new Map<string, Promise<ConnectionType>>();
  private readonly abort = new AbortController();
  private closed = false;

  constructor(
    readonly config: NatConfig,
    private readonly device: Device,
    private readonly log: Logger = silentLogger,
  ) {
    this.port = devicePort(device);
    this.stun = new StunClient(this.port, { log });
    this.turns = config.turnServers.map((turn) => ({ config: turn, client: null }));
  }

  /** Our candidates as last gathered (a copy). */
  localCandidates(): Candidate[] {
    return this.candidates.map((candidate) => ({ ...candidate, address: { ...candidate.address } }));
  }

  /** Gather host, server-reflexive and relay candidates (see the file comment). */
  async gatherCandidates(): Promise<Candidate[]> {
    this.requireOpen();
    const port = this.device.listenPort;
    if (port === 0) throw new NatTraversalError('the WireGuard device has no UDP port yet; start it before gathering candidates');
    const key = this.ownPublicKey();
    if (this.probes === null || this.localKey === null || !Buffer.from(this.localKey).equals(key)) {
      this.probes?.close();
      this.localKey = key;
      this.probes = new ProbeResponder(this.port, key, (peer) => this.device.peerStatus(peer) !== null, this.log);
    }
    const [host, reflexive, turn, relay] = await Promise.all([
      gatherHostCandidates(port, { excludeInterfaces: [this.device.tun.name] }).catch((error: Error) => {
        this.log.error(`NAT: listing local addresses failed: ${error.message}`);
        return [] as Candidate[];
      }),
      this.reflexiveCandidates(),
      this.turnCandidates(),
      this.relayCandidates(),
    ]);
    const all: Candidate[] = [...host];
    for (const candidate of reflexive) {
      // Not behind a NAT: the reflexive address is one of our own.
      if (all.some((known) => endpointsEqual(known.address, candidate.address))) continue;
      all.push(candidate);
    }
    all.push(...turn, ...relay);
    const unique = new Map(all.map((candidate) => [candidateKey(candidate), candidate]));
    this.candidates = [...unique.values()];
    if (this.candidates.length === 0) throw new NatTraversalError('no NAT traversal candidate found: no global address, no STUN answer, no relay');
    this.log.verbose(`NAT: candidates ${this.candidates.map(candidateKey).join(', ')}`);
    return this.localCandidates();
  }

  /** Gather again; resolves true when the candidate set changed. */
  async refresh(): Promise<boolean> {
    const before = new Set(this.candidates.map(candidateKey));
    const after = await this.gatherCandidates();
    return after.length !== before.size || after.some((candidate) => !before.has(candidateKey(candidate)));
  }

  /**
   * Make the device reach `peerPublicKey` through its candidates; resolves
   * with how. One attempt per peer at a time: a second call while one runs
   * gets the same result.
   */
  connectToPeer(peerPublicKey: Uint8Array, candidates: readonly Candidate[]): Promise<ConnectionType> {
    const name = b64(peerPublicKey);
    const running = this.inFlight.get(name);
    if (running !== undefined) return running;
    const attempt = this.connect(peerPublicKey, candidates).finally(() => this.inFlight.delete(name));
    this.inFlight.set(name, attempt);
    return attempt;
  }

  /** Stop everything: attempts in progress end, TURN allocations are released, relay registrations dropped. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.stun.close();
    this.probes?.close();
    for (const relay of this.relays.values()) relay.client.close();
    this.relays.clear();
    await Promise.allSettled(this.turns.map((turn) => turn.client?.close()));
    await Promise.allSettled([...this.inFlight.values()]);
  }

  // ---- connecting ----------------------------------------------------------------

  private async connect(peerPublicKey: Uint8Array, candidates: readonly Candidate[]): Promise<ConnectionType> {
    this.requireOpen();
    await this.permitOnTurn(candidates);
    return punch(this.device, peerPublicKey, candidates, {
      holePunchTimeoutSecs: this.config.holePunchTimeoutSecs,
      maxCandidatePairs: this.config.maxCandidatePairs,
      probes: this.probes,
      relayRoutes: (candidate, peer) => this.relayRoutes(candidate, peer),
      log: this.log,
      signal: this.abort.signal,
    });
  }

  /** Let the peer's addresses use our TURN relayed addresses (a permission is per IP). */
  private async permitOnTurn(candidates: readonly Candidate[]): Promise<void> {
    const addresses = [...new Set(candidates.filter((candidate) => candidate.type !== 'relay').map((candidate) => candidate.address.address))];
    const allocated = this.turns.filter((turn) => turn.client?.relayedAddress != null);
    await Promise.all(
      allocated.flatMap((turn) =>
        addresses.map((address) =>
          turn.client!.permit(address).catch((error: Error) => this.log.verbose(`NAT: TURN permission for ${address} at ${turn.config.address}: ${error.message}`)),
        ),
      ),
    );
  }

  private async *relayRoutes(candidate: Candidate, peerPublicKey: Uint8Array): AsyncIterable<Endpoint> {
    const known = this.relays.get(formatEndpoint(candidate.address));
    if (known !== undefined) {
      await known.ready;
      yield await known.client.routePeer(peerPublicKey);
      return;
    }
    // Unknown to us: a TURN relayed address is used as it is ...
    yield candidate.address;
    // ... and a built-in relay the peer registered with needs a registration of ours.
    const relay = this.startRelay(candidate.address);
    await relay.ready;
    yield await relay.client.routePeer(peerPublicKey);
  }

  // ---- gathering -------------------------------------------------------------------

  private async reflexiveCandidates(): Promise<Candidate[]> {
    const results = await Promise.all(
      this.config.stunServers.map(async (server) => {
        try {
          const endpoint = await resolveStunServer(server.address);
          const mapped = await this.stun.bindingRequest(endpoint, { timeoutMs: STUN_GATHER_TIMEOUT_MS });
          return makeCandidate('server-reflexive', mapped);
        } catch (error) {
          this.log.error(`NAT: STUN server ${server.label ?? server.address}: ${(error as Error).message}`);
          return null;
        }
      }),
    );
    return results.filter((candidate): candidate is Candidate => candidate !== null);
  }

  private async turnCandidates(): Promise<Candidate[]> {
    const out = await Promise.all(
      this.turns.map(async (turn) => {
        if (turn.client?.relayedAddress != null) return makeCandidate('relay', turn.client.relayedAddress);
        try {
          const server = await resolveHostPort(turn.config.address.replace(/^turn:/i, ''), 'TURN server');
          turn.client = new TurnClient({ server, username: turn.config.username, password: turn.config.credential, devicePort: this.device.listenPort, log: this.log });
          return makeCandidate('relay', await turn.client.allocate());
        } catch (error) {
          this.log.error(`NAT: TURN server ${turn.config.address}: ${(error as Error).message}`);
          void turn.client?.close();
          turn.client = null;
          return null;
        }
      }),
    );
    return out.filter((candidate): candidate is Candidate => candidate !== null);
  }

  private async relayCandidates(): Promise<Candidate[]> {
    const out = await Promise.all(
      (this.config.relays ?? []).map(async (text) => {
        try {
          const server = await resolveHostPort(text, 'relay');
          const relay = this.startRelay(server);
          await relay.ready;
          return makeCandidate('relay', server);
        } catch (error) {
          this.log.error(`NAT: relay ${text}: ${(error as Error).message}`);
          return null;
        }
      }),
    );
    return out.filter((candidate): candidate is Candidate => candidate !== null);
  }

  /** The registration with `server` (started once; a failed one is forgotten so the next call retries). */
  private startRelay(server: Endpoint): RelayState {
    const name = formatEndpoint(server);
    const existing = this.relays.get(name);
    if (existing !== undefined) return existing;
    // The client proves the node key to the relay, so it needs the private key (it keeps a copy; the device may rotate it).
    const client = new RelayClient({ server, credential: this.config.clusterRelayCredential ?? '', localPrivateKey: this.ownPrivateKey(), devicePort: this.device.listenPort, log: this.log });
    const ready = client.start().catch((error: Error) => {
      if (this.relays.get(name)?.client === client) this.relays.delete(name);
      client.close();
      throw error;
    });
    ready.catch(() => undefined); // awaited by every user; this only keeps an unobserved failure quiet
    const state: RelayState = { server, client, ready };
    this.relays.set(name, state);
    return state;
  }

  private ownPublicKey(): Uint8Array {
    return publicKeyOf(this.ownPrivateKey());
  }

  private ownPrivateKey(): Uint8Array {
    const privateKey = this.device.get().privateKey;
    if (privateKey === null) throw new NatTraversalError('the WireGuard device has no private key; NAT traversal needs the node key');
    return privateKey;
  }

  private requireOpen(): void {
    if (this.closed) throw new NatTraversalError('NAT traversal is closed');
  }
}
