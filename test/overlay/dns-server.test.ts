/**
 * The resolver in-process on loopback (no root): local answers, truncation
 * and TCP, forwarding with fallback and pass-through, SERVFAIL, REFUSED when
 * too busy, and garbage that is dropped and counted.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { randomBytes } from 'node:crypto';
import dnsPacket, { type Answer, type DecodedPacket } from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tcpQuery, udpQuery } from '../../scripts/lib/dns-client.js';
import { decodeQuery } from '../../src/overlay/dns/codec.js';
import { Forwarder } from '../../src/overlay/dns/forwarder.js';
import { DnsZone } from '../../src/overlay/dns/records.js';
import { DnsServer } from '../../src/overlay/dns/server.js';
import type { Logger } from '../../src/device/logger.js';

const HOST = '127.0.0.1';
const silent = { error: () => undefined, verbose: () => undefined } as unknown as Logger;

/** A fake upstream on UDP and TCP: ok.test → 192.0.2.7, nx.test → NXDOMAIN + SOA, slow.test → silence, else `otherwise`. */
class FakeUpstream {
  queries = 0;
  private constructor(
    readonly udp: UdpSocket,
    readonly tcp: Server,
    readonly port: number,
  ) {}

  static async start(otherwise: 'SERVFAIL' | 'REFUSED' | 'NOERROR'): Promise<FakeUpstream> {
    const udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, HOST, resolve));
    const port = udp.address().port;
    const tcp = createServer();
    await new Promise<void>((resolve) => tcp.listen(port, HOST, resolve));
    const upstream = new FakeUpstream(udp, tcp, port);
    udp.on('message', (message, remote) => {
      const answer = upstream.answer(message, otherwise);
      if (answer !== null) udp.send(answer, remote.port, remote.address);
    });
    tcp.on('connection', (socket) => {
      socket.on('data', (chunk: Buffer) => {
        const answer = upstream.answer(chunk.subarray(2), otherwise);
        if (answer === null) return;
        const length = Buffer.alloc(2);
        length.writeUInt16BE(answer.length);
        socket.write(Buffer.concat([length, answer]));
      });
    });
    return upstream;
  }

  private answer(message: Buffer, otherwise: string): Buffer | null {
    this.queries++;
    const query = dnsPacket.decode(message) as DecodedPacket;
    const question = query.questions![0]!;
    const base = { type: 'response' as const, id: query.id, questions: [question] };
    if (question.name === 'slow.test') return null;
    if (otherwise !== 'NOERROR') return dnsPacket.encode({ ...base, flags: otherwise === 'SERVFAIL' ? 2 : 5 });
    if (question.name === 'ok.test') return dnsPacket.encode({ ...base, flags: 0, answers: [{ type: 'A', name: 'ok.test', ttl: 60, data: '192.0.2.7' }] });
    if (question.name === 'nx.test') {
      const soa: Answer = { type: 'SOA', name: 'test', ttl: 60, data: { mname: 'ns.test', rname: 'h.test', serial: 7, refresh: 1, retry: 1, expire: 1, minimum: 60 } };
      return dnsPacket.encode({ ...base, flags: 3, authorities: [soa] });
    }
    return dnsPacket.encode({ ...base, flags: 0 });
  }

  async close(): Promise<void> {
    this.udp.close();
    await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
  }
}

/** A UDP port nobody listens on (bound then closed): the kernel answers ICMP port unreachable. */
async function deadPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, HOST, resolve));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

let zone: DnsZone;
let good: FakeUpstream;
let failing: FakeUpstream;
let server: DnsServer;
let port: number;

beforeAll(async () => {
  zone = new DnsZone('prod.internal');
  zone.register('web', '10.200.1.2');
  for (let i = 0; i < 40; i++) zone.register('big', `10.200.2.${i + 2}`);
  good = await FakeUpstream.start('NOERROR');
  failing = await FakeUpstream.start('SERVFAIL');
  const upstreams = [
    { host: HOST, port: await deadPort() },
    { host: HOST, port: failing.port },
    { host: HOST, port: good.port },
  ];
  server = await DnsServer.listen({ host: HOST, port: 0, zone, forwarder: new Forwarder(upstreams, 300), log: silent });
  port = Number(server.address.split(':')[1]);
});

afterAll(async () => {
  await server?.close();
  await good?.close();
  await failing?.close();
});

describe('local answers', () => {
  it('A with AA set, TTL 600', async () => {
    const reply = await udpQuery(HOST, port, 'web.prod.internal', 'A');
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.packet.flag_aa).toBe(true);
    expect(reply.packet.answers).toEqual([expect.objectContaining({ type: 'A', data: '10.200.1.2', ttl: 600 })]);
  });

  it('NXDOMAIN with the SOA in authority; AAAA of an A-only name is NOERROR and empty', async () => {
    const nx = await udpQuery(HOST, port, 'nope.prod.internal', 'A');
    expect(nx.rcode).toBe('NXDOMAIN');
    expect(nx.packet.authorities).toEqual([expect.objectContaining({ type: 'SOA', name: 'prod.internal' })]);
    const empty = await udpQuery(HOST, port, 'web.prod.internal', 'AAAA');
    expect(empty.rcode).toBe('NOERROR');
    expect(empty.packet.answers).toEqual([]);
  });

  it('a type the zone has no records of (HTTPS, 65) is NOERROR and empty, the question echoed', async () => {
    const reply = await udpQuery(HOST, port, 'web.prod.internal', 'HTTPS' as never);
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.packet.answers).toEqual([]);
    expect(reply.packet.questions).toEqual([expect.objectContaining({ name: 'web.prod.internal' })]);
  });

  it('PTR of a registered address', async () => {
    const reply = await udpQuery(HOST, port, '2.1.200.10.in-addr.arpa', 'PTR');
    expect(reply.packet.answers).toEqual([expect.objectContaining({ type: 'PTR', data: 'web.prod.internal' })]);
  });

  it('over 512 bytes without EDNS: TC and no answers over UDP, all 40 over TCP; EDNS 1232 fits them', async () => {
    const udp = await udpQuery(HOST, port, 'big.prod.internal', 'A');
    expect(udp.truncated).toBe(true);
    expect(udp.size).toBeLessThanOrEqual(512);
    expect(udp.packet.answers).toEqual([]);
    const tcp = await tcpQuery(HOST, port, 'big.prod.internal', 'A');
    expect(tcp.truncated).toBe(false);
    expect(tcp.size).toBeGreaterThan(512);
    expect(tcp.packet.answers).toHaveLength(40);
    const edns = await udpQuery(HOST, port, 'big.prod.internal', 'A', { ednsSize: 4096 });
    expect(edns.truncated).toBe(false);
    expect(edns.packet.answers).toHaveLength(40);
    expect(edns.packet.additionals).toEqual([expect.objectContaining({ type: 'OPT', udpPayloadSize: 1232 })]);
  });
});

describe('listening', () => {
  it('a port already taken is an error naming the address', async () => {
    await expect(DnsServer.listen({ host: HOST, port, zone, forwarder: new Forwarder([]), log: silent })).rejects.toThrow(`cannot serve DNS on ${HOST}:${port}`);
  });
});

describe('forwarding', () => {
  it('skips a dead upstream and a SERVFAIL one, over UDP and TCP', async () => {
    const before = good.queries;
    const udp = await udpQuery(HOST, port, 'ok.test', 'A');
    expect(udp.rcode).toBe('NOERROR');
    expect(udp.packet.answers).toEqual([expect.objectContaining({ data: '192.0.2.7' })]);
    const tcp = await tcpQuery(HOST, port, 'ok.test', 'A');
    expect(tcp.packet.answers).toEqual([expect.objectContaining({ data: '192.0.2.7' })]);
    expect(good.queries).toBe(before + 2);
  });

  it('passes NXDOMAIN through with its SOA (the first answering upstream wins)', async () => {
    const reply = await udpQuery(HOST, port, 'nx.test', 'A');
    expect(reply.rcode).toBe('NXDOMAIN');
    expect(reply.packet.authorities).toEqual([expect.objectContaining({ type: 'SOA', name: 'test' })]);
  });

  it('SERVFAIL when every upstream fails or is silent', async () => {
    const reply = await udpQuery(HOST, port, 'slow.test', 'A', { timeoutMs: 5000 });
    expect(reply.rcode).toBe('SERVFAIL');
  });

  it('REFUSED above the in-flight limit', async () => {
    const busy = await DnsServer.listen({ host: HOST, port: 0, zone, forwarder: new Forwarder([{ host: HOST, port: good.port }], 1000), log: silent, maxInFlight: 1 });
    const busyPort = Number(busy.address.split(':')[1]);
    try {
      const slow = udpQuery(HOST, busyPort, 'slow.test', 'A');
      await new Promise((resolve) => setTimeout(resolve, 50));
      const refused = await udpQuery(HOST, busyPort, 'ok.test', 'A');
      expect(refused.rcode).toBe('REFUSED');
      // Local names are never refused.
      expect((await udpQuery(HOST, busyPort, 'web.prod.internal', 'A')).rcode).toBe('NOERROR');
      expect((await slow).rcode).toBe('SERVFAIL');
      expect(busy.counters).toMatchObject({ refused: 1, forwarded: 1, answered: 1 });
    } finally {
      await busy.close();
    }
  });
});

describe('malformed input', () => {
  it('drops and counts garbage, responses and empty questions, and keeps answering', async () => {
    const before = server.counters.malformed;
    const socket = createSocket('udp4');
    const garbage: Buffer[] = [
      Buffer.alloc(0),
      Buffer.from([1, 2, 3]),
      dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'web.prod.internal' }] }),
      dnsPacket.encode({ type: 'query', id: 2, questions: [] }),
    ];
    for (let i = 0; i < 996; i++) garbage.push(randomBytes(12 + (i % 100)));
    // Random bytes may decode as a query now and then; those are answered, not dropped.
    let undecodable = 0;
    let sent = 0;
    for (const datagram of garbage) {
      if (decodeQuery(datagram) === null) undecodable++;
      socket.send(datagram, port, HOST);
      // Paced, so the socket's receive buffer (not the server) is never what drops them.
      if (++sent % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    socket.close();
    expect(server.counters.malformed - before).toBe(undecodable);
    expect((await udpQuery(HOST, port, 'web.prod.internal', 'A')).rcode).toBe('NOERROR');
    // A TCP frame of garbage is dropped too; the connection stays usable.
    expect((await tcpQuery(HOST, port, 'web.prod.internal', 'A')).rcode).toBe('NOERROR');
  });
});
