/**
 * The control socket in-process, with the real engine behind it (no global
 * overlay is set up, so nothing on the host changes): socket and directory
 * modes, refusing a second node and a non-socket, replacing a stale socket,
 * per-line Err naming the field with the connection staying usable, 1,000
 * malformed lines followed by a valid request, answers in request order
 * across pipelined requests, an over-long line, a fuzz of mutated requests,
 * an answer of 6,000 peers, NatTick beside the queue and a Shutdown that
 * does not wait for a slow request, and the client's message when nobody
 * listens. A client that half-closes after its requests gets every answer,
 * then the server's end; one that half-closes without a word, or never
 * reads, neither stops the others nor holds the server's close.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/device/logger.js';
import { MAX_CONTROL_LINE_BYTES, SHUTDOWN_QUEUE_WAIT_MS } from '../../src/overlay/constants.js';
import { ControlClient } from '../../src/overlay/control-client.js';
import { ControlServer } from '../../src/overlay/control-server.js';
import { OverlayEngine } from '../../src/overlay/engine.js';
import type { Response } from '../../src/overlay/protocol.js';
import { Rng, fuzzSeed } from '../helpers/fuzz.js';
import { MALFORMED_CASES, randomMalformedLine } from '../helpers/overlay-malformed.js';
import { SocketClient } from '../helpers/socket-client.js';
import { waitUntil } from '../../scripts/lib/netns.js';

const dirs: string[] = [];
const servers: ControlServer[] = [];

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tswg-ctl-'));
  dirs.push(dir);
  return dir;
}

/** `hold`: the engine sees no request before it resolves. */
async function startServer(path?: string, hold: Promise<void> = Promise.resolve()): Promise<{ server: ControlServer; engine: OverlayEngine; path: string }> {
  const engine = new OverlayEngine({ dataDir: freshDir(), log: silentLogger, rootless: true });
  const socketPath = path ?? join(freshDir(), 'sub', 'node.sock');
  const server = await ControlServer.listen(socketPath, async (request) => {
    await hold;
    return engine.handle(request);
  });
  servers.push(server);
  return { server, engine, path: socketPath };
}

/** Write raw bytes and collect `count` answer lines. */
function exchange(path: string, payload: string, count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(path);
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString('utf8');
      const lines = text.split('\n');
      if (lines.length > count) {
        socket.destroy();
        resolve(lines.slice(0, count));
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`connection closed after ${text.split('\n').length - 1} of ${count} answers`)));
    socket.write(payload);
  });
}

/** How long the server is given to see a client's end before the engine may answer. */
const END_SEEN_MS = 100;

/** Connect, write `payload`, then half-close: the client still reads until the server ends. */
async function sendAndHalfClose(path: string, payload: string): Promise<SocketClient> {
  const client = await SocketClient.connect(path);
  if (payload !== '') await client.write(payload);
  await new Promise<void>((resolve) => client.socket.end(resolve));
  return client;
}

/**
 * A server whose engine answers only once the client's end has reached it:
 * the answers are computed after the end, as a real request's are when its
 * client half-closes at once.
 */
async function serverAnsweringAfterEnd(): Promise<{ path: string; send: (payload: string) => Promise<SocketClient> }> {
  let release: () => void = () => undefined;
  const { path } = await startServer(undefined, new Promise<void>((resolve) => (release = resolve)));
  const send = async (payload: string): Promise<SocketClient> => {
    const client = await sendAndHalfClose(path, payload);
    await new Promise((resolve) => setTimeout(resolve, END_SEEN_MS));
    release();
    return client;
  };
  return { path, send };
}

/** Every answer line a half-closed client got before the server's end, parsed. */
async function answersUntilEnd(client: SocketClient): Promise<Response[]> {
  await client.waitClosed();
  expect(client.data.endsWith('\n') || client.data === '', client.data).toBe(true);
  return client.data
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Response);
}

/** A Status answer of `count` peers: far more than a socket's buffers hold. */
function bigStatus(count: number): Response {
  const peers = Array.from({ length: count }, (_, i) => ({
    publicKey: Buffer.alloc(32, i % 256).toString('base64'),
    endpoint: `192.0.2.${i % 250}:${51820 + (i % 1000)}`,
    allowedIps: [`10.${Math.floor(i / 250)}.${i % 250}.0/26`, `fd00::${i.toString(16)}/128`],
    latestHandshake: 1_700_000_000 + i,
    rxBytes: 123_456_789 + i,
    txBytes: 987_654_321 + i,
    connectionType: 'hole-punched',
  }));
  return { type: 'Status', interface: 'zl-x-y-g', nodeIp: '10.200.0.1', publicKey: peers[0]!.publicKey, overlayCidr: '10.200.0.0/16', sliceCidr: '10.200.0.0/26', peerCount: peers.length, serviceCount: 0, peers, services: [], dedicatedServices: [], health: 'ok' };
}

afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('control socket', () => {
  it('creates the directory 0755 and the socket 0600, and removes the socket on close', async () => {
    const { server, path } = await startServer();
    expect(statSync(path).isSocket()).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(path, '..')).mode & 0o777).toBe(0o755);
    await server.close();
    expect(existsSync(path)).toBe(false);
  });

  it('refuses to start where another node answers, and on a path that is not a socket', async () => {
    const { path } = await startServer();
    await expect(ControlServer.listen(path, async () => ({ type: 'Ok' }))).rejects.toThrow(`another tswg node is already listening on ${path}`);
    const file = join(freshDir(), 'plain');
    writeFileSync(file, 'x');
    await expect(ControlServer.listen(file, async () => ({ type: 'Ok' }))).rejects.toThrow(/is not a socket/);
  });

  it('replaces a stale socket left by a killed process', async () => {
    const path = join(freshDir(), 'stale.sock');
    // A process that binds the socket and dies by SIGKILL leaves the file behind.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    await new Promise((resolve) => child.once('exit', resolve));
    expect(statSync(path).isSocket()).toBe(true);
    const { path: listening } = await startServer(path);
    const client = await ControlClient.connect(listening);
    expect((await client.request({ type: 'Status' })).type).toBe('Status');
    client.close();
  });

  it('answers each malformed line with an Err naming the field, and the connection stays usable', async () => {
    const { path } = await startServer();
    const client = await ControlClient.connect(path);
    for (const { line, mentions } of MALFORMED_CASES) {
      const response = await client.requestLine(line);
      expect(response.type, line).toBe('Err');
      expect((response as { message: string }).message, line).toContain(mentions);
    }
    expect((await client.request({ type: 'Status' })).type).toBe('Status');
    client.close();
  });

  it('survives 1,000 malformed lines sent at once, then answers a valid request', async () => {
    const { path } = await startServer();
    const rng = new Rng(fuzzSeed());
    const lines: string[] = [];
    for (let i = 0; i < 1000; i++) lines.push(i % 2 === 0 ? MALFORMED_CASES[i % MALFORMED_CASES.length]!.line : `#${randomMalformedLine(rng)}`);
    const answers = await exchange(path, `${lines.join('\n')}\n{"type":"NatStatus"}\n`, 1001);
    for (const answer of answers.slice(0, 1000)) expect(JSON.parse(answer).type).toBe('Err');
    expect(JSON.parse(answers[1000]!)).toEqual({ type: 'NatStatus', candidates: [], peers: [], lastRefresh: 0 });
  });

  it('never crashes on mutated requests (seeded fuzz), answering every line with one JSON object', async () => {
    const { path } = await startServer();
    const seed = fuzzSeed();
    const rng = new Rng(seed);
    const lines = Array.from({ length: 500 }, () => randomMalformedLine(rng)).filter((line) => line.trim() !== '');
    const answers = await exchange(path, `${lines.join('\n')}\n{"type":"Status"}\n`, lines.length + 1);
    for (const answer of answers) expect(['Ok', 'Err', 'Ip', 'Status', 'NatStatus'], `seed ${seed}`).toContain(JSON.parse(answer).type);
    expect(JSON.parse(answers.at(-1)!).type).toBe('Status');
  });

  it('answers pipelined requests one at a time in order', async () => {
    const { path } = await startServer();
    const payload = Array.from({ length: 100 }, (_, i) => JSON.stringify({ type: 'AllocateIp', service: `s${i}`, joinGlobal: false })).join('\n');
    const answers = (await exchange(path, `${payload}\n`, 100)).map((line) => JSON.parse(line) as { type: string; ip: string });
    expect(answers.map((a) => a.ip)).toEqual(Array.from({ length: 100 }, (_, i) => `10.200.0.${i + 2}`));
  });

  it('answers an over-long line with an Err and keeps serving', async () => {
    const { path } = await startServer();
    const long = `{"type":"Status","pad":"${'x'.repeat(MAX_CONTROL_LINE_BYTES + 10)}"}`;
    const answers = await exchange(path, `${long}\n{"type":"Status"}\n`, 2);
    expect(JSON.parse(answers[0]!)).toEqual({ type: 'Err', message: expect.stringContaining('longer than') });
    expect(JSON.parse(answers[1]!).type).toBe('Status');
  });

  it('serialises requests across connections', async () => {
    const { path } = await startServer();
    const clients = await Promise.all([0, 1, 2, 3].map(() => ControlClient.connect(path)));
    const answers = await Promise.all(clients.flatMap((c) => Array.from({ length: 10 }, () => c.request({ type: 'AllocateIp', service: 'x', joinGlobal: false }))));
    const ips = answers.map((a) => (a as { ip: string }).ip);
    expect(new Set(ips).size).toBe(40);
    for (const c of clients) c.close();
  });

  it('carries a Status of 6,000 peers (an answer far longer than the request cap)', async () => {
    const status = bigStatus(6000);
    expect(JSON.stringify(status).length).toBeGreaterThan(MAX_CONTROL_LINE_BYTES);
    const path = join(freshDir(), 'big.sock');
    servers.push(await ControlServer.listen(path, async () => status));
    const client = await ControlClient.connect(path);
    const answer = await client.request({ type: 'Status' });
    client.close();
    expect(answer).toEqual(status);
  });

  it('runs NatTick beside the queue: requests behind a slow tick are answered, and a Shutdown waits for the queue one second, then goes ahead', async () => {
    let releaseTick: () => void = () => undefined;
    let releaseSlow: () => void = () => undefined;
    const path = join(freshDir(), 'slow.sock');
    const server = await ControlServer.listen(path, async (request) => {
      if (request.type === 'NatTick') await new Promise<void>((resolve) => (releaseTick = resolve));
      if (request.type === 'AllocateIp') await new Promise<void>((resolve) => (releaseSlow = resolve));
      return { type: 'Ok' };
    });
    servers.push(server);
    const tick = server.submit({ type: 'NatTick' });
    let tickAnswered = false;
    void tick.then(() => (tickAnswered = true));
    // The tick is never released before this: a Status queued behind it would never be answered.
    expect(await server.submit({ type: 'Status' })).toEqual({ type: 'Ok' });
    expect(tickAnswered).toBe(false);
    // Something slow in the queue itself: Shutdown goes ahead after exactly SHUTDOWN_QUEUE_WAIT_MS, on a clock the test moves.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const slow = server.submit({ type: 'AllocateIp', service: 'x', joinGlobal: false });
      let shutdownAnswer: Response | null = null;
      void server.submit({ type: 'Shutdown' }).then((answer) => (shutdownAnswer = answer));
      await vi.advanceTimersByTimeAsync(SHUTDOWN_QUEUE_WAIT_MS - 1);
      expect(shutdownAnswer).toBeNull();
      await vi.advanceTimersByTimeAsync(1);
      expect(shutdownAnswer).toEqual({ type: 'Ok' });
      releaseSlow();
      expect(await slow).toEqual({ type: 'Ok' });
    } finally {
      vi.useRealTimers();
    }
    releaseTick();
    expect(await tick).toEqual({ type: 'Ok' });
  });

  it('a client leaving before its answers (EPIPE, ECONNRESET on the server\'s side) is logged as nothing, and the next client is served', async () => {
    const status = bigStatus(6000);
    const path = join(freshDir(), 'gone.sock');
    const logged: string[] = [];
    let answered = 0;
    const server = await ControlServer.listen(
      path,
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        answered++;
        return status;
      },
      (message) => logged.push(message),
    );
    servers.push(server);
    for (let i = 0; i < 5; i++) {
      const gone = await SocketClient.connect(path);
      await gone.write('{"type":"Status"}\n{"type":"Status"}\n');
      gone.destroy();
    }
    // Every request was worked out and its answer written to a socket whose client had gone.
    await waitUntil(() => answered === 10, 'the ten answers', 10_000);
    const reader = await ControlClient.connect(path);
    expect(await reader.request({ type: 'Status' })).toEqual(status);
    reader.close();
    expect(logged).toEqual([]);
  });

  it('tells a client plainly when no node listens', async () => {
    const path = join(freshDir(), 'absent.sock');
    await expect(ControlClient.connect(path)).rejects.toThrow(`no tswg node is listening on ${path}`);
  });
});

describe('a client that half-closes its side', () => {
  it('gets the answer to the request it wrote before its end, then the server ends too', async () => {
    const { send } = await serverAnsweringAfterEnd();
    const client = await send('{"type":"NatStatus"}\n');
    expect(await answersUntilEnd(client)).toEqual([{ type: 'NatStatus', candidates: [], peers: [], lastRefresh: 0 }]);
  });

  it('gets the answers to all its requests, in order', async () => {
    const { send } = await serverAnsweringAfterEnd();
    const requests = ['first', 'second', 'third'].map((service) => JSON.stringify({ type: 'AllocateIp', service, joinGlobal: false }));
    const client = await send(`${requests.join('\n')}\n`);
    expect(await answersUntilEnd(client)).toEqual([
      { type: 'Ip', ip: '10.200.0.2' },
      { type: 'Ip', ip: '10.200.0.3' },
      { type: 'Ip', ip: '10.200.0.4' },
    ]);
  });

  it('has a last line without its newline taken as a request: answered when whole, an Err when cut short', async () => {
    const { path, send } = await serverAnsweringAfterEnd();
    const whole = await send('{"type":"AllocateIp","service":"a","joinGlobal":false}\n{"type":"AllocateIp","service":"b","joinGlobal":false}');
    expect(await answersUntilEnd(whole)).toEqual([
      { type: 'Ip', ip: '10.200.0.2' },
      { type: 'Ip', ip: '10.200.0.3' },
    ]);
    const cut = await sendAndHalfClose(path, '{"type":"NatStatus"}\n{"type":"AllocateIp","serv');
    const answers = await answersUntilEnd(cut);
    expect(answers).toHaveLength(2);
    expect(answers[0]!.type).toBe('NatStatus');
    expect(answers[1]).toEqual({ type: 'Err', message: expect.stringContaining('JSON') });
    // Only whitespace after the last newline is no request at all.
    const blank = await sendAndHalfClose(path, '{"type":"NatStatus"}\n \r');
    expect((await answersUntilEnd(blank)).map((answer) => answer.type)).toEqual(['NatStatus']);
  });

  it('is closed cleanly when it half-closes without a word, and the others are still served', async () => {
    const { path } = await startServer();
    const other = await ControlClient.connect(path);
    const silent = await sendAndHalfClose(path, '');
    expect(await answersUntilEnd(silent)).toEqual([]);
    expect((await other.request({ type: 'NatStatus' })).type).toBe('NatStatus');
    other.close();
    const next = await sendAndHalfClose(path, '{"type":"NatStatus"}\n');
    expect((await answersUntilEnd(next)).map((answer) => answer.type)).toEqual(['NatStatus']);
  });

  it('never reading its answers does not hold the server\'s close', async () => {
    const status = bigStatus(6000);
    const path = join(freshDir(), 'unread.sock');
    const server = await ControlServer.listen(path, async () => status);
    servers.push(server);
    const unread = await SocketClient.connect(path);
    // The client's buffers fill with the first answer and it never takes them.
    unread.socket.pause();
    await unread.write('{"type":"Status"}\n{"type":"Status"}\n{"type":"Status"}\n');
    unread.socket.end();
    const reader = await ControlClient.connect(path);
    expect(await reader.request({ type: 'Status' })).toEqual(status);
    reader.close();
    const started = performance.now();
    await server.close();
    // The answers under way get ANSWER_GRACE_MS, the client CLOSE_GRACE_MS to take them: 0.6 s, with room for a loaded machine.
    expect(performance.now() - started).toBeLessThan(2000);
    expect(existsSync(path)).toBe(false);
    unread.destroy();
  });
});
