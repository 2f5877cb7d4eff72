/**
 * The built-in relay's client. It registers the node's public key with the
 * relay server (HELLO → CHALLENGE → REGISTER → REGISTERED, protocol.ts: the
 * REGISTER proves the node's WireGuard private key to that relay process),
 * keeps the registration alive, and bridges the relay to the local WireGuard
 * device through one PeerProxy per remote node: routePeer(key) gives the
 * loopback endpoint to set as that peer's endpoint. Traffic arriving from a
 * node not routed yet gets a proxy on first sight, so the device learns the
 * relayed path by roaming when only the other side chose the relay; such a
 * proxy is closed again once idle.
 *
 * Only authenticated server messages count: CHALLENGE, REFUSED and
 * NOT-REGISTERED must carry a valid cluster tag, REGISTERED the key-proof
 * tag, DATA our current token, and all must come from the server's address.
 */
import { randomBytes } from 'node:crypto';
import type dgram from 'node:dgram';
import { bindUdp } from '../udp.js';
import { isIP } from 'node:net';
import { formatEndpoint, type Endpoint, silentLogger, type Logger } from '../../device/index.js';
import { constantTimeEqual, defaultPrimitives } from '../../noise/index.js';
import { PeerProxy } from '../peer-proxy.js';
import { deriveRelayAuthKey, keyProofKey, notRegisteredTag, relayTag, relayTagValid, requireRelayCredential } from './auth.js';
import {
  CLIENT_KEEPALIVE_INTERVAL_MS,
  CLIENT_MAX_PEERS,
  CLIENT_PROXY_IDLE_MS,
  CLIENT_PROXY_SWEEP_INTERVAL_MS,
  CLIENT_REGISTER_ATTEMPTS,
  CLIENT_REGISTER_FIRST_TIMEOUT_MS,
  CLIENT_REREGISTER_INTERVAL_MS,
  COOKIE_LIFETIME_MS,
  NONCE_SIZE,
  PUBLIC_KEY_SIZE,
  RefusedReason,
} from './constants.js';
import { DropLog } from './drop-log.js';
import {
  RelayProtocolError,
  challengeSignedPart,
  decodeRelayMessage,
  describeRefusal,
  encodeDataToPeer,
  encodeKeepalive,
  helloSignedPart,
  refusedSignedPart,
  registerSignedPart,
  registeredSignedPart,
  withTag,
  type ChallengeMessage,
  type DataFromPeerMessage,
  type NotRegisteredMessage,
  type RefusedMessage,
  type RegisteredMessage,
} from './protocol.js';

export interface RelayClientOptions {
  server: Endpoint;
  credential: string;
  /** This node's WireGuard private key: its public key is its name at the relay, and REGISTER proves it. */
  localPrivateKey: Uint8Array;
  /** The local WireGuard device's UDP port (on 127.0.0.1). */
  devicePort: number;
  log?: Logger;
}

/** Registration failed: refused by the server, or no answer. */
export class RelayRegistrationError extends Error {
  override readonly name = 'RelayRegistrationError';
}

interface PendingRegistration {
  /** Nonces of our HELLOs (a CHALLENGE or REFUSED echoes one). */
  helloNonces: Set<string>;
  challenge: { cookie: Uint8Array; receivedMs: number } | null;
  /** The REGISTER answering that challenge (resent as it is while the cookie is fresh). */
  register: { nonce: string; bytes: Uint8Array; proofKey: Uint8Array } | null;
  /** What an unauthenticated REFUSED said (only for the error message: it proves nothing). */
  unauthenticatedRefusal: string | null;
  settle: (outcome: { token: Uint8Array } | { error: Error }) => void;
}

interface ProxyEntry {
  proxy: Promise<PeerProxy | null>;
  /** Handed out by routePeer (the device was told to use it): never reclaimed while we run. */
  routed: boolean;
  lastUsedMs: number;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
const plainAddress = (address: string): string => (address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address);

export class RelayClient {
  private readonly authKey: Uint8Array;
  private readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
  private readonly log: Logger;
  private readonly drops: DropLog;
  private readonly serverText: string;
  private socket: dgram.Socket | null = null;
  private token: Uint8Array | null = null;
  private pending: PendingRegistration | null = null;
  private readonly proxies = new Map<string, ProxyEntry>();
  private readonly timers: NodeJS.Timeout[] = [];
  private lastReregisterMs = 0;
  private closed = false;

  constructor(private readonly options: RelayClientOptions) {
    if (options.localPrivateKey.length !== PUBLIC_KEY_SIZE) throw new RangeError(`relay client: a private key is ${PUBLIC_KEY_SIZE} bytes, got ${options.localPrivateKey.length}`);
    requireRelayCredential(options.credential, 'relay client credential (clusterRelayCredential)');
    this.authKey = deriveRelayAuthKey(options.credential);
    this.privateKey = new Uint8Array(options.localPrivateKey);
    this.publicKey = defaultPrimitives.x25519PublicKey(this.privateKey);
    this.log = options.log ?? silentLogger;
    this.serverText = formatEndpoint(options.server);
    this.drops = new DropLog(this.log, `relay client (${this.serverText})`);
  }

  /** True while the server has accepted us (a token is held). */
  get registered(): boolean {
    return this.token !== null;
  }

  /** Loopback proxies currently open (or opening). */
  get proxyCount(): number {
    return this.proxies.size;
  }

  /** Datagrams dropped so far (forged, malformed, unexpected). */
  get dropped(): number {
    return this.drops.dropped;
  }

  /** Open the socket and register. Rejects with RelayRegistrationError when refused or unanswered. */
  async start(): Promise<void> {
    if (this.socket !== null) throw new Error('relay client already started');
    if (this.closed) throw new Error('relay client is closed');
    const socket = await bindUdp({ type: this.options.server.family === 4 ? 'udp4' : 'udp6' });
    this.socket = socket;
    socket.on('error', (error) => this.log.error(`relay client (${this.serverText}): socket error: ${error.message}`));
    socket.on('message', (message, info) => this.receive(new Uint8Array(message.buffer, message.byteOffset, message.byteLength), info.address, info.port));
    try {
      await this.register();
    } catch (error) {
      this.close();
      throw error;
    }
    const keepalive = setInterval(() => {
      if (this.token !== null) this.sendToServer(encodeKeepalive(this.token));
    }, CLIENT_KEEPALIVE_INTERVAL_MS);
    const reregister = setInterval(() => this.reregister('periodic'), CLIENT_REREGISTER_INTERVAL_MS);
    const reclaim = setInterval(() => this.reclaimIdleProxies(Date.now()), CLIENT_PROXY_SWEEP_INTERVAL_MS);
    for (const timer of [keepalive, reregister, reclaim]) {
      timer.unref();
      this.timers.push(timer);
    }
    this.log.verbose(`relay client: registered with ${this.serverText}`);
  }

  /** The loopback endpoint to give the device as `peerPublicKey`'s endpoint (one proxy per peer). */
  async routePeer(peerPublicKey: Uint8Array): Promise<Endpoint> {
    if (peerPublicKey.length !== PUBLIC_KEY_SIZE) throw new RangeError(`relay client: a public key is ${PUBLIC_KEY_SIZE} bytes, got ${peerPublicKey.length}`);
    const proxy = await this.proxyFor(peerPublicKey, true);
    if (proxy === null) throw new Error(`relay client: cannot route more than ${CLIENT_MAX_PEERS} peers`);
    return proxy.endpoint;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    this.pending?.settle({ error: new RelayRegistrationError(`relay client (${this.serverText}) closed while registering`) });
    this.socket?.close();
    this.socket = null;
    this.token = null;
    this.privateKey.fill(0); // our copy of the node key: not needed once closed
    for (const entry of this.proxies.values()) void entry.proxy.then((p) => p?.close());
    this.proxies.clear();
  }

  /**
   * Close proxies made on first sight that carried nothing for
   * CLIENT_PROXY_IDLE_MS (a peer that went away, or junk that got through):
   * they would otherwise hold a port and a slot until close().
   */
  reclaimIdleProxies(nowMs: number, idleMs = CLIENT_PROXY_IDLE_MS): number {
    let reclaimed = 0;
    for (const [name, entry] of this.proxies) {
      if (entry.routed || nowMs - entry.lastUsedMs < idleMs) continue;
      this.proxies.delete(name);
      void entry.proxy.then((p) => p?.close());
      reclaimed++;
    }
    return reclaimed;
  }

  private sendToServer(datagram: Uint8Array): void {
    this.socket?.send(datagram, this.options.server.port, this.options.server.address, () => undefined);
  }

  private proxyFor(peer: Uint8Array, routed = false): Promise<PeerProxy | null> {
    const name = hex(peer);
    let entry = this.proxies.get(name);
    if (entry === undefined) {
      if (this.closed || this.proxies.size >= CLIENT_MAX_PEERS) return Promise.resolve(null);
      const key = new Uint8Array(peer);
      const opened: ProxyEntry = { proxy: Promise.resolve(null), routed, lastUsedMs: Date.now() };
      opened.proxy = PeerProxy.open(
        this.options.devicePort,
        (datagram) => {
          opened.lastUsedMs = Date.now();
          this.sendToPeer(key, datagram);
        },
        this.log,
      ).then(
        (proxy) => {
          // Closed, or reclaimed while it opened: nobody will close it later.
          if (this.closed || this.proxies.get(name) !== opened) proxy.close();
          return proxy;
        },
        (error: Error) => {
          if (this.proxies.get(name) === opened) this.proxies.delete(name);
          this.log.error(`relay client: could not open a loopback proxy: ${error.message}`);
          return null;
        },
      );
      this.proxies.set(name, opened);
      entry = opened;
    }
    entry.lastUsedMs = Date.now();
    if (routed) entry.routed = true;
    return entry.proxy;
  }

  private sendToPeer(peer: Uint8Array, datagram: Uint8Array): void {
    if (this.token === null) {
      this.drops.drop(`a datagram for a peer: not registered with the relay (yet)`);
      return;
    }
    try {
      this.sendToServer(encodeDataToPeer(this.token, peer, datagram));
    } catch (error) {
      if (!(error instanceof RelayProtocolError)) throw error;
      this.drops.drop(`a datagram from the device: ${error.message}`);
    }
  }

  /**
   * One registration round: HELLO, and the REGISTER answering its CHALLENGE.
   * A lost message is resent (each wait twice the one before, at most
   * CLIENT_REGISTER_ATTEMPTS sends): the REGISTER as it is while its cookie is
   * fresh (the server answers a repeat from the same source again), else a new HELLO.
   */
  private register(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let attempt = 0;
      const round: PendingRegistration = {
        helloNonces: new Set(),
        challenge: null,
        register: null,
        unauthenticatedRefusal: null,
        settle: (outcome) => {
          if (this.pending === round) this.pending = null;
          clearTimeout(timer);
          if ('error' in outcome) reject(outcome.error);
          else {
            this.token = outcome.token;
            resolve();
          }
        },
      };
      this.pending?.settle({ error: new RelayRegistrationError('superseded by a newer registration') });
      this.pending = round;
      const sendOne = (): void => {
        if (this.pending !== round) return;
        if (attempt >= CLIENT_REGISTER_ATTEMPTS) {
          const hint = round.unauthenticatedRefusal === null ? '' : `; an unauthenticated REFUSED said: ${round.unauthenticatedRefusal} (is the credential the same on both sides?)`;
          round.settle({ error: new RelayRegistrationError(`relay server ${this.serverText} did not accept the registration after ${attempt} attempts${hint}`) });
          return;
        }
        if (round.register !== null && round.challenge !== null && Date.now() - round.challenge.receivedMs < COOKIE_LIFETIME_MS / 2) {
          this.sendToServer(round.register.bytes);
        } else {
          round.challenge = null;
          round.register = null;
          const nonce = randomBytes(NONCE_SIZE);
          round.helloNonces.add(hex(nonce));
          const signed = helloSignedPart(nonce);
          this.sendToServer(withTag(signed, relayTag(this.authKey, signed)));
        }
        timer = setTimeout(sendOne, CLIENT_REGISTER_FIRST_TIMEOUT_MS * 2 ** attempt);
        attempt++;
      };
      sendOne();
    });
  }

  /** Register again in the background (server restarted, periodic); failures are logged. */
  private reregister(why: string): void {
    const now = Date.now();
    if (this.closed || this.pending !== null || now - this.lastReregisterMs < 1000) return;
    this.lastReregisterMs = now;
    this.register().then(
      () => this.log.verbose(`relay client: re-registered with ${this.serverText} (${why})`),
      (error: Error) => this.log.error(`relay client: re-registration with ${this.serverText} failed: ${error.message}`),
    );
  }

  private receive(datagram: Uint8Array, address: string, port: number): void {
    if (plainAddress(address) !== this.options.server.address || port !== this.options.server.port) {
      this.drops.drop(`a datagram from ${plainAddress(address)}:${port}, which is not the relay server`);
      return;
    }
    let message;
    try {
      message = decodeRelayMessage(datagram);
    } catch (error) {
      if (!(error instanceof RelayProtocolError)) throw error;
      this.drops.drop(`a malformed datagram: ${error.message}`);
      return;
    }
    switch (message.kind) {
      case 'challenge':
        this.challenged(message);
        return;
      case 'registered':
        this.registered_(message);
        return;
      case 'refused':
        this.refused(message);
        return;
      case 'data-from-peer':
        this.dataFromPeer(message);
        return;
      case 'not-registered':
        this.notRegistered(message);
        return;
      default:
        this.drops.drop(`a ${message.kind} message (only servers send to a relay client)`);
    }
  }

  private challenged(message: ChallengeMessage): void {
    const round = this.pending;
    if (round === null || !round.helloNonces.has(hex(message.nonce))) {
      this.drops.drop('a CHALLENGE that answers no HELLO of ours');
      return;
    }
    if (!relayTagValid(this.authKey, challengeSignedPart(message.nonce, message.relayPublicKey, message.issuedMs, message.cookie), message.tag)) {
      this.drops.drop('a CHALLENGE with a bad authentication tag (forged, or the server has another credential)');
      return;
    }
    if (round.challenge !== null && constantTimeEqual(round.challenge.cookie, message.cookie)) return; // a duplicate
    let proofKey: Uint8Array;
    try {
      proofKey = keyProofKey(this.authKey, defaultPrimitives.x25519(this.privateKey, message.relayPublicKey), message.relayPublicKey, this.publicKey);
    } catch {
      this.drops.drop('a CHALLENGE with a low-order relay key');
      return;
    }
    const nonce = randomBytes(NONCE_SIZE);
    const signed = registerSignedPart({ publicKey: this.publicKey, timestampMs: Date.now(), nonce, relayPublicKey: message.relayPublicKey, issuedMs: message.issuedMs, cookie: message.cookie });
    round.challenge = { cookie: message.cookie, receivedMs: Date.now() };
    round.register = { nonce: hex(nonce), bytes: withTag(signed, relayTag(proofKey, signed)), proofKey };
    this.sendToServer(round.register.bytes);
  }

  private registered_(message: RegisteredMessage): void {
    const round = this.pending;
    if (round === null || round.register === null || round.register.nonce !== hex(message.nonce)) {
      this.drops.drop('a REGISTERED that answers no REGISTER of ours');
      return;
    }
    if (!relayTagValid(round.register.proofKey, registeredSignedPart(message.nonce, message.token, message.lifetimeSeconds), message.tag)) {
      this.drops.drop('a REGISTERED with a bad authentication tag (forged, or another relay)');
      return;
    }
    round.settle({ token: message.token });
  }

  private refused(message: RefusedMessage): void {
    const round = this.pending;
    const nonce = hex(message.nonce);
    if (round === null || (!round.helloNonces.has(nonce) && round.register?.nonce !== nonce)) {
      this.drops.drop('a REFUSED that answers no message of ours');
      return;
    }
    if (!relayTagValid(this.authKey, refusedSignedPart(message.nonce, message.reason), message.tag)) {
      // Anyone can send this (or the server has another credential): note it, change nothing.
      round.unauthenticatedRefusal = describeRefusal(message.reason);
      this.drops.drop(`a REFUSED with a bad authentication tag (${round.unauthenticatedRefusal})`);
      return;
    }
    if (message.reason === RefusedReason.badCookie || message.reason === RefusedReason.replayedNonce) {
      // Our cookie aged out or got used: the next attempt asks for a new challenge.
      round.challenge = null;
      round.register = null;
      return;
    }
    round.settle({ error: new RelayRegistrationError(`relay server ${this.serverText} refused the registration: ${describeRefusal(message.reason)}`) });
  }

  private dataFromPeer(message: DataFromPeerMessage): void {
    if (this.token === null || !constantTimeEqual(message.token, this.token)) {
      this.drops.drop('a DATA without our current token (forged, or from before a re-registration)');
      return;
    }
    const payload = message.payload;
    void this.proxyFor(message.peer).then((proxy) => {
      if (proxy === null) this.drops.drop('a datagram from a peer: too many peers');
      else proxy.deliver(payload);
    });
  }

  private notRegistered(message: NotRegisteredMessage): void {
    if (this.token === null || !constantTimeEqual(message.token, this.token) || !constantTimeEqual(message.tag, notRegisteredTag(this.authKey, message.token))) {
      this.drops.drop('a NOT-REGISTERED that is not about our token or has a bad tag (forged?)');
      return;
    }
    this.drops.drop('our registration: the server no longer knows us; registering again');
    this.token = null;
    this.reregister('the server forgot us');
  }
}
