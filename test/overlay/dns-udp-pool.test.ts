/**
 * The forwarder's UDP socket pool on loopback (no root): the client's id
 * comes back while the upstream sees random ones, sockets are shared and
 * replaced after their quota, a closed port fails at once, close() settles
 * what is waiting.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UdpPool } from '../../src/overlay/dns/udp-pool.js';

const HOST = '127.0.0.1';
let upstream: UdpSocket;
let port: number;
const seen: Array<{ id: number; port: number }> = [];
let silent = false;

function query(id: number): Buffer {
  return dnsPacket.encode({ type: 'query', id, questions: [{ type: 'A', name: 'x.test' }] });
}

beforeAll(async () => {
  upstream = createSocket('udp4');
  await new Promise<void>((resolve) => upstream.bind(0, HOST, resolve));
  port = upstream.address().port;
  upstream.on('message', (message, remote) => {
    const id = message.readUInt16BE(0);
    seen.push({ id, port: remote.port });
    if (silent) return;
    upstream.send(dnsPacket.encode({ type: 'response', id, questions: [{ type: 'A', name: 'x.test' }] }), remote.port, remote.address);
  });
});

afterAll(() => upstream.close());

describe('UdpPool', () => {
  it('restores the client id, sends random ids, shares at most N sockets and replaces them after their quota', async () => {
    const pool = new UdpPool(4, 25);
    seen.length = 0;
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => pool.exchange({ host: HOST, port }, query(1000 + i), 1000)));
    answers.forEach((answer, i) => expect(answer?.readUInt16BE(0)).toBe(1000 + i));
    expect(new Set(seen.map((s) => s.id)).size).toBeGreaterThan(90);
    expect(seen.filter((s, i) => s.id === 1000 + i).length).toBeLessThan(5);
    // 100 queries at 25 per socket: at least 4 sockets, and not one per query.
    const ports = new Set(seen.map((s) => s.port)).size;
    expect(ports).toBeGreaterThanOrEqual(4);
    expect(ports).toBeLessThan(30);
    pool.close();
  });

  it('a closed port fails at once (ICMP), not after the timeout', async () => {
    const pool = new UdpPool();
    const probe = createSocket('udp4');
    await new Promise<void>((resolve) => probe.bind(0, HOST, resolve));
    const deadPort = probe.address().port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    // A timeout far beyond any delay a loaded machine adds: returning well before it proves the ICMP error ended the wait.
    const started = Date.now();
    expect(await pool.exchange({ host: HOST, port: deadPort }, query(7), 45_000)).toBeNull();
    expect(Date.now() - started).toBeLessThan(15_000);
    pool.close();
  });

  it('close() answers null to what is waiting', async () => {
    const pool = new UdpPool();
    silent = true;
    try {
      const waiting = pool.exchange({ host: HOST, port }, query(9), 5000);
      await new Promise((resolve) => setTimeout(resolve, 50));
      pool.close();
      expect(await waiting).toBeNull();
      expect(await pool.exchange({ host: HOST, port }, query(10), 5000)).toBeNull();
    } finally {
      silent = false;
    }
  });
});
