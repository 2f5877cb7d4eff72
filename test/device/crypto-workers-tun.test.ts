/**
 * Crypto workers through real TUN devices, with both packet readers: two
 * Devices in this process, each on a kernel TUN interface moved into a
 * network namespace of its own, joined by UDP over loopback, with
 * TSWG_CRYPTO_WORKERS=2, once with the I/O thread reading the TUN fd and the
 * UDP sockets and once with the main thread polling them itself
 * (TSWG_MAIN_POLL=1, where the drain and the workers' batch run inside a
 * libuv poll callback). The same body runs for both, so a difference shows:
 *
 *   ping both ways; iperf3 TCP both ways; a TCP transfer checked byte for
 *   byte; a numbered UDP stream whose datagrams must arrive in order and
 *   intact; a crypto worker on each side terminated mid-stream: it is
 *   replaced and logged, the stream finishes and traffic flows again.
 *
 * The devices live in this process (not in daemons) so that the test can
 * reach their worker threads.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, createNamespace, createTempDir, execIn, ip, namespaceArgv, requireCommands, requireRoot, setNamePrefix, uniqueName, waitUntil } from '../../scripts/lib/netns.js';
import { connectOverLoopback } from '../helpers/loopback-peers.js';
import { Device } from '../../src/device/device.js';
import type { Logger } from '../../src/device/logger.js';
import { generatePrivateKey, publicKeyOf } from '../../src/noise/index.js';
import { MAIN_POLL_ENV } from '../../src/platform/packet-reading.js';
import { LinuxTun } from '../../src/tun/linux.js';
import { runIperf } from '../helpers/device-interop.js';
import { udpSocketState } from '../helpers/hostile-proc.js';

const execFileAsync = promisify(execFile);

const WORKERS = 2;
const IPERF_SECONDS = 3;
const TRANSFER_BYTES = 8 * 1024 * 1024;
const UDP_DATAGRAMS = 6_000;
const UDP_PAYLOAD = 1_200;
const TRANSFER_PORT = 5301;
const UDP_PORT = 5302;

interface Side {
  namespace: string;
  interfaceName: string;
  address: string;
  device: Device;
  publicKey: Uint8Array;
  lines: string[];
}

/** Run `command` in `namespace` without blocking this thread (the devices run on it). */
async function runIn(namespace: string, command: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const [cmd, argv] = namespaceArgv(namespace, command, args);
  const { stdout } = await execFileAsync(cmd, argv, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

async function ping(from: Side, to: Side, count = 5): Promise<void> {
  const output = await runIn(from.namespace, 'ping', ['-c', String(count), '-i', '0.2', '-w', '15', to.address]);
  expect(output, `ping ${from.address} → ${to.address}`).toMatch(new RegExp(`${count} received`));
}

/**
 * A UDP receiver in `namespace` on `address`: takes numbered datagrams
 * (sequence in the first 4 bytes, then bytes derived from it) until the
 * end marker or silence, and prints what it saw as one JSON line.
 */
const UDP_RECEIVER = `
const dgram = require('node:dgram');
const [address, port] = process.argv.slice(1);
const socket = dgram.createSocket('udp4');
const result = { received: 0, outOfOrder: 0, corrupt: 0, last: -1 };
let quiet = null;
const finish = () => { console.log(JSON.stringify(result)); process.exit(0); };
socket.on('message', (message) => {
  const sequence = message.readUInt32BE(0);
  if (sequence === 0xffffffff) return finish();
  for (let i = 4; i < message.length; i++) if (message[i] !== ((sequence + i) & 0xff)) { result.corrupt++; break; }
  if (sequence <= result.last) result.outOfOrder++;
  result.last = sequence;
  result.received++;
  clearTimeout(quiet);
  quiet = setTimeout(finish, 5000);
});
socket.bind(Number(port), address, () => console.error('listening'));
setTimeout(finish, 60000);
`;

/** Sends COUNT numbered datagrams of SIZE bytes in paced bursts, then the end marker a few times. */
const UDP_SENDER = `
const dgram = require('node:dgram');
const [address, port, count, size] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const socket = dgram.createSocket('udp4');
let sequence = 0;
const datagram = (n) => { const b = Buffer.alloc(size); b.writeUInt32BE(n, 0); for (let i = 4; i < size; i++) b[i] = (n + i) & 0xff; return b; };
const burst = () => {
  for (let i = 0; i < 32 && sequence < count; i++) socket.send(datagram(sequence++), port, address);
  if (sequence < count) return setTimeout(burst, 2);
  let ends = 0;
  const end = () => { const b = Buffer.alloc(4); b.writeUInt32BE(0xffffffff, 0); socket.send(b, port, address); if (++ends < 5) setTimeout(end, 200); else setTimeout(() => process.exit(0), 100); };
  setTimeout(end, 500);
};
// The receiver leaves at the first end marker: the ICMP errors the later ones draw are expected.
socket.on('error', () => undefined);
burst();
`;

interface UdpResult {
  received: number;
  outOfOrder: number;
  corrupt: number;
  last: number;
}

/** The kernel's UDP counter `name` in `namespace` (/proc/net/snmp). */
function udpCounter(namespace: string, name: string): number {
  const [names, values] = execIn(namespace, 'cat', ['/proc/net/snmp'])
    .split('\n')
    .filter((line) => line.startsWith('Udp: '))
    .map((line) => line.split(/\s+/));
  return Number(values![names!.indexOf(name)]);
}

function tunStats(side: Side): { tx: { dropped: number }; rx: { dropped: number; errors: number } } {
  const [link] = JSON.parse(ip(side.namespace, '-j', '-s', 'link', 'show', 'dev', side.interfaceName)) as Array<{ stats64: ReturnType<typeof tunStats> }>;
  return link!.stats64;
}

/** Where a stream's datagrams were dropped on the way, by the kernel or by the devices (each counted there). */
function drops(from: Side, to: Side): Record<string, number> {
  return {
    senderSocket: udpCounter(from.namespace, 'SndbufErrors'),
    senderTun: tunStats(from).tx.dropped,
    deviceSocket: udpSocketState(process.pid, 4, to.device.listenPort)?.drops ?? 0,
    deviceRing: to.device.udpReceiveCounters.overflow,
    deviceCrypto: to.device.counters.cryptoLost + from.device.counters.cryptoLost,
    receiverTun: tunStats(to).rx.dropped + tunStats(to).rx.errors,
    receiverSocket: udpCounter(to.namespace, 'RcvbufErrors'),
  };
}

async function udpStream(from: Side, to: Side): Promise<UdpResult> {
  const [cmd, argv] = namespaceArgv(to.namespace, process.execPath, ['-e', UDP_RECEIVER, to.address, String(UDP_PORT)]);
  const receiver = execFileAsync(cmd, argv, { encoding: 'utf8', timeout: 90_000 });
  await waitUntil(() => listening(to.namespace, '-Hlun', UDP_PORT), `the UDP receiver in ${to.namespace}`, 10_000, 50);
  await runIn(from.namespace, process.execPath, ['-e', UDP_SENDER, to.address, String(UDP_PORT), String(UDP_DATAGRAMS), String(UDP_PAYLOAD)], 90_000);
  const { stdout } = await receiver;
  return JSON.parse(stdout.trim().split('\n').pop()!) as UdpResult;
}

/** A socket listens on `port` in `namespace` (ss flags pick TCP or UDP). */
function listening(namespace: string, flags: '-Hltn' | '-Hlun', port: number): boolean {
  return execIn(namespace, 'ss', [flags, `sport = :${port}`]).trim() !== '';
}

/** TRANSFER_BYTES of random data over TCP from `from` to `to`: the SHA-256 of what arrived and of what was sent. */
async function tcpTransfer(from: Side, to: Side, directory: string): Promise<{ sent: string; received: string }> {
  const data = randomBytes(TRANSFER_BYTES);
  const file = join(directory, `transfer-${from.interfaceName}`);
  writeFileSync(file, data);
  const receiver = runIn(to.namespace, 'sh', ['-c', `ncat -l --recv-only ${to.address} ${TRANSFER_PORT} | sha256sum`], 90_000);
  await waitUntil(() => listening(to.namespace, '-Hltn', TRANSFER_PORT), `the TCP receiver in ${to.namespace}`, 10_000, 50);
  await runIn(from.namespace, 'sh', ['-c', `ncat --send-only ${to.address} ${TRANSFER_PORT} < ${file}`], 90_000);
  const received = (await receiver).trim().split(/\s+/)[0]!;
  return { sent: createHash('sha256').update(data).digest('hex'), received };
}

function collectingLogger(lines: string[]): Logger {
  return { verbose: () => undefined, error: (message) => lines.push(message) };
}

/** A Device on a new TUN interface, moved into a new namespace with `address`/24. */
async function makeSide(address: string, mainPoll: boolean): Promise<Side> {
  const namespace = createNamespace();
  const interfaceName = uniqueName();
  const lines: string[] = [];
  const saved = process.env[MAIN_POLL_ENV];
  process.env[MAIN_POLL_ENV] = mainPoll ? '1' : '0';
  let device: Device;
  try {
    device = new Device({ tun: LinuxTun.create(interfaceName), log: collectingLogger(lines), cryptoWorkers: WORKERS });
    await device.start();
  } finally {
    if (saved === undefined) delete process.env[MAIN_POLL_ENV];
    else process.env[MAIN_POLL_ENV] = saved;
  }
  // The TUN fd keeps working after its interface moves: the device reads and writes it from here.
  ip(null, 'link', 'set', 'dev', interfaceName, 'netns', namespace);
  ip(namespace, 'address', 'add', `${address}/24`, 'dev', interfaceName);
  ip(namespace, 'link', 'set', 'dev', interfaceName, 'up');
  const privateKey = generatePrivateKey();
  await device.set({ privateKey, replacePeers: false, peers: [] });
  return { namespace, interfaceName, address, device, publicKey: publicKeyOf(privateKey), lines };
}


beforeAll(() => {
  requireRoot('test/device/crypto-workers-tun.test.ts (TUN devices in namespaces)');
  requireCommands('ip', 'ping', 'iperf3', 'ncat', 'ss', 'sha256sum');
  setNamePrefix('wkrs-');
});

const modes = [
  { mainPoll: false, name: 'the I/O thread reads the TUN fd and the UDP sockets' },
  { mainPoll: true, name: 'TSWG_MAIN_POLL=1: the main thread polls them itself' },
];

for (const { mainPoll, name } of modes) {
  describe(`two devices on real TUN interfaces, ${WORKERS} crypto workers each; ${name}`, () => {
    let a: Side | undefined;
    let b: Side | undefined;
    let directory = '';
    const sides = (): [Side, Side] => {
      if (a === undefined || b === undefined) throw new Error('the devices were not set up (see the beforeAll failure)');
      return [a, b];
    };

    beforeAll(async () => {
      directory = createTempDir('tswg-workers-');
      a = await makeSide('10.77.0.1', mainPoll);
      b = await makeSide('10.77.0.2', mainPoll);
      await connectOverLoopback(a, b);
    });

    afterAll(async () => {
      await Promise.all([a, b].map((side) => side?.device.close()));
      cleanup();
    });

    it('pings pass both ways, and each device runs its crypto workers', async () => {
      const [a, b] = sides();
      expect(a.device.cryptoWorkers).toBe(WORKERS);
      expect(b.device.cryptoWorkers).toBe(WORKERS);
      await ping(a, b);
      await ping(b, a);
    });

    it(`iperf3 TCP a → b and b → a, ${IPERF_SECONDS} s each: data moves, nothing forged or lost in the workers`, async () => {
      const [a, b] = sides();
      for (const reverse of [false, true]) {
        const run = await runIperf(b, a, b.address, ['-t', String(IPERF_SECONDS), ...(reverse ? ['-R'] : [])]);
        expect(run.report.error, `iperf3 ${reverse ? 'b → a' : 'a → b'}`).toBeUndefined();
        expect(run.report.end.sum_received?.bytes ?? 0, `iperf3 ${reverse ? 'b → a' : 'a → b'} bytes received`).toBeGreaterThan(0);
      }
      for (const side of [a, b]) {
        // Bulk traffic fills batches large enough to share: the workers took part.
        expect(side.device.cryptoBatchesShared, side.interfaceName).toBeGreaterThan(0);
        expect(side.device.counters.transportForged, side.interfaceName).toBe(0);
        expect(side.device.counters.cryptoLost, side.interfaceName).toBe(0);
      }
    });

    it(`${TRANSFER_BYTES / 1024 / 1024} MiB over TCP each way arrive byte for byte`, async () => {
      const [a, b] = sides();
      for (const [from, to] of [[a, b], [b, a]] as const) {
        const { sent, received } = await tcpTransfer(from, to, directory);
        expect(received, `${from.address} → ${to.address}`).toBe(sent);
      }
    });

    it(`${UDP_DATAGRAMS} numbered UDP datagrams each way arrive in order and intact`, async () => {
      const [a, b] = sides();
      for (const [from, to] of [[a, b], [b, a]] as const) {
        const before = drops(from, to);
        const result = await udpStream(from, to);
        const after = drops(from, to);
        const dropped = Object.fromEntries(Object.entries(after).map(([key, value]) => [key, value - before[key]!]));
        const what = `${from.address} → ${to.address}: ${JSON.stringify(result)}, dropped ${JSON.stringify(dropped)}`;
        console.log(`${mainPoll ? 'main poll' : 'I/O thread'}: UDP ${what} of ${UDP_DATAGRAMS} sent`);
        expect(result.received, what).toBeGreaterThan(0);
        expect(result.outOfOrder, what).toBe(0);
        expect(result.corrupt, what).toBe(0);
        // Losses are the kernel queues' (a loaded machine), never the devices' own.
        expect(dropped.deviceRing, what).toBe(0);
        expect(dropped.deviceCrypto, what).toBe(0);
      }
    });

    it('a crypto worker on each side terminated mid-stream is replaced and logged; the stream finishes and traffic flows again', async () => {
      const [a, b] = sides();
      const replacedBefore = [a.device.cryptoWorkersReplaced, b.device.cryptoWorkersReplaced];
      const stream = runIperf(b, a, b.address, ['-t', String(IPERF_SECONDS + 1)]);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const victims = [a, b].map((side) => side.device.cryptoWorkerThreads[0]!);
      await Promise.all(victims.map((victim) => victim.terminate()));
      const run = await stream;
      console.log(`${mainPoll ? 'main poll' : 'I/O thread'}: ${((run.report.end.sum_received?.bits_per_second ?? 0) / 1e6).toFixed(0)} Mbit/s across the terminations; errors logged:\n${[a, b].flatMap((side) => side.lines).join('\n')}`);
      expect(run.report.error, 'iperf3 across the terminations').toBeUndefined();
      expect(run.report.end.sum_received?.bytes ?? 0).toBeGreaterThan(0);
      await waitUntil(() => [a, b].every((side) => side.device.cryptoWorkers === WORKERS), 'both devices to run their workers again', 30_000, 50);
      [a, b].forEach((side, i) => {
        // At least the terminated one (a worker stalled past the timeout on a loaded machine is replaced too).
        expect(side.device.cryptoWorkersReplaced, side.interfaceName).toBeGreaterThanOrEqual(replacedBefore[i]! + 1);
        expect(side.lines.some((line) => /crypto worker \d+ exited .*starting another/.test(line)), side.lines.join('\n')).toBe(true);
        expect(side.device.cryptoWorkerThreads).not.toContain(victims[i]);
      });
      await ping(a, b);
      await ping(b, a);
      const { sent, received } = await tcpTransfer(a, b, directory);
      expect(received).toBe(sent);
    });
  });
}

afterAll(() => cleanup());
