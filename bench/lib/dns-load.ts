/**
 * A closed-loop DNS load generator, run inside a namespace by bench/dns.ts:
 * `node dns-load.js HOST PORT NAME TYPE CONCURRENCY DURATION_MS` keeps
 * CONCURRENCY UDP queries for NAME outstanding for DURATION_MS and prints one
 * JSON line: {answered, failures, seconds, qps}. An answer counts when its
 * id matches, its rcode is NOERROR and it has at least one record; anything
 * else, or no answer within 2 s, is a failure. A NAME of the form `*.rest`
 * asks a different name each time (a random label for the `*`), so a
 * resolver cannot answer many clients from one upstream exchange.
 */
import { createSocket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import dnsPacket, { type RecordType } from 'dns-packet';

const QUERY_TIMEOUT_MS = 2000;

const [host, portText, name, type, concurrencyText, durationText] = process.argv.slice(2);
const port = Number(portText);
const concurrency = Number(concurrencyText);
const durationMs = Number(durationText);
if (host === undefined || name === undefined || type === undefined || !(port > 0) || !(concurrency > 0) || !(durationMs > 0)) {
  console.error('usage: dns-load HOST PORT NAME TYPE CONCURRENCY DURATION_MS');
  process.exit(2);
}

const socket = createSocket('udp4');
/** id → when it was sent. */
const pending = new Map<number, number>();
let nextId = 0;
let answered = 0;
let failures = 0;
let stopping = false;
const start = performance.now();

function send(): void {
  if (stopping) return;
  do nextId = (nextId + 1) & 0xffff;
  while (pending.has(nextId));
  const asked = name!.startsWith('*.') ? `q${Math.floor(Math.random() * 1e12).toString(36)}${name!.slice(1)}` : name!;
  const query = dnsPacket.encode({ type: 'query', id: nextId, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: type as RecordType, name: asked, class: 'IN' }] });
  pending.set(nextId, performance.now());
  socket.send(query, port, host);
}

socket.on('message', (message) => {
  if (message.length < 12) return;
  const id = message.readUInt16BE(0);
  if (!pending.delete(id)) return;
  const rcode = message.readUInt16BE(2) & 0xf;
  const records = message.readUInt16BE(6);
  if (rcode === 0 && records > 0) answered++;
  else failures++;
  send();
});

const sweeper = setInterval(() => {
  const now = performance.now();
  for (const [id, sentAt] of pending) {
    if (now - sentAt > QUERY_TIMEOUT_MS) {
      pending.delete(id);
      failures++;
      send();
    }
  }
}, 100);

socket.bind(0, () => {
  socket.setRecvBufferSize(4 * 1024 * 1024);
  for (let i = 0; i < concurrency; i++) send();
  setTimeout(() => {
    stopping = true;
    const seconds = (performance.now() - start) / 1000;
    clearInterval(sweeper);
    socket.close();
    console.log(JSON.stringify({ answered, failures, seconds, qps: answered / seconds }));
  }, durationMs);
});
