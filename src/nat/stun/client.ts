/**
 * A STUN client (RFC 8489 §6–7) over a DatagramPort: Binding requests that
 * discover the server-reflexive address of that port. Over the WireGuard
 * device's port (devicePort) the answer is the NAT mapping WireGuard itself
 * uses; netcheck uses a socket of its own.
 *
 * Retransmission follows RFC 8489 §6.2.1: the request goes out at 0, RTO,
 * 3 RTO, 7 RTO, … (the interval doubles), Rc requests in all, then the client
 * waits Rm × RTO for the last one. Only responses whose transaction id is
 * pending and that come from the server asked are consumed; malformed or
 * forged ones are dropped with a verbose log line, never thrown.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { bytesToIp, formatEndpoint, ipToBytes, type Endpoint, silentLogger, type Logger } from '../../device/index.js';
import type { DatagramPort } from '../datagram-port.js';
import {
  KNOWN_COMPREHENSION_REQUIRED,
  STUN_DEFAULT_LAST_WAIT_MULTIPLIER,
  STUN_DEFAULT_MAX_REQUESTS,
  STUN_DEFAULT_PORT,
  STUN_DEFAULT_RTO_MS,
  STUN_HEADER_LENGTH,
  STUN_TRANSACTION_ID_LENGTH,
  StunAttributeType,
  StunClass,
  StunMessageType,
  StunMethod,
  stunClassOf,
  stunMethodOf,
} from './constants.js';
import {
  StunError,
  decodeErrorCode,
  decodeMappedAddress,
  decodeStunMessage,
  decodeXorAddress,
  encodeStunMessage,
  findAttribute,
  isStunMessage,
  newTransactionId,
  type StunMessage,
} from './message.js';
import { errorMessage } from '../../platform/index.js';

export interface StunClientOptions {
  /** Initial retransmission timeout (RTO), ms; default 500. */
  rtoMs?: number;
  /** Retransmissions after the first request (Rc − 1); default 6, so 7 requests in all. */
  maxRetransmits?: number;
  /** Rm: after the last request, wait this many RTOs; default 16. */
  lastWaitMultiplier?: number;
  log?: Logger;
}

export interface BindingOptions {
  /** Give up after this many ms even when retransmissions remain (the CLI's --timeout-ms). */
  timeoutMs?: number;
}

export interface BindingResult {
  /** The server-reflexive address: XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS. */
  mapped: Endpoint;
  /** ms from the latest transmission to the response. */
  rttMs: number;
  /** ms from the first transmission to the response. */
  elapsedMs: number;
  /** How many times the request was sent (1 = no retransmission). */
  transmissions: number;
}

export class StunTimeoutError extends Error {
  override readonly name = 'StunTimeoutError';
}

interface PendingTransaction {
  server: Endpoint;
  serverBytes: string;
  request: Uint8Array;
  firstSentAt: number;
  lastSentAt: number;
  transmissions: number;
  timer: NodeJS.Timeout | undefined;
  deadline: NodeJS.Timeout | undefined;
  /** Why the latest response for this transaction was dropped, for the timeout message. */
  lastDropped: string | undefined;
  resolve(result: BindingResult): void;
  reject(error: Error): void;
}

const toHex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');

/** Address bytes and port as one string: compares endpoints whatever text form each address is in. */
function endpointKey(endpoint: Endpoint): string {
  try {
    return `${toHex(ipToBytes(endpoint.address))}/${endpoint.port}`;
  } catch {
    return `${endpoint.address}/${endpoint.port}`;
  }
}

export class StunClient {
  private readonly pending = new Map<string, PendingTransaction>();
  private readonly unsubscribe: () => void;
  private readonly rtoMs: number;
  private readonly maxRetransmits: number;
  private readonly lastWaitMultiplier: number;
  private readonly log: Logger;
  private closed = false;

  constructor(
    private readonly port: DatagramPort,
    options: StunClientOptions = {},
  ) {
    this.rtoMs = options.rtoMs ?? STUN_DEFAULT_RTO_MS;
    this.maxRetransmits = options.maxRetransmits ?? STUN_DEFAULT_MAX_REQUESTS - 1;
    this.lastWaitMultiplier = options.lastWaitMultiplier ?? STUN_DEFAULT_LAST_WAIT_MULTIPLIER;
    this.log = options.log ?? silentLogger;
    if (!(this.rtoMs > 0) || !Number.isInteger(this.maxRetransmits) || this.maxRetransmits < 0 || !(this.lastWaitMultiplier > 0)) {
      throw new RangeError(
        `StunClient options out of range: rtoMs ${this.rtoMs} (> 0), maxRetransmits ${this.maxRetransmits} (integer >= 0), lastWaitMultiplier ${this.lastWaitMultiplier} (> 0)`,
      );
    }
    this.unsubscribe = port.subscribe((datagram, from) => this.onDatagram(datagram, from));
  }

  /** The server-reflexive address of this client's port as `server` sees it. Rejects StunTimeoutError or StunError. */
  async bindingRequest(server: Endpoint, options: BindingOptions = {}): Promise<Endpoint> {
    return (await this.binding(server, options)).mapped;
  }

  /** bindingRequest with timing details (netcheck reports the RTT; tests look at the transmissions). */
  binding(server: Endpoint, options: BindingOptions = {}): Promise<BindingResult> {
    const where = formatEndpoint(server);
    if (this.closed) return Promise.reject(new StunError(`STUN client is closed; cannot ask ${where}`));
    const transactionId = newTransactionId();
    const request = encodeStunMessage({ type: StunMessageType.BindingRequest, transactionId, attributes: [] }, { fingerprint: true });
    const key = toHex(transactionId);
    return new Promise<BindingResult>((resolve, reject) => {
      const transaction: PendingTransaction = {
        server,
        serverBytes: endpointKey(server),
        request,
        firstSentAt: 0,
        lastSentAt: 0,
        transmissions: 0,
        timer: undefined,
        deadline: undefined,
        lastDropped: undefined,
        resolve,
        reject,
      };
      this.pending.set(key, transaction);
      if (options.timeoutMs !== undefined) {
        transaction.deadline = setTimeout(
          () => this.fail(key, new StunTimeoutError(this.timeoutMessage(transaction, `within ${options.timeoutMs} ms`))),
          options.timeoutMs,
        );
      }
      this.transmit(key, transaction, this.rtoMs);
    });
  }

  /** Stop listening; pending requests reject. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    for (const [key, transaction] of [...this.pending]) {
      this.fail(key, new StunError(`STUN client closed while waiting for ${formatEndpoint(transaction.server)}`));
    }
  }

  private timeoutMessage(transaction: PendingTransaction, how: string): string {
    const dropped = transaction.lastDropped !== undefined ? `; the last response was dropped: ${transaction.lastDropped}` : '';
    return `STUN server ${formatEndpoint(transaction.server)} did not answer ${how} (${transaction.transmissions} request${transaction.transmissions === 1 ? '' : 's'} sent)${dropped}`;
  }

  /** Send (or resend) and schedule the next step: another retransmission with a doubled RTO, or the final wait. */
  private transmit(key: string, transaction: PendingTransaction, rto: number): void {
    const now = performance.now();
    if (transaction.transmissions === 0) transaction.firstSentAt = now;
    transaction.lastSentAt = now;
    transaction.transmissions++;
    const where = formatEndpoint(transaction.server);
    if (transaction.transmissions > 1) this.log.verbose(`STUN: retransmitting Binding request to ${where} (${transaction.transmissions})`);
    this.port.send(transaction.request, transaction.server).catch((error: unknown) => {
      this.fail(key, new StunError(`sending a STUN Binding request to ${where} failed: ${errorMessage(error)}`));
    });
    if (transaction.transmissions <= this.maxRetransmits) {
      transaction.timer = setTimeout(() => this.transmit(key, transaction, rto * 2), rto);
    } else {
      const total = Math.round(performance.now() - transaction.firstSentAt + this.rtoMs * this.lastWaitMultiplier);
      transaction.timer = setTimeout(
        () => this.fail(key, new StunTimeoutError(this.timeoutMessage(transaction, `within about ${total} ms`))),
        this.rtoMs * this.lastWaitMultiplier,
      );
    }
  }

  private settle(key: string): PendingTransaction | undefined {
    const transaction = this.pending.get(key);
    if (transaction === undefined) return undefined;
    this.pending.delete(key);
    clearTimeout(transaction.timer);
    clearTimeout(transaction.deadline);
    return transaction;
  }

  private fail(key: string, error: Error): void {
    this.settle(key)?.reject(error);
  }

  /** The port subscriber. Never throws: a subscriber that throws would break the device's receive path. */
  private onDatagram(datagram: Uint8Array, from: Endpoint): boolean {
    try {
      return this.handle(datagram, from);
    } catch (error) {
      this.log.error(`STUN: unexpected error handling a datagram from ${formatEndpoint(from)}: ${errorMessage(error)}`);
      return false;
    }
  }

  private handle(datagram: Uint8Array, from: Endpoint): boolean {
    if (this.pending.size === 0 || !isStunMessage(datagram)) return false;
    const key = toHex(datagram.subarray(8, STUN_HEADER_LENGTH));
    const transaction = this.pending.get(key);
    // Not one of ours (another STUN user on the same port, e.g. the TURN client): leave it to them.
    if (transaction === undefined || key.length !== STUN_TRANSACTION_ID_LENGTH * 2) return false;
    const where = formatEndpoint(transaction.server);
    const drop = (why: string): boolean => {
      transaction.lastDropped = why;
      this.log.verbose(`STUN: dropped a response from ${formatEndpoint(from)} for the request to ${where}: ${why}`);
      return true;
    };
    if (endpointKey(from) !== transaction.serverBytes) return drop(`it came from ${formatEndpoint(from)}, not from the server`);
    let message: StunMessage;
    try {
      message = decodeStunMessage(datagram);
    } catch (error) {
      return drop(errorMessage(error));
    }
    if (stunMethodOf(message.type) !== StunMethod.Binding) return drop(`method 0x${stunMethodOf(message.type).toString(16)} is not Binding`);
    const cls = stunClassOf(message.type);
    if (cls === StunClass.ErrorResponse) return this.onErrorResponse(key, message, where, drop);
    if (cls !== StunClass.SuccessResponse) return drop('it is a request or an indication, not a response');

    const unknown = message.attributes.map((a) => a.type).filter((type) => type < 0x8000 && !KNOWN_COMPREHENSION_REQUIRED.has(type));
    if (unknown.length > 0) {
      // RFC 8489 §6.3.3: a success response with unknown comprehension-required attributes fails the transaction.
      this.fail(key, new StunError(`STUN server ${where} answered with unknown comprehension-required attribute(s) ${unknown.map((t) => `0x${t.toString(16).padStart(4, '0')}`).join(', ')}`));
      return true;
    }
    let mapped: Endpoint;
    try {
      const xorMapped = findAttribute(message, StunAttributeType.XorMappedAddress);
      const plainMapped = findAttribute(message, StunAttributeType.MappedAddress);
      if (xorMapped !== undefined) mapped = decodeXorAddress(xorMapped, message.transactionId);
      else if (plainMapped !== undefined) mapped = decodeMappedAddress(plainMapped);
      else return drop('it has neither XOR-MAPPED-ADDRESS nor MAPPED-ADDRESS');
    } catch (error) {
      return drop(errorMessage(error));
    }
    const now = performance.now();
    const settled = this.settle(key);
    settled?.resolve({
      mapped,
      rttMs: now - settled.lastSentAt,
      elapsedMs: now - settled.firstSentAt,
      transmissions: settled.transmissions,
    });
    if (settled !== undefined) this.log.verbose(`STUN: ${where} sees this port as ${formatEndpoint(mapped)}`);
    return true;
  }

  private onErrorResponse(key: string, message: StunMessage, where: string, drop: (why: string) => boolean): boolean {
    const value = findAttribute(message, StunAttributeType.ErrorCode);
    if (value === undefined) return drop('error response without ERROR-CODE');
    let error: { code: number; reason: string };
    try {
      error = decodeErrorCode(value);
    } catch (e) {
      return drop(errorMessage(e));
    }
    this.fail(key, new StunError(`STUN server ${where} answered error ${error.code}${error.reason !== '' ? ` (${error.reason})` : ''}`));
    return true;
  }
}

/** "host:port", "[v6]:port", "host" or a bare IPv6 address (port 3478); an optional "stun:" prefix (RFC 7064) is accepted. */
export function parseStunServer(text: string): { host: string; port: number } {
  const bad = (why: string): never => {
    throw new StunError(`'${text}' is not a STUN server address: ${why}`);
  };
  let rest = text.trim();
  if (rest.toLowerCase().startsWith('stun:')) rest = rest.slice(5);
  if (rest === '') return bad('it is empty');
  let host: string;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) return bad("missing ']'");
    host = rest.slice(1, close);
    if (isIP(host) !== 6) return bad(`'${host}' inside brackets is not an IPv6 address`);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) return bad(`unexpected '${after}' after ']'`);
      portText = after.slice(1);
    }
  } else if (isIP(rest) === 6) {
    host = rest;
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon >= 0) {
      host = rest.slice(0, colon);
      portText = rest.slice(colon + 1);
    } else {
      host = rest;
    }
    if (host === '') return bad('the host is empty');
    if (host.includes(':')) return bad('write an IPv6 address with a port as [address]:port');
    if (!/^[A-Za-z0-9._-]+$/.test(host)) return bad(`'${host}' is not a host name or IP address`);
  }
  let port = STUN_DEFAULT_PORT;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) return bad(`port '${portText}' is not 1..65535`);
    port = Number(portText);
  }
  return { host, port };
}

/** parseStunServer, then a DNS lookup (node:dns) unless the host is an IP address. Throws naming the text. */
export async function resolveStunServer(text: string, family?: 4 | 6): Promise<Endpoint> {
  const { host, port } = parseStunServer(text);
  const literal = isIP(host);
  if (literal !== 0) {
    if (family !== undefined && literal !== family) throw new StunError(`STUN server '${text}' is an IPv${literal} address, but IPv${family} is needed`);
    return { family: literal === 4 ? 4 : 6, address: bytesToIp(ipToBytes(host)), port };
  }
  try {
    const found = await lookup(host, { family: family ?? 0 });
    return { family: found.family === 6 ? 6 : 4, address: found.address, port };
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new StunError(`cannot resolve STUN server '${text}': ${code ?? errorMessage(error)}`);
  }
}
