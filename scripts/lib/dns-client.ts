/**
 * A small DNS client for tests and benchmarks: one question over UDP or TCP,
 * the answer decoded (dns-packet), with the rcode and TC bit at hand.
 */
import { createSocket } from 'node:dgram';
import { connect, isIP } from 'node:net';
import dnsPacket, { type DecodedPacket, type RecordType } from 'dns-packet';

export interface DnsReply {
  packet: DecodedPacket;
  rcode: string;
  truncated: boolean;
  size: number;
}

export interface QueryOptions {
  /** Advertise this EDNS UDP size (no OPT record when absent). */
  ednsSize?: number;
  timeoutMs?: number;
  id?: number;
}

let nextId = 1;

export function encodeQuestion(name: string, type: RecordType, options: QueryOptions = {}): Buffer {
  nextId = (nextId % 65_535) + 1;
  return dnsPacket.encode({
    type: 'query',
    id: options.id ?? nextId,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
    additionals:
      options.ednsSize === undefined ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: options.ednsSize, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
  });
}

function reply(bytes: Buffer): DnsReply {
  const packet = dnsPacket.decode(bytes);
  return { packet, rcode: (packet as unknown as { rcode: string }).rcode, truncated: packet.flag_tc, size: bytes.length };
}

/** One UDP exchange; rejects on timeout. */
export function udpQuery(host: string, port: number, name: string, type: RecordType, options: QueryOptions = {}): Promise<DnsReply> {
  const query = encodeQuestion(name, type, options);
  return udpExchange(host, port, query, options.timeoutMs ?? 5000).then(reply);
}

export function udpExchange(host: string, port: number, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no DNS answer from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('error', (error) => {
      clearTimeout(timer);
      socket.close();
      reject(error);
    });
    socket.on('message', (message) => {
      if (message.readUInt16BE(0) !== query.readUInt16BE(0)) return;
      clearTimeout(timer);
      socket.close();
      resolve(message);
    });
    socket.send(query, port, host);
  });
}

/** One TCP exchange (length-prefixed); rejects on timeout or close. */
export function tcpQuery(host: string, port: number, name: string, type: RecordType, options: QueryOptions = {}): Promise<DnsReply> {
  const query = encodeQuestion(name, type, options);
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let buffered: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no DNS answer over TCP from ${host}:${port} within ${options.timeoutMs ?? 5000} ms`));
    }, options.timeoutMs ?? 5000);
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('connect', () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(query.length);
      socket.write(Buffer.concat([length, query]));
    });
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 2 || buffered.length < 2 + buffered.readUInt16BE(0)) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(reply(buffered.subarray(2, 2 + buffered.readUInt16BE(0))));
    });
  });
}
