/**
 * A UDP socket in another network namespace, driven from the test process:
 * a small `node -e` program bound there relays JSON lines (datagrams to send,
 * floods) from its stdin to the socket and every datagram it receives back
 * on stdout. The test keeps the protocol logic (test/helpers/relay-wire.ts)
 * while the packets really leave from, and arrive at, the other namespace.
 * Registered with the netns cleanup registry; stop() ends it.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { namespaceArgv, registerCleanup } from '../../scripts/lib/netns.js';
import type { DatagramTransport } from './relay-wire.js';

const PROGRAM = `
const dgram = require('node:dgram');
const readline = require('node:readline');
const socket = dgram.createSocket('udp4');
socket.on('message', (m, r) => process.stdout.write(JSON.stringify({ hex: m.toString('hex'), address: r.address, port: r.port }) + '\\n'));
socket.bind(0, process.argv[1], () => process.stdout.write(JSON.stringify({ bound: socket.address().port }) + '\\n'));
readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const c = JSON.parse(line);
  const datagrams = c.hexes.map((h) => Buffer.from(h, 'hex'));
  for (let i = 0; i < (c.count ?? datagrams.length); i++) {
    await new Promise((done) => socket.send(datagrams[i % datagrams.length], c.port, c.address, done));
  }
  process.stdout.write(JSON.stringify({ sent: c.count ?? datagrams.length }) + '\\n');
});
`;

interface Arrival {
  data: Uint8Array;
  address: string;
  port: number;
}

export class NetnsUdpPuppet implements DatagramTransport {
  private readonly queue: Arrival[] = [];
  private readonly sentWaiters: (() => void)[] = [];
  private buffered = '';
  private readonly unregister: () => void;
  /** Every datagram received so far (the queue drains; this does not). */
  received = 0;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly port: number,
    readonly address: string,
  ) {
    this.unregister = registerCleanup('process', `stop the UDP puppet (pid ${child.pid})`, () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
  }

  /** Start the puppet in `namespace`, bound to `address` (port chosen by the kernel). */
  static async start(namespace: string, address: string): Promise<NetnsUdpPuppet> {
    const [command, args] = namespaceArgv(namespace, process.execPath, ['-e', PROGRAM, address]);
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the UDP puppet in ${namespace} did not bind: ${stderr}`)), 10_000);
      child.once('exit', () => reject(new Error(`the UDP puppet in ${namespace} exited: ${stderr}`)));
      child.stdout.once('data', (chunk: Buffer) => {
        clearTimeout(timer);
        const first = JSON.parse(chunk.toString().split('\n')[0]!) as { bound?: number };
        if (first.bound === undefined) reject(new Error(`the UDP puppet said ${chunk.toString()}`));
        else resolve(first.bound);
      });
    });
    const puppet = new NetnsUdpPuppet(child, port, address);
    child.stdout.on('data', (chunk: Buffer) => puppet.take(chunk.toString()));
    return puppet;
  }

  private take(text: string): void {
    this.buffered += text;
    const lines = this.buffered.split('\n');
    this.buffered = lines.pop()!;
    for (const line of lines) {
      if (line === '') continue;
      const event = JSON.parse(line) as { hex?: string; address?: string; port?: number; sent?: number; bound?: number };
      if (event.hex !== undefined) {
        this.received++;
        this.queue.push({ data: new Uint8Array(Buffer.from(event.hex, 'hex')), address: event.address!, port: event.port! });
      } else if (event.sent !== undefined) {
        this.sentWaiters.shift()?.();
      }
    }
  }

  /** Send datagrams round robin, `count` in all (default one each); resolves once all left. */
  flood(datagrams: Uint8Array[], count: number, port: number, address: string): Promise<void> {
    const done = new Promise<void>((resolve) => this.sentWaiters.push(resolve));
    this.child.stdin.write(`${JSON.stringify({ hexes: datagrams.map((d) => Buffer.from(d).toString('hex')), count, port, address })}\n`);
    return done;
  }

  send(data: Uint8Array, port: number, address = '127.0.0.1'): Promise<void> {
    return this.flood([data], 1, port, address);
  }

  async next(timeoutMs = 3000): Promise<Arrival> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (Date.now() >= deadline) throw new Error(`nothing reached the UDP puppet at ${this.address}:${this.port} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return this.queue.shift()!;
  }

  async quietFor(ms: number): Promise<boolean> {
    const before = this.received;
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.received === before && this.queue.length === 0;
  }

  /** Drop what is queued (after a flood). */
  drain(): void {
    this.queue.length = 0;
  }

  stop(): void {
    this.unregister();
  }
}
