/**
 * Hole punching: make a WireGuard peer reachable through NATs, given the
 * candidates it advertised. Everything is sent from the device's own UDP
 * port, so the NAT mappings we open are the ones WireGuard then uses.
 *
 * One connect attempt:
 *  1. Direct phase (host and server-reflexive candidates, best first, at most
 *     maxCandidatePairs): every PROBE_INTERVAL_MS a small probe goes to every
 *     direct candidate. Probes open our NAT's mappings towards the peer (the
 *     "punch"); a tswg peer answers each probe addressed to its key, from its
 *     WireGuard port, so an answer proves a working path both ways (ICE's
 *     connectivity check). The first answered path (best candidate first)
 *     becomes the peer's endpoint and a handshake is started on it. A peer
 *     that does not speak probes (wireguard-go) gets the candidates one after
 *     the other, each for its share of holePunchTimeoutSecs, after
 *     PROBE_GRACE_MS without answers.
 *  2. Relay phase: each relay candidate in turn (a TURN relayed address is
 *     used as the endpoint as it is; a built-in relay is reached through the
 *     route the caller's relayRoutes() gives, e.g. RelayClient.routePeer).
 *  Success is the device's handshake time moving past what it was when the
 *  attempt began, whichever side started the handshake.
 *
 * The result names the path WireGuard ended up on (the device's endpoint,
 * which follows authenticated packets):
 *  - 'direct': one of the peer's host candidates (no NAT in front of the peer;
 *    a server-reflexive address equal to a host address counts as host);
 *  - 'hole-punched': a server-reflexive candidate, or an address no candidate
 *    named (peer-reflexive: the peer's NAT mapping towards us);
 *  - 'relayed': a relay candidate, or a loopback address (the local proxy of a
 *    relay or TURN client; in-process tests with loopback host candidates
 *    match those candidates first).
 *
 * Simultaneous initiations from both sides defeat each other (each response
 * meets a handshake state its own side already replaced) until a
 * retransmission 5 s later, so the side with the smaller public key yields:
 * on a probe-confirmed path (the peer runs tswg) and on relay routes it
 * waits YIELD_MS for the peer's handshake before starting its own (which it
 * then does, for a peer that is not connecting at the moment).
 *
 * The device sends at most one handshake initiation per REKEY_TIMEOUT (5 s),
 * so after a probe-confirmed switch the attempt waits HANDSHAKE_AFTER_SWITCH_MS
 * for the device's own retransmission, and each relay try gets at least
 * MIN_RELAY_ATTEMPT_MS.
 *
 * Probe wire format (74 bytes): kind (0xE1 probe, 0xE2 answer), version 1,
 * sender public key (32), target public key (32), transaction id (8; the
 * answer echoes it). Probes are not authenticated: they only pick which path
 * to try; the WireGuard handshake is what proves the peer.
 */
import { randomBytes } from 'node:crypto';
import { endpointsEqual, formatEndpoint, type Endpoint, type PeerStatus, peerLogName, silentLogger, type Logger } from '../device/index.js';
import { orderCandidates, type Candidate } from './candidates.js';
import {
  HANDSHAKE_AFTER_SWITCH_MS,
  HANDSHAKE_POLL_MS,
  MIN_RELAY_ATTEMPT_MS,
  PROBE_ANSWER_KIND,
  PROBE_GRACE_MS,
  PROBE_INTERVAL_MS,
  PROBE_KIND,
  PROBE_SIZE,
  PROBE_VERSION,
  YIELD_MS,
} from './constants.js';
import type { DatagramPort } from './datagram-port.js';

export type ConnectionType = 'direct' | 'hole-punched' | 'relayed';
export const CONNECTION_TYPES: readonly ConnectionType[] = Object.freeze(['direct', 'hole-punched', 'relayed']);

/** What hole punching needs of a device (src/device/device.ts Device has it all). */
export interface PunchableDevice {
  peerStatus(publicKey: Uint8Array): PeerStatus | null;
  setPeerEndpoint(publicKey: Uint8Array, endpoint: Endpoint): boolean;
  initiateHandshake(publicKey: Uint8Array): boolean;
}

export class ConnectError extends Error {
  override readonly name = 'ConnectError';
}

// ---- probe messages -----------------------------------------------------------

export interface ProbeMessage {
  kind: 'probe' | 'answer';
  sender: Uint8Array;
  target: Uint8Array;
  transaction: Uint8Array;
}

export function encodeProbe(message: ProbeMessage): Uint8Array {
  if (message.sender.length !== 32 || message.target.length !== 32 || message.transaction.length !== 8) {
    throw new RangeError('a probe carries two 32-byte public keys and an 8-byte transaction id');
  }
  const out = new Uint8Array(PROBE_SIZE);
  out[0] = message.kind === 'probe' ? PROBE_KIND : PROBE_ANSWER_KIND;
  out[1] = PROBE_VERSION;
  out.set(message.sender, 2);
  out.set(message.target, 34);
  out.set(message.transaction, 66);
  return out;
}

/** The probe in `bytes`, or null when it is not one (wrong size, kind or version). */
export function decodeProbe(bytes: Uint8Array): ProbeMessage | null {
  if (bytes.length !== PROBE_SIZE || bytes[1] !== PROBE_VERSION) return null;
  if (bytes[0] !== PROBE_KIND && bytes[0] !== PROBE_ANSWER_KIND) return null;
  return {
    kind: bytes[0] === PROBE_KIND ? 'probe' : 'answer',
    sender: bytes.slice(2, 34),
    target: bytes.slice(34, 66),
    transaction: bytes.slice(66, 74),
  };
}

/** A probe event about one peer: its answer to our probe, or its own probe reaching us. */
export interface ProbeEvent {
  kind: 'probe' | 'answer';
  from: Endpoint;
  transaction: Uint8Array;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

/**
 * The probe side of a node's port: answers every probe addressed to our key
 * from one of our peers (always, so that a peer's attempt works whenever it
 * runs; a stranger learns nothing, not even that tswg listens), consumes stray
 * probes for other keys, and tells connect attempts what arrived from their
 * peer. One per DatagramPort.
 */
export class ProbeResponder {
  private readonly watchers = new Map<string, Set<(event: ProbeEvent) => void>>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly port: DatagramPort,
    readonly localPublicKey: Uint8Array,
    /** Whether a key is one of our peers: only their probes are answered (no oracle for strangers scanning for tswg). */
    private readonly isKnownPeer: (publicKey: Uint8Array) => boolean,
    private readonly log: Logger = silentLogger,
  ) {
    this.unsubscribe = port.subscribe((datagram, from) => this.receive(datagram, from));
  }

  /** Send a probe for `peerPublicKey` to `to` in the background; returns its transaction id (send errors are logged). */
  probe(peerPublicKey: Uint8Array, to: Endpoint): Uint8Array {
    const transaction = new Uint8Array(randomBytes(8));
    void this.send({ kind: 'probe', sender: this.localPublicKey, target: peerPublicKey, transaction }, to);
    return transaction;
  }

  /** Hear about probes and answers from `peerPublicKey`; returns a function that stops. */
  watch(peerPublicKey: Uint8Array, listener: (event: ProbeEvent) => void): () => void {
    const key = hex(peerPublicKey);
    let set = this.watchers.get(key);
    if (set === undefined) this.watchers.set(key, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.watchers.delete(key);
    };
  }

  close(): void {
    this.unsubscribe();
    this.watchers.clear();
  }

  private receive(datagram: Uint8Array, from: Endpoint): boolean {
    const message = decodeProbe(datagram);
    if (message === null) return false;
    if (!Buffer.from(message.target).equals(this.localPublicKey)) {
      this.log.verbose(`NAT: dropped a ${message.kind} from ${formatEndpoint(from)} meant for another key`);
      return true;
    }
    if (!this.isKnownPeer(message.sender)) {
      this.log.verbose(`NAT: dropped a ${message.kind} from ${formatEndpoint(from)}: its sender is not a peer of ours`);
      return true;
    }
    if (message.kind === 'probe') {
      void this.send({ kind: 'answer', sender: this.localPublicKey, target: message.sender, transaction: message.transaction }, from);
    }
    const listeners = this.watchers.get(hex(message.sender));
    if (listeners !== undefined) {
      for (const listener of [...listeners]) listener({ kind: message.kind, from, transaction: message.transaction });
    }
    return true;
  }

  private async send(message: ProbeMessage, to: Endpoint): Promise<void> {
    try {
      await this.port.send(encodeProbe(message), to);
    } catch (error) {
      this.log.verbose(`NAT: ${message.kind} to ${formatEndpoint(to)} not sent: ${(error as Error).message}`);
    }
  }
}

// ---- connecting -----------------------------------------------------------------

export interface ConnectOptions {
  /** Budget of the direct phase, shared fairly by all candidates (fractions allowed). */
  holePunchTimeoutSecs: number;
  maxCandidatePairs: number;
  /** Probes on the device's port; without it the direct candidates are only tried one by one. */
  probes?: ProbeResponder | null;
  /**
   * The WireGuard endpoints that reach the peer through a relay candidate, in
   * the order to try, produced lazily (a later route may cost a registration
   * that is only worth it when the earlier ones failed). Default: the
   * candidate's own address (a TURN relayed address). A route that throws is
   * logged and ends that candidate.
   */
  relayRoutes?: (candidate: Candidate, peerPublicKey: Uint8Array) => AsyncIterable<Endpoint>;
  log?: Logger;
  /** Aborting ends the attempt with a ConnectError (e.g. on close). */
  signal?: AbortSignal;
}

async function* asAsync<T>(items: readonly T[]): AsyncIterable<T> {
  yield* items;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function isLoopback(endpoint: Endpoint): boolean {
  return endpoint.family === 4 ? endpoint.address.startsWith('127.') : endpoint.address === '::1';
}

/** What the path the device ended up on says about how the peer was reached (see the file comment). */
export function classifyConnection(endpoint: Endpoint | null, candidates: readonly Candidate[]): ConnectionType {
  if (endpoint !== null) {
    const match = candidates.find((candidate) => endpointsEqual(candidate.address, endpoint));
    if (match !== undefined) {
      if (match.type === 'relay') return 'relayed';
      if (match.type === 'host') return 'direct';
      const alsoHost = candidates.some((candidate) => candidate.type === 'host' && endpointsEqual(candidate.address, endpoint));
      return alsoHost ? 'direct' : 'hole-punched';
    }
    if (isLoopback(endpoint)) return 'relayed';
  }
  return 'hole-punched';
}

/**
 * Connect `device` to the peer `peerPublicKey` through its `candidates` (see
 * the file comment). Resolves with how it was reached; rejects with a
 * ConnectError naming the peer when nothing worked.
 */
export async function connectToPeer(device: PunchableDevice, peerPublicKey: Uint8Array, candidates: readonly Candidate[], options: ConnectOptions): Promise<ConnectionType> {
  const peerName = b64(peerPublicKey);
  const log = options.log ?? silentLogger;
  const initial = device.peerStatus(peerPublicKey);
  if (initial === null) throw new ConnectError(`peer ${peerName} is not configured on the device`);
  const ordered = orderCandidates(candidates, Math.max(1, options.maxCandidatePairs));
  if (ordered.length === 0) throw new ConnectError(`peer ${peerName} has no candidates to connect to`);
  const baseline = initial.lastHandshakeTimeMs;
  const fresh = (): boolean => (device.peerStatus(peerPublicKey)?.lastHandshakeTimeMs ?? 0) > baseline;
  const aborted = (): boolean => options.signal?.aborted === true;
  const slotMs = (options.holePunchTimeoutSecs * 1000) / ordered.length;
  const direct = ordered.filter((candidate) => candidate.type !== 'relay');
  const relays = ordered.filter((candidate) => candidate.type === 'relay');

  const done = (how: string): ConnectionType => {
    const endpoint = device.peerStatus(peerPublicKey)?.endpoint ?? null;
    const type = classifyConnection(endpoint, ordered);
    log.verbose(`NAT: ${peerLogName(peerName)} reached ${how}: ${type} at ${endpoint === null ? '(none)' : formatEndpoint(endpoint)}`);
    return type;
  };
  /** Set the endpoint; start a handshake now, or (the yielding side) leave it to the peer for a moment. */
  const point = (endpoint: Endpoint, initiate = true): void => {
    if (!device.setPeerEndpoint(peerPublicKey, endpoint)) throw new ConnectError(`peer ${peerName} was removed from the device while connecting`);
    if (initiate) device.initiateHandshake(peerPublicKey);
  };
  // Both sides initiating at once makes both handshakes fail (each answer meets a
  // replaced handshake state) until a retransmission 5 s later: the smaller
  // public key yields for YIELD_MS first (see the file comment).
  const localKey = options.probes?.localPublicKey ?? null;
  const weYield = localKey !== null && Buffer.compare(Buffer.from(localKey), Buffer.from(peerPublicKey)) < 0;

  if (direct.length > 0 && (await directPhase(direct, slotMs * direct.length))) return done('directly');
  for (const candidate of relays) {
    if (aborted()) break;
    const routes = options.relayRoutes === undefined ? asAsync([candidate.address]) : options.relayRoutes(candidate, peerPublicKey);
    try {
      for await (const route of routes) {
        if (fresh()) return done('through a relay');
        if (aborted()) break;
        point(route, !weYield);
        const yieldUntil = Date.now() + (weYield ? YIELD_MS : 0);
        const end = Date.now() + Math.max(slotMs, MIN_RELAY_ATTEMPT_MS);
        let initiated = !weYield;
        while (!fresh() && Date.now() < end && !aborted()) {
          if (!initiated && Date.now() >= yieldUntil) {
            device.initiateHandshake(peerPublicKey);
            initiated = true;
          }
          await sleep(HANDSHAKE_POLL_MS);
        }
        if (fresh()) return done(`through relay ${formatEndpoint(candidate.address)}`);
      }
    } catch (error) {
      if (error instanceof ConnectError) throw error;
      log.verbose(`NAT: relay ${formatEndpoint(candidate.address)} unusable for ${peerLogName(peerName)}: ${(error as Error).message}`);
    }
  }
  if (fresh()) return done('at the last moment');
  if (aborted()) throw new ConnectError(`connecting to peer ${peerName} was cancelled`);
  const tried = ordered.map((candidate) => `${candidate.type} ${formatEndpoint(candidate.address)}`).join(', ');
  throw new ConnectError(`no handshake with peer ${peerName} over ${ordered.length} candidate(s) (${tried})`);

  async function directPhase(list: Candidate[], budgetMs: number): Promise<boolean> {
    const probes = options.probes ?? null;
    const start = Date.now();
    let end = start + budgetMs;
    const slot = budgetMs / list.length;
    const transactions = new Map<string, number>();
    /** Best (lowest index) candidate that answered, and where its answer came from. */
    let answered: { index: number; from: Endpoint } | null = null;
    let heardAnything = false;
    /** When the yielding side starts its own handshake on a confirmed path (null: done or not yielding). */
    let initiateAt: number | null = null;
    const stopWatching =
      probes?.watch(peerPublicKey, (event) => {
        heardAnything = true;
        if (event.kind !== 'answer') return;
        const index = transactions.get(hex(event.transaction));
        if (index === undefined) return;
        if (answered === null || index < answered.index) answered = { index, from: event.from };
      }) ?? (() => undefined);
    let pointedAt: Endpoint | null = null;
    let nextProbeAt = start;
    try {
      while (!aborted()) {
        if (fresh()) return true;
        const now = Date.now();
        if (probes !== null && now >= nextProbeAt) {
          nextProbeAt = now + PROBE_INTERVAL_MS;
          list.forEach((candidate, index) => transactions.set(hex(probes.probe(peerPublicKey, candidate.address)), index));
        }
        let target: Endpoint | null = null;
        const best = answered as { index: number; from: Endpoint } | null;
        if (best !== null) target = best.from;
        else if (probes === null || (!heardAnything && now - start >= PROBE_GRACE_MS) || now - start >= budgetMs / 2) {
          target = list[Math.min(list.length - 1, Math.floor((now - start) / slot))]!.address;
        }
        if (target !== null && !endpointsEqual(target, pointedAt)) {
          if (fresh()) return true;
          const yieldNow = best !== null && weYield;
          point(target, !yieldNow);
          initiateAt = yieldNow ? now + YIELD_MS : null;
          pointedAt = target;
          log.verbose(`NAT: trying ${formatEndpoint(target)} for ${peerLogName(peerName)}${best !== null ? ' (probe answered)' : ''}`);
          if (best !== null) end = Math.max(end, now + HANDSHAKE_AFTER_SWITCH_MS);
        }
        if (initiateAt !== null && now >= initiateAt) {
          initiateAt = null;
          device.initiateHandshake(peerPublicKey);
        }
        if (now >= end) return fresh();
        await sleep(Math.min(HANDSHAKE_POLL_MS, PROBE_INTERVAL_MS));
      }
      return fresh();
    } finally {
      stopWatching();
    }
  }
}
