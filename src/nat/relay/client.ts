/**
 * The built-in relay's client. It registers the node's public key with the
 * relay server (authenticated with the key derived from the credential),
 * keeps the registration alive, and bridges the relay to the local WireGuard
 * device through one PeerProxy per remote node: routePeer(key) gives the
 * loopback endpoint to set as that peer's endpoint. Traffic arriving from a
 * node not routed yet gets a proxy on first sight, so the device learns the
 * relayed path by roaming when only the other side chose the relay.
 */
import { randomBytes } from 'node:crypto';
import type dgram from 'node:dgram';
import { bindUdp } from '../udp.js';
import { isIP } from 'node:net';
import { formatEndpoint, type Endpoint } from '../../device/addr.js';
import { silentLogger, type Logger } from '../../device/logger.js';
import { PeerProxy } from '../peer-proxy.js';
import { deriveRelayAuthKey, relayTag, relayTagValid } from './auth.js';
import {
  CLIENT_KEEPALIVE_INTERVAL_MS,
  CLIENT_MAX_PEERS,
  CLIENT_REGISTER_ATTEMPTS,
  CLIENT_REGISTER_FIRST_TIMEOUT_MS,
  CLIENT_REREGISTER_INTERVAL_MS,
  NONCE_SIZE,
  PUBLIC_KEY_SIZE,
} from './constants.js';
import { DropLog } from './drop-log.js';
import {
  RelayProtocolError,
  decodeRelayMessage,
  describeRefusal,
  encodeDataToPeer,
  encodeKeepalive,
  registerSignedPart,
  registeredSignedPart,
  withTag,
  type RefusedMessage,
  type RegisteredMessage,
} from './protocol.js';

export interface RelayClientOptions {
  server: Endpoint;
  credential: string;
  /** This node's WireGuard public key (its name at the relay). */
  localPublicKey: Uint8Array;
  /** The local WireGuard device's UDP port (on 127.0.0.1). */
  devicePort: number;
  log?: Logger;
}

/** Registration failed: refused by the server, or no answer. */
export class RelayRegistrationError extends Error {
  override readonly name = 'RelayRegistrationError';
}

interface PendingRegistration {
  nonces: Set<string>;
  settle: (outcome: { token: Uint8Array } | { error: Error }) => void;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
const plainAddress = (address: string): string => (address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address);

export class RelayClient {
  private readonly authKey: Uint8Array;
  private readonly log: Logger;
  private readonly drops: DropLog;
  private readonly serverText: string;
  private socket: dgram.Socket | null = null;
  private token: Uint8Array | null = null;
  private pending: PendingRegistration | null = null;
  private readonly proxies = new Map<string, Promise<PeerProxy>>();
  private readonly timers: NodeJS.Timeout[] = [];
  private lastReregisterMs = 0;
  private closed = false;

  constructor(private readonly options: RelayClientOptions) {
    if (options.localPublicKey.length !== PUBLIC_KEY_SIZE) throw new RangeError(`relay client: a public key is ${PUBLIC_KEY_SIZE} bytes, got ${options.localPublicKey.length}`);
    this.authKey = deriveRelayAuthKey(options.credential);
    this.log = options.log ?? silentLogger;
    this.serverText = formatEndpoint(options.server);
    this.drops = new DropLog(this.log, `relay client (${this.serverText})`);
  }

  /** True while the server has accepted us (a token is held). */
  get registered(): boolean {
    return this.token !== null;
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
    for (const timer of [keepalive, reregister]) {
      timer.unref();
      this.timers.push(timer);
    }
    this.log.verbose(`relay client: registered with ${this.serverText}`);
  }

  /** The loopback endpoint to give the device as `peerPublicKey`'s endpoint (one proxy per peer). */
  async routePeer(peerPublicKey: Uint8Array): Promise<Endpoint> {
    if (peerPublicKey.length !== PUBLIC_KEY_SIZE) throw new RangeError(`relay client: a public key is ${PUBLIC_KEY_SIZE} bytes, got ${peerPublicKey.length}`);
    const proxy = await this.proxyFor(peerPublicKey);
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
    for (const proxy of this.proxies.values()) void proxy.then((p) => p.close(), () => undefined);
    this.proxies.clear();
  }

  private sendToServer(datagram: Uint8Array): void {
    this.socket?.send(datagram, this.options.server.port, this.options.server.address, () => undefined);
  }

  private proxyFor(peer: Uint8Array): Promise<PeerProxy | null> {
    const name = hex(peer);
    let proxy = this.proxies.get(name);
    if (proxy === undefined) {
      if (this.closed || this.proxies.size >= CLIENT_MAX_PEERS) return Promise.resolve(null);
      const key = new Uint8Array(peer);
      proxy = PeerProxy.open(this.options.devicePort, (datagram) => this.sendToPeer(key, datagram), this.log);
      this.proxies.set(name, proxy);
      proxy.then(
        (opened) => {
          if (this.closed) opened.close();
        },
        (error: Error) => {
          this.proxies.delete(name);
          this.log.error(`relay client: could not open a loopback proxy: ${error.message}`);
        },
      );
    }
    return proxy.catch(() => null);
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

  /** One registration round: up to CLIENT_REGISTER_ATTEMPTS REGISTERs, each with a fresh nonce. */
  private register(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let attempt = 0;
      const round: PendingRegistration = {
        nonces: new Set(),
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
          round.settle({ error: new RelayRegistrationError(`relay server ${this.serverText} did not answer ${attempt} REGISTER messages`) });
          return;
        }
        const nonce = randomBytes(NONCE_SIZE);
        round.nonces.add(hex(nonce));
        const signed = registerSignedPart(this.options.localPublicKey, Date.now(), nonce);
        this.sendToServer(withTag(signed, relayTag(this.authKey, signed)));
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
      case 'registered':
        this.registered_(message);
        return;
      case 'refused':
        this.refused(message);
        return;
      case 'data-from-peer': {
        const payload = message.payload;
        void this.proxyFor(message.peer).then((proxy) => {
          if (proxy === null) this.drops.drop('a datagram from a peer: too many peers');
          else proxy.deliver(payload);
        });
        return;
      }
      case 'not-registered':
        this.drops.drop('our registration: the server no longer knows us; registering again');
        this.token = null;
        this.reregister('the server forgot us');
        return;
      default:
        this.drops.drop(`a ${message.kind} message (only servers send to a relay client)`);
    }
  }

  private registered_(message: RegisteredMessage): void {
    const round = this.pending;
    if (round === null || !round.nonces.has(hex(message.nonce))) {
      this.drops.drop('a REGISTERED that answers no REGISTER of ours');
      return;
    }
    if (!relayTagValid(this.authKey, registeredSignedPart(message.nonce, message.token, message.lifetimeSeconds), message.tag)) {
      this.drops.drop('a REGISTERED with a bad authentication tag (forged, or the server has another credential)');
      return;
    }
    round.settle({ token: message.token });
  }

  private refused(message: RefusedMessage): void {
    const round = this.pending;
    if (round === null || !round.nonces.has(hex(message.nonce))) {
      this.drops.drop('a REFUSED that answers no REGISTER of ours');
      return;
    }
    round.settle({ error: new RelayRegistrationError(`relay server ${this.serverText} refused the registration: ${describeRefusal(message.reason)}`) });
  }
}
