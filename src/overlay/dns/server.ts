/**
 * The resolver's listeners: UDP and TCP (RFC 7766 framing: a 16-bit length
 * before each message, several per connection, answered as they complete)
 * on one address and port.
 *
 * Each query is answered from the zone, or forwarded when the zone says it
 * is not ours. Local UDP answers above the client's size go out truncated
 * (TC) and the client asks again over TCP. Undecodable queries are dropped
 * and counted: no answer gives a spoofed sender nothing to reflect. Over
 * 1,024 forwards in flight, a forwarded name is answered REFUSED at once.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import type { Logger } from '../../device/index.js';
import { DNS_MAX_IN_FLIGHT, DNS_MAX_TCP_CLIENTS, DNS_TCP_IDLE_MS, DNS_UDP_RECV_BUFFER_BYTES } from '../constants.js';
import { OverlayError } from '../errors.js';
import { decodeQuery, encodeAnswer, encodeError, RCODE, udpLimit } from './codec.js';
import type { Forwarder, Transport } from './forwarder.js';
import type { DnsZone } from './records.js';
import { errorMessage } from '../../platform/index.js';

/** What the server has done since it started (Status and metrics). */
export interface DnsCounters {
  /** Answered from the zone (records, NODATA, NXDOMAIN). */
  answered: number;
  /** Sent upstream (whatever came back, SERVFAIL included). */
  forwarded: number;
  /** Refused because too many forwards were in flight. */
  refused: number;
  /** Dropped as undecodable or not a standard one-question query. */
  malformed: number;
}

export interface DnsServerOptions {
  host: string;
  port: number;
  zone: DnsZone;
  forwarder: Forwarder;
  log: Logger;
  /** Counted into (the caller keeps them across restarts of the server). */
  counters?: DnsCounters;
  maxInFlight?: number;
}

/** The largest message a TCP length prefix can carry. */
const MAX_TCP_MESSAGE_BYTES = 65_535;
/** Answers queued for one TCP client that does not read them: past this it is dropped. */
const MAX_TCP_BACKLOG_BYTES = 1024 * 1024;

export class DnsServer {
  readonly counters: DnsCounters;
  private inFlight = 0;
  private readonly clients = new Set<Socket>();
  private closed = false;

  private constructor(
    private readonly options: DnsServerOptions,
    private readonly udp: UdpSocket,
    private readonly tcp: Server,
  ) {
    this.counters = options.counters ?? { answered: 0, forwarded: 0, refused: 0, malformed: 0 };
  }

  /** Bind UDP and TCP on host:port; OverlayError naming the address when either cannot be bound. */
  static async listen(options: DnsServerOptions): Promise<DnsServer> {
    const where = isIP(options.host) === 6 ? `[${options.host}]:${options.port}` : `${options.host}:${options.port}`;
    const udp = createSocket({ type: isIP(options.host) === 6 ? 'udp6' : 'udp4' });
    const tcp = createServer({ pauseOnConnect: false });
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind({ address: options.host, port: options.port, exclusive: true }, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      // Port 0 (tests): TCP takes the port UDP was given.
      const port = udp.address().port;
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host: options.host, port, exclusive: true }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      udp.close();
      tcp.close();
      throw new OverlayError(`cannot serve DNS on ${where}: ${errorMessage(error)}`);
    }
    try {
      udp.setRecvBufferSize(DNS_UDP_RECV_BUFFER_BYTES);
    } catch (error) {
      options.log.verbose(`DNS on ${where}: keeping the default receive buffer (${errorMessage(error)})`);
    }
    const server = new DnsServer(options, udp, tcp);
    udp.on('message', (message, remote) => server.onDatagram(message, remote.address, remote.port));
    udp.on('error', (error) => options.log.error(`DNS on ${where} (UDP): ${error.message}`));
    tcp.on('connection', (socket) => server.onConnection(socket));
    tcp.on('error', (error) => options.log.error(`DNS on ${where} (TCP): ${error.message}`));
    return server;
  }

  /** "ip:port" the server listens on. */
  get address(): string {
    const { address, port } = this.udp.address();
    return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.options.forwarder.close();
    for (const client of this.clients) client.destroy();
    this.clients.clear();
    await new Promise<void>((resolve) => this.udp.close(() => resolve()));
    await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
  }

  /** The answer to one message, null when it is dropped. Never throws. */
  async answer(bytes: Buffer, transport: Transport): Promise<Buffer | null> {
    const query = decodeQuery(bytes);
    if (query === null) {
      this.counters.malformed++;
      return null;
    }
    const result = this.options.zone.lookup(query.question.name, query.question.type);
    if (result.kind !== 'outside') {
      this.counters.answered++;
      const parts =
        result.kind === 'nxdomain'
          ? { rcode: RCODE.NXDOMAIN, authorities: result.authorities, authoritative: true }
          : { rcode: RCODE.NOERROR, answers: result.answers, authorities: result.authorities, authoritative: true };
      try {
        return encodeAnswer(query, parts, transport === 'udp' ? udpLimit(query) : MAX_TCP_MESSAGE_BYTES).bytes;
      } catch (error) {
        // A record the encoder refuses is our bug, not the client's: tell it, do not crash.
        this.options.log.error(`DNS answer for ${query.question.name} ${query.question.type}: ${errorMessage(error)}`);
        return encodeError(query, RCODE.SERVFAIL);
      }
    }
    if (this.inFlight >= (this.options.maxInFlight ?? DNS_MAX_IN_FLIGHT)) {
      this.counters.refused++;
      return encodeError(query, RCODE.REFUSED);
    }
    this.counters.forwarded++;
    this.inFlight++;
    try {
      return (await this.options.forwarder.forward(bytes, transport)) ?? encodeError(query, RCODE.SERVFAIL);
    } catch (error) {
      this.options.log.error(`DNS forward of ${query.question.name}: ${errorMessage(error)}`);
      return encodeError(query, RCODE.SERVFAIL);
    } finally {
      this.inFlight--;
    }
  }

  private onDatagram(message: Buffer, address: string, port: number): void {
    this.answer(message, 'udp')
      .then((reply) => {
        if (reply === null || this.closed) return;
        try {
          this.udp.send(reply, port, address, () => undefined);
        } catch {
          // Closed between the check and the send.
        }
      })
      .catch((error: unknown) => this.options.log.error(`DNS query from ${address}:${port}: ${errorMessage(error)}`));
  }

  private onConnection(socket: Socket): void {
    if (this.closed || this.clients.size >= DNS_MAX_TCP_CLIENTS) {
      socket.destroy();
      return;
    }
    this.clients.add(socket);
    socket.setTimeout(DNS_TCP_IDLE_MS, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.clients.delete(socket));
    let buffered: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const size = buffered.readUInt16BE(0);
        if (buffered.length < 2 + size) break;
        const message = Buffer.from(buffered.subarray(2, 2 + size));
        buffered = buffered.subarray(2 + size);
        this.answer(message, 'tcp')
          .then((reply) => {
            if (reply === null || socket.destroyed || reply.length > MAX_TCP_MESSAGE_BYTES) return;
            // A client that sends and never reads would make us buffer its answers without end.
            if (socket.writableLength > MAX_TCP_BACKLOG_BYTES) {
              socket.destroy();
              return;
            }
            const length = Buffer.alloc(2);
            length.writeUInt16BE(reply.length);
            socket.write(Buffer.concat([length, reply]));
          })
          .catch((error: unknown) => this.options.log.error(`DNS query over TCP: ${errorMessage(error)}`));
      }
    });
  }
}
