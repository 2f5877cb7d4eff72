/**
 * The built-in relay server (seed: RelayServer). Nodes register with a
 * REGISTER authenticated by the key derived from the cluster credential;
 * afterwards the server forwards opaque payloads between registered nodes,
 * named by their public keys. It holds no WireGuard key and cannot read what
 * it forwards. A session is a pair of nodes exchanging data; at most
 * `maxSessions` are live at once (0 → 100). Registrations expire without
 * keepalives, sessions when idle. Malformed or unauthenticated datagrams are
 * dropped with a rate-limited log line.
 */
import { randomBytes } from 'node:crypto';
import type dgram from 'node:dgram';
import { bindUdp } from '../udp.js';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import { parseEndpoint, type Endpoint } from '../../device/addr.js';
import { silentLogger, type Logger } from '../../device/logger.js';
import { constantTimeEqual } from '../../noise/bytes.js';
import { deriveRelayAuthKey, relayTag, relayTagValid } from './auth.js';
import {
  DEFAULT_MAX_SESSIONS,
  MAX_REGISTRATIONS,
  REGISTER_TIMESTAMP_WINDOW_MS,
  REGISTRATION_LIFETIME_MS,
  RefusedReason,
  SERVER_SWEEP_INTERVAL_MS,
  SESSION_IDLE_MS,
  TOKEN_SIZE,
  type RefusedReasonValue,
} from './constants.js';
import { DropLog } from './drop-log.js';
import {
  RelayProtocolError,
  decodeRelayMessage,
  encodeDataFromPeer,
  encodeNotRegistered,
  encodeRefused,
  registerSignedPart,
  registeredSignedPart,
  withTag,
  type DataToPeerMessage,
  type RegisterMessage,
} from './protocol.js';

/** Seed RelayServerConfig. `externalAddr` is what start() reports ("ip", "ip:port" or ""). */
export interface RelayServerConfig {
  listenPort: number;
  externalAddr: string;
  maxSessions: number;
}

interface Registration {
  publicKey: Uint8Array;
  name: string;
  /** Where the node's datagrams come from (as the socket reports it: what we send to). */
  address: string;
  port: number;
  token: Uint8Array;
  lastSeenMs: number;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
const sourceKey = (address: string, port: number): string => `${address}|${port}`;
/** "::ffff:1.2.3.4" (a dual-stack socket's view of IPv4) → "1.2.3.4". */
const plainAddress = (address: string): string => (address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address);
const shortName = (publicKey: Uint8Array): string => Buffer.from(publicKey).toString('base64').slice(0, 8) + '…';

export class RelayServer {
  private readonly authKey: Uint8Array;
  private readonly maxSessions: number;
  private readonly log: Logger;
  private readonly drops: DropLog;
  private socket: dgram.Socket | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly byKey = new Map<string, Registration>();
  private readonly bySource = new Map<string, Registration>();
  /** Pair name (two hex keys, sorted) → last time data flowed. */
  private readonly sessions = new Map<string, number>();
  /** Nonce (hex) → when it may be forgotten (replay protection). */
  private readonly seenNonces = new Map<string, number>();
  private forwardedCount = 0;

  constructor(
    private readonly config: RelayServerConfig,
    credential: string,
    log: Logger = silentLogger,
  ) {
    if (!Number.isInteger(config.listenPort) || config.listenPort < 0 || config.listenPort > 65535) {
      throw new RangeError(`relay listen_port ${config.listenPort} is not a UDP port`);
    }
    if (!Number.isInteger(config.maxSessions) || config.maxSessions < 0) throw new RangeError(`relay max_sessions ${config.maxSessions} is not a count`);
    this.authKey = deriveRelayAuthKey(credential);
    this.maxSessions = config.maxSessions === 0 ? DEFAULT_MAX_SESSIONS : config.maxSessions;
    this.log = log;
    this.drops = new DropLog(log, 'relay server');
  }

  /** Bind and serve. Resolves with the external address and the real port (when listenPort is 0). */
  async start(): Promise<Endpoint> {
    if (this.socket !== null) throw new Error('relay server already started');
    this.socket = await bindDualStack(this.config.listenPort);
    this.socket.on('error', (error) => this.log.error(`relay server: socket error: ${error.message}`));
    this.socket.on('message', (message, info) => this.receive(new Uint8Array(message.buffer, message.byteOffset, message.byteLength), info.address, info.port));
    this.sweepTimer = setInterval(() => this.sweep(Date.now()), SERVER_SWEEP_INTERVAL_MS);
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

  /** Payloads forwarded so far. */
  get forwarded(): number {
    return this.forwardedCount;
  }

  /** Datagrams dropped so far (malformed, unauthenticated, over the limits). */
  get dropped(): number {
    return this.drops.dropped;
  }

  close(): void {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    this.socket?.close();
    this.socket = null;
    this.byKey.clear();
    this.bySource.clear();
    this.sessions.clear();
    this.seenNonces.clear();
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
    const from = `${plainAddress(address)}:${port}`;
    let message;
    try {
      message = decodeRelayMessage(datagram);
    } catch (error) {
      if (!(error instanceof RelayProtocolError)) throw error;
      this.drops.drop(`a malformed datagram from ${from}: ${error.message}`);
      return;
    }
    const now = Date.now();
    switch (message.kind) {
      case 'register':
        this.register(message, address, port, from, now);
        return;
      case 'data-to-peer':
        this.forward(message, address, port, from, now);
        return;
      case 'keepalive': {
        const registration = this.authorised(address, port, message.token);
        if (registration === null) {
          this.drops.drop(`a KEEPALIVE from ${from}, which is not registered`);
          this.send(encodeNotRegistered(), address, port);
          return;
        }
        registration.lastSeenMs = now;
        return;
      }
      default:
        this.drops.drop(`a ${message.kind} message from ${from} (only clients send to a relay server)`);
    }
  }

  private refuse(message: RegisterMessage, reason: RefusedReasonValue, address: string, port: number, why: string): void {
    this.drops.drop(`a REGISTER from ${plainAddress(address)}:${port}: ${why}`);
    this.send(encodeRefused(message.nonce, reason), address, port);
  }

  private register(message: RegisterMessage, address: string, port: number, from: string, now: number): void {
    const signed = registerSignedPart(message.publicKey, message.timestampMs, message.nonce);
    if (!relayTagValid(this.authKey, signed, message.tag)) {
      this.refuse(message, RefusedReason.badAuthentication, address, port, 'bad authentication tag (wrong credential?)');
      return;
    }
    if (Math.abs(message.timestampMs - now) > REGISTER_TIMESTAMP_WINDOW_MS) {
      this.refuse(message, RefusedReason.staleTimestamp, address, port, `timestamp ${message.timestampMs - now} ms off`);
      return;
    }
    const nonce = hex(message.nonce);
    if (this.seenNonces.has(nonce)) {
      this.refuse(message, RefusedReason.replayedNonce, address, port, 'replayed nonce');
      return;
    }
    const name = hex(message.publicKey);
    let registration = this.byKey.get(name);
    if (registration === undefined && this.byKey.size >= MAX_REGISTRATIONS) {
      this.sweep(now);
      if (this.byKey.size >= MAX_REGISTRATIONS) {
        this.refuse(message, RefusedReason.serverFull, address, port, `${MAX_REGISTRATIONS} registrations held`);
        return;
      }
    }
    // Remembered for twice the window: a copy stays refused for as long as its timestamp could pass.
    this.seenNonces.set(nonce, now + 2 * REGISTER_TIMESTAMP_WINDOW_MS);
    if (registration === undefined) {
      registration = { publicKey: message.publicKey, name, address, port, token: randomBytes(TOKEN_SIZE), lastSeenMs: now };
      this.byKey.set(name, registration);
      this.log.verbose(`relay server: ${shortName(message.publicKey)} registered from ${from}`);
    } else if (registration.address !== address || registration.port !== port) {
      this.bySource.delete(sourceKey(registration.address, registration.port));
      this.log.verbose(`relay server: ${shortName(message.publicKey)} moved to ${from}`);
    }
    // A source address belongs to one node: a node that re-registers from another's old address replaces it.
    const previous = this.bySource.get(sourceKey(address, port));
    if (previous !== undefined && previous !== registration) this.byKey.delete(previous.name);
    registration.address = address;
    registration.port = port;
    registration.lastSeenMs = now;
    this.bySource.set(sourceKey(address, port), registration);
    const lifetimeSeconds = Math.floor(REGISTRATION_LIFETIME_MS / 1000);
    const answer = registeredSignedPart(message.nonce, registration.token, lifetimeSeconds);
    this.send(withTag(answer, relayTag(this.authKey, answer)), address, port);
  }

  /** The registration behind a source address when the token matches it, else null. */
  private authorised(address: string, port: number, token: Uint8Array): Registration | null {
    const registration = this.bySource.get(sourceKey(address, port));
    if (registration === undefined || !constantTimeEqual(registration.token, token)) return null;
    return registration;
  }

  private forward(message: DataToPeerMessage, address: string, port: number, from: string, now: number): void {
    const sender = this.authorised(address, port, message.token);
    if (sender === null) {
      this.drops.drop(`DATA from ${from}, which is not registered (or has a wrong token)`);
      this.send(encodeNotRegistered(), address, port);
      return;
    }
    sender.lastSeenMs = now;
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
      if (this.sessions.size >= this.maxSessions) this.sweep(now);
      if (this.sessions.size >= this.maxSessions) {
        this.drops.drop(`DATA from ${shortName(sender.publicKey)} to ${shortName(message.peer)}: ${this.maxSessions} sessions are live (max_sessions)`);
        return;
      }
      this.log.verbose(`relay server: session ${shortName(sender.publicKey)} <-> ${shortName(target.publicKey)} opened`);
    }
    this.sessions.set(pair, now);
    this.forwardedCount++;
    this.send(encodeDataFromPeer(sender.publicKey, message.payload), target.address, target.port);
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
    for (const [nonce, forgetAt] of this.seenNonces) if (forgetAt <= now) this.seenNonces.delete(nonce);
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
