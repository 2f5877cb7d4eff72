/**
 * A TURN client (RFC 8656) over UDP to a standard server (tested against
 * coturn), with long-term credentials (401 + REALM/NONCE, 438 stale nonce).
 * It allocates a relayed address, keeps it, its permissions and channels
 * refreshed, and bridges it to the local WireGuard device through one
 * PeerProxy per remote address: Data indications and ChannelData from a peer
 * A go to the device from A's proxy (created on first sight); what the device
 * sends to that proxy goes back to A as ChannelData when a channel is bound,
 * else as a Send indication. So a remote node only has to use our relayed
 * address as its WireGuard endpoint, once we permitted its IP.
 */
import type dgram from 'node:dgram';
import { bindUdp } from '../udp.js';
import { isIP } from 'node:net';
import { formatEndpoint, type Endpoint, silentLogger, type Logger } from '../../device/index.js';
import { PeerProxy } from '../peer-proxy.js';
import { DropLog } from '../relay/drop-log.js';
import { StunAttributeType, StunClass, StunErrorCode, StunMethod, stunClassOf, stunMessageType, stunMethodOf } from '../stun/constants.js';
import {
  StunError,
  decodeErrorCode,
  decodeStunMessage,
  decodeText,
  decodeXorAddress,
  encodeStunMessage,
  encodeTextAttribute,
  encodeXorAddress,
  findAttribute,
  isStunMessage,
  longTermKey,
  newTransactionId,
  verifyMessageIntegrity,
  type StunAttribute,
  type StunMessage,
} from '../stun/message.js';
import { allocationRefreshDelayMs } from './refresh.js';
import {
  ALLOCATION_LIFETIME_SECONDS,
  CHANNEL_DATA_HEADER_SIZE,
  CHANNEL_NUMBER_MAX,
  CHANNEL_NUMBER_MIN,
  CHANNEL_REFRESH_MS,
  PERMISSION_REFRESH_MS,
  REQUESTED_TRANSPORT_UDP,
  TURN_CLOSE_WAIT_MS,
  TURN_MAX_NONCE_RETRIES,
  TURN_MAX_PEERS,
  TURN_MAX_WAIT_MS,
  TURN_REQUEST_ATTEMPTS,
  TURN_RTO_MS,
} from './constants.js';
import { errorMessage } from '../../platform/index.js';

export interface TurnClientOptions {
  server: Endpoint;
  username: string;
  password: string;
  /** The local WireGuard device's UDP port (on 127.0.0.1). */
  devicePort: number;
  log?: Logger;
}

/** A TURN request failed: an error response, wrong credentials, or no answer. */
export class TurnError extends Error {
  override readonly name = 'TurnError';
  constructor(
    message: string,
    /** The STUN error code, when the server answered with one. */
    readonly code: number | null = null,
  ) {
    super(message);
  }
}

interface Transaction {
  /** Long-term key the response must be authenticated with (null: unauthenticated request). */
  key: Uint8Array | null;
  settle: (response: StunMessage | Error) => void;
}

const METHOD_NAMES: Record<number, string> = {
  [StunMethod.Allocate]: 'Allocate',
  [StunMethod.Refresh]: 'Refresh',
  [StunMethod.CreatePermission]: 'CreatePermission',
  [StunMethod.ChannelBind]: 'ChannelBind',
};

const hexId = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
const plainAddress = (address: string): string => (address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address);
const peerKey = (endpoint: Endpoint): string => `${endpoint.address}|${endpoint.port}`;
const u32 = (value: number): Uint8Array => Uint8Array.of(value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);

export class TurnClient {
  private readonly log: Logger;
  private readonly drops: DropLog;
  private readonly serverText: string;
  private socket: dgram.Socket | null = null;
  private realm: string | null = null;
  private nonce: string | null = null;
  private key: Uint8Array | null = null;
  private relayed: Endpoint | null = null;
  private mapped: Endpoint | null = null;
  private readonly transactions = new Map<string, Transaction>();
  private refreshTimer: NodeJS.Timeout | null = null;
  /** IP → its refresh timer (also the IPs whose data we accept: the server relays nothing else). */
  private readonly permissions = new Map<string, NodeJS.Timeout>();
  /** IPs with a bound channel (a channel installs a permission too). */
  private readonly channelIps = new Set<string>();
  /** Peer (address|port) → channel; and the reverse. */
  private readonly channelsByPeer = new Map<string, { number: number; timer: NodeJS.Timeout }>();
  private readonly peersByChannel = new Map<number, Endpoint>();
  private nextChannel = CHANNEL_NUMBER_MIN;
  private readonly proxies = new Map<string, Promise<PeerProxy | null>>();
  private closed = false;
  /** What crossed the data path, by way (diagnostics, and tests that must tell ChannelData from indications). */
  readonly counters = { dataIndicationsIn: 0, channelDataIn: 0, sendIndicationsOut: 0, channelDataOut: 0, staleNonceRetries: 0 };

  constructor(private readonly options: TurnClientOptions) {
    this.log = options.log ?? silentLogger;
    this.serverText = formatEndpoint(options.server);
    this.drops = new DropLog(this.log, `TURN client (${this.serverText})`);
  }

  /** The XOR-RELAYED-ADDRESS of the allocation (our relay candidate), or null before allocate(). */
  get relayedAddress(): Endpoint | null {
    return this.relayed;
  }

  /** Our address as the TURN server sees it (XOR-MAPPED-ADDRESS of the Allocate response). */
  get mappedAddress(): Endpoint | null {
    return this.mapped;
  }

  /** Datagrams dropped so far (forged, malformed, unexpected). */
  get dropped(): number {
    return this.drops.dropped;
  }

  /** Allocate a relayed UDP address; rejects with TurnError on wrong credentials, an error response or no answer. */
  async allocate(): Promise<Endpoint> {
    if (this.closed) throw new TurnError('TURN client is closed');
    if (this.relayed !== null) return this.relayed;
    await this.openSocket();
    const transport: StunAttribute = { type: StunAttributeType.RequestedTransport, value: u32(REQUESTED_TRANSPORT_UDP << 24) };
    const lifetime: StunAttribute = { type: StunAttributeType.Lifetime, value: u32(ALLOCATION_LIFETIME_SECONDS) };
    // The first Allocate carries no credentials: the 401 answer tells us the realm and a nonce.
    const first = await this.transact(StunMethod.Allocate, [transport, lifetime], null);
    let response = first;
    if (stunClassOf(first.type) === StunClass.ErrorResponse) {
      const { code } = this.errorOf(first);
      if (code !== StunErrorCode.Unauthorized) throw this.failure('Allocate', first);
      this.learnRealmAndNonce(first, 'Allocate');
      this.key = longTermKey(this.options.username, this.realm!, this.options.password);
      response = await this.authenticatedRequest(StunMethod.Allocate, [transport, lifetime]);
    }
    const relayedValue = findAttribute(response, StunAttributeType.XorRelayedAddress);
    if (relayedValue === undefined) throw new TurnError(`TURN server ${this.serverText}: Allocate succeeded without XOR-RELAYED-ADDRESS`);
    this.relayed = decodeXorAddress(relayedValue, response.transactionId);
    const mappedValue = findAttribute(response, StunAttributeType.XorMappedAddress);
    if (mappedValue !== undefined) this.mapped = decodeXorAddress(mappedValue, response.transactionId);
    this.scheduleRefresh(this.lifetimeOf(response));
    this.log.verbose(`TURN client: allocated ${formatEndpoint(this.relayed)} at ${this.serverText}`);
    return this.relayed;
  }

  /** CreatePermission for `peerAddress` (an IP; the port does not matter); refreshed before its 300 s expiry. */
  async permit(peerAddress: string): Promise<void> {
    const family = isIP(peerAddress);
    if (family === 0) throw new TurnError(`TURN permit: '${peerAddress}' is not an IP address`);
    this.requireAllocation('permit');
    const address = plainAddress(peerAddress);
    const peer: Endpoint = { family: family === 4 ? 4 : 6, address, port: 0 };
    await this.authenticatedRequest(StunMethod.CreatePermission, (tid) => [{ type: StunAttributeType.XorPeerAddress, value: encodeXorAddress(peer, tid) }]);
    clearTimeout(this.permissions.get(address));
    const timer = setTimeout(() => {
      this.permit(address).catch((error: Error) => this.log.error(`TURN client: refreshing the permission for ${address} failed: ${error.message}`));
    }, PERMISSION_REFRESH_MS);
    timer.unref();
    this.permissions.set(address, timer);
  }

  /** ChannelBind `peer` to a channel number (also installs its permission); refreshed before its 600 s expiry. */
  async bindChannel(peer: Endpoint): Promise<number> {
    this.requireAllocation('bindChannel');
    const key = peerKey(peer);
    const existing = this.channelsByPeer.get(key);
    const number = existing?.number ?? this.nextChannel;
    if (existing === undefined && number > CHANNEL_NUMBER_MAX) throw new TurnError('TURN bindChannel: all channel numbers are in use');
    await this.authenticatedRequest(StunMethod.ChannelBind, (tid) => [
      { type: StunAttributeType.ChannelNumber, value: u32(number << 16) },
      { type: StunAttributeType.XorPeerAddress, value: encodeXorAddress(peer, tid) },
    ]);
    if (existing === undefined) this.nextChannel++;
    clearTimeout(existing?.timer);
    const timer = setTimeout(() => {
      this.bindChannel(peer).catch((error: Error) => this.log.error(`TURN client: refreshing channel 0x${number.toString(16)} failed: ${error.message}`));
    }, CHANNEL_REFRESH_MS);
    timer.unref();
    this.channelsByPeer.set(key, { number, timer });
    this.peersByChannel.set(number, { ...peer });
    this.channelIps.add(peer.address);
    return number;
  }

  /**
   * The loopback endpoint to give the device for the remote `peer` (reached
   * through the relay); permits the peer's IP first.
   */
  async routePeer(peer: Endpoint): Promise<Endpoint> {
    await this.permit(peer.address);
    const proxy = await this.proxyFor(peer);
    if (proxy === null) throw new TurnError(`TURN client: cannot route more than ${TURN_MAX_PEERS} peers`);
    return proxy.endpoint;
  }

  /** Release the allocation (Refresh with LIFETIME 0, best effort) and everything local. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    for (const timer of this.permissions.values()) clearTimeout(timer);
    for (const { timer } of this.channelsByPeer.values()) clearTimeout(timer);
    if (this.relayed !== null && this.socket !== null) {
      const release = this.authenticatedRequest(StunMethod.Refresh, [{ type: StunAttributeType.Lifetime, value: u32(0) }]).catch((error: Error) => {
        this.log.verbose(`TURN client: releasing the allocation: ${error.message}`);
      });
      await Promise.race([release, new Promise((resolve) => setTimeout(resolve, TURN_CLOSE_WAIT_MS))]);
    }
    for (const transaction of this.transactions.values()) transaction.settle(new TurnError('TURN client closed'));
    this.transactions.clear();
    for (const proxy of this.proxies.values()) void proxy.then((p) => p?.close());
    this.proxies.clear();
    this.socket?.close();
    this.socket = null;
    this.relayed = null;
  }

  // ---- requests ------------------------------------------------------------

  private requireAllocation(what: string): void {
    if (this.closed) throw new TurnError(`TURN ${what}: the client is closed`);
    if (this.relayed === null) throw new TurnError(`TURN ${what}: allocate() first`);
  }

  private async openSocket(): Promise<void> {
    if (this.socket !== null) return;
    const socket = await bindUdp({ type: this.options.server.family === 4 ? 'udp4' : 'udp6' });
    this.socket = socket;
    socket.on('error', (error) => this.log.error(`TURN client (${this.serverText}): socket error: ${error.message}`));
    socket.on('message', (message, info) => this.receive(new Uint8Array(message.buffer, message.byteOffset, message.byteLength), info.address, info.port));
  }

  private sendToServer(datagram: Uint8Array): void {
    this.socket?.send(datagram, this.options.server.port, this.options.server.address, () => undefined);
  }

  /**
   * An authenticated request; retried with the new nonce after 438 Stale
   * Nonce (or a 401 that carries a fresh one). Resolves with the success
   * response; rejects with TurnError otherwise.
   */
  private async authenticatedRequest(method: number, attributes: StunAttribute[] | ((tid: Uint8Array) => StunAttribute[])): Promise<StunMessage> {
    const name = METHOD_NAMES[method] ?? `method 0x${method.toString(16)}`;
    if (this.key === null && this.realm === null && this.relayed !== null) {
      // A server without authentication (no 401 on Allocate): plain requests.
      const response = await this.transact(method, attributes, null);
      if (stunClassOf(response.type) === StunClass.ErrorResponse) throw this.failure(name, response);
      return response;
    }
    for (let retry = 0; ; retry++) {
      if (this.key === null || this.realm === null || this.nonce === null) throw new TurnError(`TURN ${name}: no realm/nonce yet (allocate() first)`);
      const credentials: StunAttribute[] = [
        encodeTextAttribute(StunAttributeType.Username, this.options.username),
        encodeTextAttribute(StunAttributeType.Realm, this.realm),
        encodeTextAttribute(StunAttributeType.Nonce, this.nonce),
      ];
      const nonceUsed = this.nonce;
      const response = await this.transact(method, (tid) => [...(typeof attributes === 'function' ? attributes(tid) : attributes), ...credentials], this.key);
      if (stunClassOf(response.type) !== StunClass.ErrorResponse) return response;
      const { code } = this.errorOf(response);
      const newNonce = findAttribute(response, StunAttributeType.Nonce);
      const stale = code === StunErrorCode.StaleNonce || (code === StunErrorCode.Unauthorized && newNonce !== undefined && decodeText(newNonce) !== nonceUsed);
      if (!stale || retry >= TURN_MAX_NONCE_RETRIES) {
        if (code === StunErrorCode.Unauthorized || code === StunErrorCode.WrongCredentials) {
          throw new TurnError(`TURN server ${this.serverText} refused the credentials of user '${this.options.username}' (${this.describeError(response)}): wrong username or password?`, code);
        }
        throw this.failure(name, response);
      }
      this.learnRealmAndNonce(response, name);
      this.counters.staleNonceRetries++;
      if (this.realm !== null) this.key = longTermKey(this.options.username, this.realm, this.options.password);
    }
  }

  /**
   * One transaction: send, retransmit on timeouts, resolve with the matching
   * response (success or error). Responses must come from the server and carry
   * a valid MESSAGE-INTEGRITY when `key` is set (401/438 excepted); others are dropped.
   */
  private transact(method: number, attributes: StunAttribute[] | ((tid: Uint8Array) => StunAttribute[]), key: Uint8Array | null): Promise<StunMessage> {
    const tid = newTransactionId();
    const name = METHOD_NAMES[method] ?? `method 0x${method.toString(16)}`;
    const request = encodeStunMessage(
      { type: stunMessageType(method, StunClass.Request), transactionId: tid, attributes: typeof attributes === 'function' ? attributes(tid) : attributes },
      key === null ? {} : { integrityKey: key, fingerprint: true },
    );
    return new Promise<StunMessage>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let attempt = 0;
      const id = hexId(tid);
      const transaction: Transaction = {
        key,
        settle: (outcome) => {
          clearTimeout(timer);
          this.transactions.delete(id);
          if (outcome instanceof Error) reject(outcome);
          else resolve(outcome);
        },
      };
      this.transactions.set(id, transaction);
      const sendOne = (): void => {
        if (this.transactions.get(id) !== transaction) return;
        if (attempt >= TURN_REQUEST_ATTEMPTS) {
          transaction.settle(new TurnError(`TURN server ${this.serverText} did not answer ${name} (${attempt} requests sent)`));
          return;
        }
        this.sendToServer(request);
        timer = setTimeout(sendOne, Math.min(TURN_RTO_MS * 2 ** attempt, TURN_MAX_WAIT_MS));
        attempt++;
      };
      sendOne();
    });
  }

  private errorOf(response: StunMessage): { code: number; reason: string } {
    const value = findAttribute(response, StunAttributeType.ErrorCode);
    if (value === undefined) return { code: 0, reason: 'error response without ERROR-CODE' };
    try {
      return decodeErrorCode(value);
    } catch (error) {
      return { code: 0, reason: errorMessage(error) };
    }
  }

  private describeError(response: StunMessage): string {
    const { code, reason } = this.errorOf(response);
    return reason === '' ? `${code}` : `${code} ${reason}`;
  }

  private failure(what: string, response: StunMessage): TurnError {
    const { code } = this.errorOf(response);
    return new TurnError(`TURN server ${this.serverText} answered ${what} with error ${this.describeError(response)}`, code);
  }

  private learnRealmAndNonce(response: StunMessage, what: string): void {
    const realm = findAttribute(response, StunAttributeType.Realm);
    const nonce = findAttribute(response, StunAttributeType.Nonce);
    if (realm !== undefined) this.realm = decodeText(realm);
    if (nonce === undefined || this.realm === null) {
      throw new TurnError(`TURN server ${this.serverText} answered ${what} with ${this.describeError(response)} but no ${nonce === undefined ? 'NONCE' : 'REALM'}`);
    }
    this.nonce = decodeText(nonce);
  }

  private lifetimeOf(response: StunMessage): number {
    const value = findAttribute(response, StunAttributeType.Lifetime);
    if (value === undefined || value.length !== 4) return ALLOCATION_LIFETIME_SECONDS;
    return new DataView(value.buffer, value.byteOffset, 4).getUint32(0);
  }

  private scheduleRefresh(lifetimeSeconds: number): void {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    if (this.closed) return;
    const delay = allocationRefreshDelayMs(lifetimeSeconds);
    this.refreshTimer = setTimeout(() => {
      this.authenticatedRequest(StunMethod.Refresh, [{ type: StunAttributeType.Lifetime, value: u32(ALLOCATION_LIFETIME_SECONDS) }]).then(
        (response) => {
          this.log.verbose(`TURN client: allocation ${this.relayed ? formatEndpoint(this.relayed) : ''} refreshed`);
          this.scheduleRefresh(this.lifetimeOf(response));
        },
        (error: Error) => {
          this.log.error(`TURN client: refreshing the allocation failed: ${error.message}; retrying`);
          if (!this.closed) this.scheduleRefresh(Math.max(2, lifetimeSeconds / 4));
        },
      );
    }, delay);
    this.refreshTimer.unref();
  }

  // ---- data path -------------------------------------------------------------

  private proxyFor(peer: Endpoint): Promise<PeerProxy | null> {
    const key = peerKey(peer);
    let proxy = this.proxies.get(key);
    if (proxy === undefined) {
      if (this.closed || this.proxies.size >= TURN_MAX_PEERS) return Promise.resolve(null);
      const remote = { ...peer };
      proxy = PeerProxy.open(this.options.devicePort, (datagram) => this.sendToPeer(remote, datagram), this.log).then(
        (opened) => {
          if (this.closed) opened.close();
          return opened;
        },
        (error: Error) => {
          this.proxies.delete(key);
          this.log.error(`TURN client: could not open a loopback proxy for ${formatEndpoint(remote)}: ${error.message}`);
          return null;
        },
      );
      this.proxies.set(key, proxy);
    }
    return proxy;
  }

  /** What the device sent to `peer`'s proxy: ChannelData when a channel is bound, else a Send indication. */
  private sendToPeer(peer: Endpoint, datagram: Uint8Array): void {
    const channel = this.channelsByPeer.get(peerKey(peer));
    if (channel !== undefined) {
      const out = new Uint8Array(CHANNEL_DATA_HEADER_SIZE + datagram.length);
      new DataView(out.buffer).setUint16(0, channel.number);
      new DataView(out.buffer).setUint16(2, datagram.length);
      out.set(datagram, CHANNEL_DATA_HEADER_SIZE);
      this.sendToServer(out);
      this.counters.channelDataOut++;
      return;
    }
    const tid = newTransactionId();
    try {
      this.sendToServer(
        encodeStunMessage({
          type: stunMessageType(StunMethod.Send, StunClass.Indication),
          transactionId: tid,
          attributes: [
            { type: StunAttributeType.XorPeerAddress, value: encodeXorAddress(peer, tid) },
            { type: StunAttributeType.Data, value: datagram },
          ],
        }),
      );
      this.counters.sendIndicationsOut++;
    } catch (error) {
      if (!(error instanceof StunError)) throw error;
      this.drops.drop(`a datagram from the device for ${formatEndpoint(peer)}: ${error.message}`);
    }
  }

  private deliver(peer: Endpoint, payload: Uint8Array): void {
    void this.proxyFor(peer).then((proxy) => {
      if (proxy === null) this.drops.drop(`a datagram from ${formatEndpoint(peer)}: too many peers`);
      else proxy.deliver(payload);
    });
  }

  private receive(datagram: Uint8Array, address: string, port: number): void {
    if (plainAddress(address) !== this.options.server.address || port !== this.options.server.port) {
      this.drops.drop(`a datagram from ${plainAddress(address)}:${port}, which is not the TURN server`);
      return;
    }
    const first = datagram[0];
    if (first !== undefined && first >> 6 === 1) {
      this.receiveChannelData(datagram);
      return;
    }
    if (!isStunMessage(datagram)) {
      this.drops.drop(`a datagram of ${datagram.length} bytes that is neither STUN nor ChannelData`);
      return;
    }
    let message: StunMessage;
    try {
      message = decodeStunMessage(datagram);
    } catch (error) {
      if (!(error instanceof StunError)) throw error;
      this.drops.drop(`a malformed STUN message: ${error.message}`);
      return;
    }
    const cls = stunClassOf(message.type);
    if (cls === StunClass.Indication) {
      this.receiveIndication(message);
      return;
    }
    if (cls === StunClass.Request) {
      this.drops.drop('a STUN request (a TURN client serves none)');
      return;
    }
    const transaction = this.transactions.get(hexId(message.transactionId));
    if (transaction === undefined) {
      this.drops.drop(`a ${cls === StunClass.SuccessResponse ? 'success' : 'error'} response with an unknown transaction id`);
      return;
    }
    if (transaction.key !== null) {
      const hasIntegrity = findAttribute(message, StunAttributeType.MessageIntegrity) !== undefined;
      const code = cls === StunClass.ErrorResponse ? this.errorOf(message).code : 0;
      // 401 and 438 come without MESSAGE-INTEGRITY (the server may not know our key); everything else must carry a valid one.
      const mayLackIntegrity = code === StunErrorCode.Unauthorized || code === StunErrorCode.StaleNonce;
      if (hasIntegrity ? !verifyMessageIntegrity(datagram, transaction.key) : !mayLackIntegrity) {
        this.drops.drop(`a response to ${METHOD_NAMES[stunMethodOf(message.type)] ?? 'a request'} with ${hasIntegrity ? 'a bad' : 'no'} MESSAGE-INTEGRITY (forged?)`);
        return;
      }
    }
    transaction.settle(message);
  }

  private receiveIndication(message: StunMessage): void {
    if (stunMethodOf(message.type) !== StunMethod.Data) {
      this.drops.drop(`an indication of method 0x${stunMethodOf(message.type).toString(16)}`);
      return;
    }
    const peerValue = findAttribute(message, StunAttributeType.XorPeerAddress);
    const data = findAttribute(message, StunAttributeType.Data);
    if (peerValue === undefined || data === undefined) {
      this.drops.drop(`a Data indication without ${peerValue === undefined ? 'XOR-PEER-ADDRESS' : 'DATA'}`);
      return;
    }
    let peer: Endpoint;
    try {
      peer = decodeXorAddress(peerValue, message.transactionId);
    } catch (error) {
      if (!(error instanceof StunError)) throw error;
      this.drops.drop(`a Data indication: ${error.message}`);
      return;
    }
    if (!this.permissions.has(peer.address) && !this.channelIps.has(peer.address)) {
      // The server relays only from permitted IPs: anything else is forged (and must not get a proxy).
      this.drops.drop(`a Data indication from ${formatEndpoint(peer)}, which has no permission`);
      return;
    }
    this.counters.dataIndicationsIn++;
    this.deliver(peer, data);
  }

  private receiveChannelData(datagram: Uint8Array): void {
    if (datagram.length < CHANNEL_DATA_HEADER_SIZE) {
      this.drops.drop(`a ChannelData message of ${datagram.length} bytes (shorter than its header)`);
      return;
    }
    const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
    const number = view.getUint16(0);
    const length = view.getUint16(2);
    // Over UDP the data may be followed by up to 3 bytes of padding.
    if (CHANNEL_DATA_HEADER_SIZE + length > datagram.length || datagram.length - CHANNEL_DATA_HEADER_SIZE - length > 3) {
      this.drops.drop(`a ChannelData message whose length field (${length}) does not match its ${datagram.length} bytes`);
      return;
    }
    const peer = this.peersByChannel.get(number);
    if (peer === undefined) {
      this.drops.drop(`ChannelData on unbound channel 0x${number.toString(16)}`);
      return;
    }
    this.counters.channelDataIn++;
    this.deliver(peer, datagram.slice(CHANNEL_DATA_HEADER_SIZE, CHANNEL_DATA_HEADER_SIZE + length));
  }
}
