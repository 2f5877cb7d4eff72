/**
 * The built-in relay server. A node registers in two
 * round trips (protocol.ts): HELLO → CHALLENGE proves it receives at its
 * source address, REGISTER proves its WireGuard static key to this relay
 * process; only then is a registration created or moved. Afterwards the
 * server forwards opaque payloads between registered nodes, named by their
 * public keys. It holds no WireGuard key and cannot read what it forwards.
 *
 * A session is a pair of nodes exchanging data; at most `maxSessions` are
 * live at once (0 → 100). Every table is bounded (registrations, sessions,
 * used cookies, rate buckets) and expired by a timer, never per datagram.
 * Everything but authorised data from its own source is rate-limited per
 * source IP, answers included. Malformed or unauthenticated datagrams are
 * dropped with a rate-limited log line.
 */
import { randomBytes } from 'node:crypto';
import type dgram from 'node:dgram';
import { bindUdp } from '../udp.js';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import { parseEndpoint, type Endpoint, silentLogger, type Logger } from '../../device/index.js';
import { constantTimeEqual, defaultPrimitives } from '../../noise/index.js';
import { deriveRelayAuthKey, keyProofKey, notRegisteredTag, relayCookie, relayTag, relayTagValid, requireRelayCredential } from './auth.js';
import {
  COOKIE_LIFETIME_MS,
  DEFAULT_MAX_SESSIONS,
  MAX_RATE_BUCKETS,
  MAX_REGISTRATIONS,
  MAX_USED_COOKIES,
  OVERFLOW_BURST,
  OVERFLOW_RATE_PER_SECOND,
  PUBLIC_KEY_SIZE,
  REGISTER_TIMESTAMP_WINDOW_MS,
  REGISTRATION_LIFETIME_MS,
  RefusedReason,
  SERVER_SWEEP_INTERVAL_MS,
  SESSION_IDLE_MS,
  SOURCE_BURST,
  SOURCE_RATE_PER_SECOND,
  TOKEN_SIZE,
  type RefusedReasonValue,
} from './constants.js';
import { DropLog } from './drop-log.js';
import {
  RelayProtocolError,
  challengeSignedPart,
  decodeRelayMessage,
  encodeDataFromPeer,
  encodeNotRegistered,
  helloSignedPart,
  refusedSignedPart,
  registerSignedPart,
  registeredSignedPart,
  withTag,
  type DataToPeerMessage,
  type HelloMessage,
  type RegisterMessage,
} from './protocol.js';
import { SourceRateLimiter, type RateLimits } from './rate-limit.js';

/** Seed RelayServerConfig. `externalAddr` is what start() reports ("ip", "ip:port" or ""). */
export interface RelayServerConfig {
  listenPort: number;
  externalAddr: string;
  maxSessions: number;
}

/** The table bounds and rate limits (constants.ts by default; tests make them small). */
export interface RelayServerLimits extends RateLimits {
  maxRegistrations: number;
  maxUsedCookies: number;
  sweepIntervalMs: number;
}

export const DEFAULT_RELAY_SERVER_LIMITS: RelayServerLimits = {
  ratePerSecond: SOURCE_RATE_PER_SECOND,
  burst: SOURCE_BURST,
  maxBuckets: MAX_RATE_BUCKETS,
  overflowRatePerSecond: OVERFLOW_RATE_PER_SECOND,
  overflowBurst: OVERFLOW_BURST,
  maxRegistrations: MAX_REGISTRATIONS,
  maxUsedCookies: MAX_USED_COOKIES,
  sweepIntervalMs: SERVER_SWEEP_INTERVAL_MS,
};

/** What the server holds (diagnostics; tests check the bounds). */
export interface RelayServerStats {
  registrations: number;
  sessions: number;
  usedCookies: number;
  rateBuckets: number;
  /** Datagrams refused by the per-source rate limit so far. */
  rateLimited: number;
  /** Datagrams read from the socket so far (a flood the kernel dropped never counts). */
  received: number;
}

interface Registration {
  publicKey: Uint8Array;
  name: string;
  /** Where the node's datagrams come from (as the socket reports it: what we send to). */
  address: string;
  port: number;
  /** Random per (node, source): handed only to this source. */
  token: Uint8Array;
  lastSeenMs: number;
}

interface UsedCookie {
  forgetAtMs: number;
  /** The registration it made and the source it came from: a retransmitted REGISTER is answered again. */
  name: string;
  source: string;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
const sourceKey = (address: string, port: number): string => `${address}|${port}`;
/** "::ffff:1.2.3.4" (a dual-stack socket's view of IPv4) → "1.2.3.4". */
const plainAddress = (address: string): string => (address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address);
const shortName = (publicKey: Uint8Array): string => Buffer.from(publicKey).toString('base64').slice(0, 8) + '…';

export class RelayServer {
  private readonly authKey: Uint8Array;
  private readonly maxSessions: number;
  private readonly limits: RelayServerLimits;
  private readonly log: Logger;
  private readonly drops: DropLog;
  private readonly rate: SourceRateLimiter;
  /** This process's X25519 key: REGISTERs prove the node key against it, so they are good here only. */
  private readonly privateKey = new Uint8Array(randomBytes(PUBLIC_KEY_SIZE));
  readonly publicKey: Uint8Array;
  private readonly cookieSecret = new Uint8Array(randomBytes(32));
  private socket: dgram.Socket | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly byKey = new Map<string, Registration>();
  private readonly bySource = new Map<string, Registration>();
  /** Pair name (two hex keys, sorted) → last time data flowed. */
  private readonly sessions = new Map<string, number>();
  /** Cookie (hex) → its use (replay protection; cookies expire after COOKIE_LIFETIME_MS anyway). */
  private readonly usedCookies = new Map<string, UsedCookie>();
  private forwardedCount = 0;

  constructor(
    private readonly config: RelayServerConfig,
    credential: string,
    log: Logger = silentLogger,
    limits: Partial<RelayServerLimits> = {},
  ) {
    if (!Number.isInteger(config.listenPort) || config.listenPort < 0 || config.listenPort > 65535) {
      throw new RangeError(`relay listen_port ${config.listenPort} is not a UDP port`);
    }
    if (!Number.isInteger(config.maxSessions) || config.maxSessions < 0) throw new RangeError(`relay max_sessions ${config.maxSessions} is not a count`);
    requireRelayCredential(credential, 'relay server credential (relayServer.authCredential)');
    this.authKey = deriveRelayAuthKey(credential);
    this.maxSessions = config.maxSessions === 0 ? DEFAULT_MAX_SESSIONS : config.maxSessions;
    this.limits = { ...DEFAULT_RELAY_SERVER_LIMITS, ...limits };
    for (const name of ['maxRegistrations', 'maxUsedCookies', 'sweepIntervalMs'] as const) {
      const value = this.limits[name];
      if (!Number.isInteger(value) || value <= 0) throw new RangeError(`relay limit ${name} must be a positive integer, got ${value}`);
    }
    this.rate = new SourceRateLimiter(this.limits);
    this.publicKey = defaultPrimitives.x25519PublicKey(this.privateKey);
    this.log = log;
    this.drops = new DropLog(log, 'relay server');
  }

  /** Bind and serve. Resolves with the external address and the real port (when listenPort is 0). */
  async start(): Promise<Endpoint> {
    if (this.socket !== null) throw new Error('relay server already started');
    this.socket = await bindDualStack(this.config.listenPort);
    this.socket.on('error', (error) => this.log.error(`relay server: socket error: ${error.message}`));
    this.socket.on('message', (message, info) => this.countedReceive(new Uint8Array(message.buffer, message.byteOffset, message.byteLength), info.address, info.port));
    this.sweepTimer = setInterval(() => this.sweep(Date.now()), this.limits.sweepIntervalMs);
    this.sweepTimer.unref();
    const port = (this.socket.address() as AddressInfo).port;
    const advertised = this.advertisedEndpoint(port);
    this.log.verbose(`relay server: listening on port ${port} (max ${this.maxSessions} sessions)`);
    return advertised;
  }

  /** Live sessions (pairs of nodes that exchanged data recently). */
  get sessionCount(): number {
    this.sweep(Date.now());
    return this.sessions.size;
  }

  get registrationCount(): number {
    this.sweep(Date.now());
    return this.byKey.size;
  }

  private receivedCount = 0;

  private countedReceive(datagram: Uint8Array, address: string, port: number): void {
    this.receivedCount++;
    this.receive(datagram, address, port);
  }

  /** The sizes of every table, as they are (no sweep). */
  get stats(): RelayServerStats {
    return {
      registrations: this.byKey.size,
      sessions: this.sessions.size,
      usedCookies: this.usedCookies.size,
      rateBuckets: this.rate.size,
      rateLimited: this.rate.limited,
      received: this.receivedCount,
    };
  }

  /** Payloads forwarded so far. */
  get forwarded(): number {
    return this.forwardedCount;
  }

  /** Datagrams dropped so far (malformed, unauthenticated, over the limits, rate-limited). */
  get dropped(): number {
    return this.drops.dropped + this.rate.limited;
  }

  close(): void {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    this.socket?.close();
    this.socket = null;
    this.byKey.clear();
    this.bySource.clear();
    this.sessions.clear();
    this.usedCookies.clear();
    this.rate.clear();
  }

  private advertisedEndpoint(port: number): Endpoint {
    const text = this.config.externalAddr.trim();
    if (text === '') return { family: 4, address: '0.0.0.0', port };
    const family = isIP(text);
    if (family !== 0) return { family: family === 4 ? 4 : 6, address: plainAddress(text), port };
    const endpoint = parseEndpoint(text); // "ip:port" / "[ip6]:port"; throws a clear AddressError otherwise
    return endpoint.port === 0 ? { ...endpoint, port } : endpoint;
  }

  private send(datagram: Uint8Array, address: string, port: number): void {
    this.socket?.send(datagram, port, address, () => undefined); // UDP: a failed send is a lost datagram
  }

  private receive(datagram: Uint8Array, address: string, port: number): void {
    const now = Date.now();
    const ip = plainAddress(address);
    const from = `${ip}:${port}`;
    let message;
    try {
      message = decodeRelayMessage(datagram);
    } catch (error) {
      if (!(error instanceof RelayProtocolError)) throw error;
      if (this.rate.take(ip, now)) this.drops.drop(`a malformed datagram from ${from}: ${error.message}`);
      return;
    }
    // Authorised data and keepalives (a valid token from its own source) pass unlimited; the rest is rate-limited.
    if (message.kind === 'data-to-peer' || message.kind === 'keepalive') {
      const registration = this.authorised(address, port, message.token);
      if (registration !== null) {
        registration.lastSeenMs = now;
        if (message.kind === 'data-to-peer') this.forward(message, registration, now);
        return;
      }
      if (!this.rate.take(ip, now)) return;
      this.drops.drop(`a ${message.kind === 'keepalive' ? 'KEEPALIVE' : 'DATA'} from ${from}, which is not registered (or has a wrong token)`);
      this.send(encodeNotRegistered(message.token, notRegisteredTag(this.authKey, message.token)), address, port);
      return;
    }
    if (!this.rate.take(ip, now)) return;
    switch (message.kind) {
      case 'hello':
        this.hello(message, address, port);
        return;
      case 'register':
        this.register(message, address, port, from, now);
        return;
      default:
        this.drops.drop(`a ${message.kind} message from ${from} (only clients send to a relay server)`);
    }
  }

  private refuse(nonce: Uint8Array, reason: RefusedReasonValue, address: string, port: number, why: string): void {
    this.drops.drop(`a registration from ${plainAddress(address)}:${port}: ${why}`);
    const signed = refusedSignedPart(nonce, reason);
    this.send(withTag(signed, relayTag(this.authKey, signed)), address, port);
  }

  /** First leg: a cookie for this source, no state kept. */
  private hello(message: HelloMessage, address: string, port: number): void {
    if (!relayTagValid(this.authKey, helloSignedPart(message.nonce), message.tag)) {
      this.refuse(message.nonce, RefusedReason.badAuthentication, address, port, 'HELLO with a bad authentication tag (wrong credential?)');
      return;
    }
    const issuedMs = Date.now();
    const cookie = relayCookie(this.cookieSecret, sourceKey(address, port), issuedMs);
    const signed = challengeSignedPart(message.nonce, this.publicKey, issuedMs, cookie);
    this.send(withTag(signed, relayTag(this.authKey, signed)), address, port);
  }

  private register(message: RegisterMessage, address: string, port: number, from: string, now: number): void {
    const source = sourceKey(address, port);
    if (!constantTimeEqual(message.relayPublicKey, this.publicKey)) {
      this.refuse(message.nonce, RefusedReason.badKeyProof, address, port, 'REGISTER for another relay key (made for another relay, or before a restart)');
      return;
    }
    const age = now - message.issuedMs;
    if (age > COOKIE_LIFETIME_MS || age < -1000 || !constantTimeEqual(message.cookie, relayCookie(this.cookieSecret, source, message.issuedMs))) {
      this.refuse(message.nonce, RefusedReason.badCookie, address, port, 'REGISTER with a cookie that is expired or was not made for this source');
      return;
    }
    if (Math.abs(message.timestampMs - now) > REGISTER_TIMESTAMP_WINDOW_MS) {
      this.refuse(message.nonce, RefusedReason.staleTimestamp, address, port, `timestamp ${message.timestampMs - now} ms off`);
      return;
    }
    let proofKey: Uint8Array;
    try {
      proofKey = keyProofKey(this.authKey, defaultPrimitives.x25519(this.privateKey, message.publicKey), this.publicKey, message.publicKey);
    } catch {
      this.refuse(message.nonce, RefusedReason.badKeyProof, address, port, 'REGISTER with a low-order public key');
      return;
    }
    if (!relayTagValid(proofKey, registerSignedPart(message), message.tag)) {
      this.refuse(message.nonce, RefusedReason.badKeyProof, address, port, `REGISTER for ${shortName(message.publicKey)} without proof of its private key`);
      return;
    }
    const name = hex(message.publicKey);
    const cookieName = hex(message.cookie);
    const used = this.usedCookies.get(cookieName);
    if (used !== undefined) {
      const registration = this.byKey.get(name);
      // The same node from the same source (our REGISTERED got lost): answer again, change nothing.
      if (used.name === name && used.source === source && registration !== undefined && sourceKey(registration.address, registration.port) === source) {
        this.answer(message, registration, proofKey);
      } else {
        this.refuse(message.nonce, RefusedReason.replayedNonce, address, port, 'REGISTER with a cookie used before (replay)');
      }
      return;
    }
    if (this.usedCookies.size >= this.limits.maxUsedCookies) {
      this.refuse(message.nonce, RefusedReason.serverFull, address, port, `${this.limits.maxUsedCookies} recent registrations held`);
      return;
    }
    let registration = this.byKey.get(name);
    if (registration === undefined && this.byKey.size >= this.limits.maxRegistrations) {
      this.refuse(message.nonce, RefusedReason.serverFull, address, port, `${this.limits.maxRegistrations} registrations held`);
      return;
    }
    this.usedCookies.set(cookieName, { forgetAtMs: message.issuedMs + COOKIE_LIFETIME_MS, name, source });
    if (registration === undefined) {
      registration = { publicKey: message.publicKey, name, address, port, token: randomBytes(TOKEN_SIZE), lastSeenMs: now };
      this.byKey.set(name, registration);
      this.log.verbose(`relay server: ${shortName(message.publicKey)} registered from ${from}`);
    } else if (registration.address !== address || registration.port !== port) {
      this.bySource.delete(sourceKey(registration.address, registration.port));
      // A token belongs to one source: the node's new address gets a new one.
      registration.token = randomBytes(TOKEN_SIZE);
      this.log.verbose(`relay server: ${shortName(message.publicKey)} moved to ${from}`);
    }
    // A source address belongs to one node: a node that proves its key from another's old address replaces it.
    const previous = this.bySource.get(source);
    if (previous !== undefined && previous !== registration) this.byKey.delete(previous.name);
    registration.address = address;
    registration.port = port;
    registration.lastSeenMs = now;
    this.bySource.set(source, registration);
    this.answer(message, registration, proofKey);
  }

  private answer(message: RegisterMessage, registration: Registration, proofKey: Uint8Array): void {
    const answer = registeredSignedPart(message.nonce, registration.token, Math.floor(REGISTRATION_LIFETIME_MS / 1000));
    this.send(withTag(answer, relayTag(proofKey, answer)), registration.address, registration.port);
  }

  /** The registration behind a source address when the token matches it, else null. */
  private authorised(address: string, port: number, token: Uint8Array): Registration | null {
    const registration = this.bySource.get(sourceKey(address, port));
    if (registration === undefined || !constantTimeEqual(registration.token, token)) return null;
    return registration;
  }

  private forward(message: DataToPeerMessage, sender: Registration, now: number): void {
    const target = this.byKey.get(hex(message.peer));
    if (target === undefined || now - target.lastSeenMs > REGISTRATION_LIFETIME_MS) {
      this.drops.drop(`DATA from ${shortName(sender.publicKey)} to ${shortName(message.peer)}, which is not registered`);
      return;
    }
    if (target === sender) {
      this.drops.drop(`DATA from ${shortName(sender.publicKey)} to itself`);
      return;
    }
    const pair = sender.name < target.name ? `${sender.name}${target.name}` : `${target.name}${sender.name}`;
    if (!this.sessions.has(pair)) {
      // No sweep here: the timer frees idle sessions; a full table refuses new pairs until then.
      if (this.sessions.size >= this.maxSessions) {
        this.drops.drop(`DATA from ${shortName(sender.publicKey)} to ${shortName(message.peer)}: ${this.maxSessions} sessions are live (max_sessions)`);
        return;
      }
      this.log.verbose(`relay server: session ${shortName(sender.publicKey)} <-> ${shortName(target.publicKey)} opened`);
    }
    this.sessions.set(pair, now);
    this.forwardedCount++;
    this.send(encodeDataFromPeer(target.token, sender.publicKey, message.payload), target.address, target.port);
  }

  private sweep(now: number): void {
    for (const [name, registration] of this.byKey) {
      if (now - registration.lastSeenMs <= REGISTRATION_LIFETIME_MS) continue;
      this.byKey.delete(name);
      if (this.bySource.get(sourceKey(registration.address, registration.port)) === registration) {
        this.bySource.delete(sourceKey(registration.address, registration.port));
      }
      this.log.verbose(`relay server: registration of ${shortName(registration.publicKey)} expired`);
    }
    for (const [pair, lastActive] of this.sessions) {
      const gone = !this.byKey.has(pair.slice(0, 64)) || !this.byKey.has(pair.slice(64));
      if (gone || now - lastActive > SESSION_IDLE_MS) this.sessions.delete(pair);
    }
    for (const [cookie, used] of this.usedCookies) if (used.forgetAtMs <= now) this.usedCookies.delete(cookie);
    this.rate.sweep(now);
  }
}

/** A UDP socket on [::]:port that takes IPv4 too; plain 0.0.0.0 where IPv6 is off. */
async function bindDualStack(port: number): Promise<dgram.Socket> {
  const bind = (type: 'udp4' | 'udp6', address: string) => bindUdp({ type, port, address });
  try {
    return await bind('udp6', '::');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new Error(`relay server: UDP port ${port} is in use`);
    return bind('udp4', '0.0.0.0');
  }
}
