/**
 * The unix-socket line server over real sockets: line framing across chunks,
 * an over-long line (reported once, dropped to its newline, the connection
 * usable after), a limit changed between lines, back-pressure, many
 * connections at once, the client ending its side, close() with clients
 * connected (dropped, or given their answers under way), and the socket path:
 * modes, a stale socket replaced, a live one and a non-socket refused,
 * nothing left behind.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { LineServer, NotASocketError, SocketInUseError, type LineConnection, type LineServerOptions, type LineSession } from '../../src/platform/line-server.js';
import { SocketClient } from '../helpers/socket-client.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const OPTIONS: LineServerOptions = {
  socketMode: 0o600,
  directoryMode: 0o750,
  probeTimeoutMs: 1000,
  maxLineBytes: 64,
  pauseAt: 16,
  resumeBelow: 8,
  closeGraceMs: 200,
};

/** A session that records what it is given and answers each line with its length. */
class Recorder implements LineSession {
  lines: string[] = [];
  overlongHeads: Buffer[] = [];
  ends: string[] = [];
  constructor(readonly connection: LineConnection) {}
  line(bytes: Buffer): void {
    this.lines.push(bytes.toString('latin1'));
    this.connection.reply(() => `${bytes.length}\n`);
  }
  overlong(head: Buffer): void {
    this.overlongHeads.push(head);
    this.connection.reply(() => 'too long\n');
  }
  end(rest: Buffer): void {
    this.ends.push(rest.toString('latin1'));
    this.connection.reply(() => `rest ${rest.length}\n`);
    this.connection.finish();
  }
}

/** The line server's test client, reading newline-framed answers. */
class Client extends SocketClient {
  answers(): string[] {
    return this.data.split('\n').slice(0, -1);
  }
}

let dir: string;
let path: string;
let servers: LineServer[];
let clients: Client[];
let sessions: Recorder[];

async function start(options: Partial<LineServerOptions> = {}, open?: (connection: LineConnection) => LineSession): Promise<LineServer> {
  const server = await LineServer.listen(
    path,
    open ??
      ((connection) => {
        const session = new Recorder(connection);
        sessions.push(session);
        return session;
      }),
    { ...OPTIONS, ...options },
  );
  servers.push(server);
  return server;
}

async function connect(): Promise<Client> {
  const client = await Client.connect(path);
  clients.push(client);
  return client;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tswg-lines-'));
  path = join(dir, 'lines.sock');
  servers = [];
  clients = [];
  sessions = [];
});

afterEach(async () => {
  for (const client of clients) client.socket.destroy();
  for (const server of servers) await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('framing', () => {
  test('lines split across chunks at every byte arrive whole, in order, a \\r kept', async () => {
    await start({ allowHalfOpen: true });
    const client = await connect();
    const text = 'alpha\nbeta\r\n\ngamma-delta\n';
    for (const byte of Buffer.from(text)) {
      await client.write(Buffer.of(byte));
      await sleep(0);
    }
    await client.until('4 answers', () => client.answers().length >= 4);
    expect(sessions[0]!.lines).toEqual(['alpha', 'beta\r', '', 'gamma-delta']);
    expect(client.answers()).toEqual(['5', '5', '0', '11']);
  });

  test('many lines in one chunk are answered in order', async () => {
    await start();
    const client = await connect();
    const lines = Array.from({ length: 300 }, (_, i) => 'x'.repeat(i % 50));
    await client.write(`${lines.join('\n')}\n`);
    await client.until('300 answers', () => client.answers().length >= 300);
    expect(client.answers()).toEqual(lines.map((line) => String(line.length)));
  });

  test('an over-long line is reported once, as soon as it is over, and dropped up to its newline; the next line is served', async () => {
    await start({ maxLineBytes: 16 });
    const client = await connect();
    await client.write('y'.repeat(10));
    await client.write('y'.repeat(10));
    await client.until('the report', () => client.answers().length >= 1);
    expect(sessions[0]!.overlongHeads.map((head) => head.toString())).toEqual(['y'.repeat(20)]);
    await client.write(`${'y'.repeat(100)}\nok\n`);
    await client.until('2 answers', () => client.answers().length >= 2);
    expect(client.answers()).toEqual(['too long', '2']);
    expect(sessions[0]!.lines).toEqual(['ok']);
    // A line exactly at the limit is fine.
    await client.write(`${'z'.repeat(16)}\n`);
    await client.until('3 answers', () => client.answers().length >= 3);
    expect(client.answers()[2]).toBe('16');
  });

  test('a never-ending line is not buffered: one report, then its bytes are dropped', async () => {
    await start({ maxLineBytes: 1024 });
    const client = await connect();
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let i = 0; i < 64; i++) await client.write(chunk);
    await client.write('\nafter\n');
    await client.until('2 answers', () => client.answers().length >= 2);
    expect(client.answers()).toEqual(['too long', '5']);
    expect(sessions[0]!.overlongHeads).toHaveLength(1);
    expect(sessions[0]!.overlongHeads[0]!.length).toBeLessThanOrEqual(1024 + chunk.length);
  });

  test('the session may change the limit between lines; 0 lets only an empty line through', async () => {
    const seen: string[] = [];
    await start({}, (connection) => ({
      line(bytes) {
        seen.push(bytes.toString());
        connection.maxLineBytes = bytes.toString() === 'strict' ? 0 : OPTIONS.maxLineBytes;
        connection.reply(() => 'line\n');
      },
      overlong(head) {
        seen.push(`overlong ${head.toString()}`);
        connection.reply(() => 'overlong\n');
        connection.finish();
      },
    }));
    const client = await connect();
    await client.write('strict\n\nstrict\nx');
    await client.until('closed', () => client.closed);
    expect(seen).toEqual(['strict', '', 'strict', 'overlong x']);
    expect(client.answers()).toEqual(['line', 'line', 'line', 'overlong']);
  });

  test('bad bytes (NUL, invalid UTF-8, lone \\r) are lines like any other', async () => {
    await start();
    const client = await connect();
    await client.write(Buffer.from([0x00, 0xff, 0xfe, 0x0d, 0x0a, 0x0d, 0x0d, 0x0a]));
    await client.until('2 answers', () => client.answers().length >= 2);
    expect(client.answers()).toEqual(['4', '2']);
  });
});

describe('answers and connections', () => {
  test('a connection is not read while pauseAt answers are outstanding, and is read again after', async () => {
    const gates: (() => void)[] = [];
    let received = 0;
    await start({ pauseAt: 2, resumeBelow: 2 }, (connection) => ({
      line() {
        received++;
        connection.reply(() => new Promise<string>((resolve) => gates.push(() => resolve('done\n'))));
      },
      overlong() {},
    }));
    const client = await connect();
    for (let i = 0; i < 10; i++) {
      await client.write('req\n');
      await sleep(10);
    }
    await sleep(50);
    expect(received).toBe(2);
    for (let released = 0; released < 10; released++) {
      await client.until(`${released} answers`, () => client.answers().length >= released);
      while (gates.length === 0) await sleep(5);
      gates.shift()!();
    }
    await client.until('10 answers', () => client.answers().length >= 10);
    expect(received).toBe(10);
  });

  test('200 connections at once are each answered in order, and all are gone once the clients leave', async () => {
    const server = await start();
    const many = await Promise.all(Array.from({ length: 200 }, () => connect()));
    await Promise.all(many.map((client, i) => client.write(`${'a'.repeat(i % 40)}\n${'b'.repeat(i % 7)}\n`)));
    await Promise.all(many.map((client) => client.until('2 answers', () => client.answers().length >= 2)));
    many.forEach((client, i) => expect(client.answers()).toEqual([String(i % 40), String(i % 7)]));
    expect(server.connectionCount).toBe(200);
    for (const client of many) client.socket.destroy();
    const deadline = Date.now() + 3000;
    while (server.connectionCount > 0 && Date.now() < deadline) await sleep(10);
    expect(server.connectionCount).toBe(0);
  });

  test('with allowHalfOpen the session sees the client end its side, with the unterminated rest, and can still answer', async () => {
    await start({ allowHalfOpen: true });
    const client = await connect();
    await client.write('one\ntail');
    client.socket.end();
    await client.until('closed', () => client.closed);
    expect(client.answers()).toEqual(['3', 'rest 4']);
    expect(sessions[0]!.ends).toEqual(['tail']);
  });

  test('finish() closes after the last answer; a client that keeps its side open is cut off after closeGraceMs', async () => {
    const server = await start({ closeGraceMs: 100 }, (connection) => ({
      line() {
        connection.reply(async () => {
          await sleep(30);
          return 'bye\n';
        });
        connection.finish();
      },
      overlong() {},
    }));
    const client = await connect();
    await client.write('quit\nignored\n');
    await client.until('closed', () => client.closed);
    expect(client.data).toBe('bye\n');
    // The client never ends its side: the server lets go of the connection after the grace.
    expect(server.connectionCount).toBe(1);
    const deadline = Date.now() + 2000;
    while (server.connectionCount > 0 && Date.now() < deadline) await sleep(10);
    expect(server.connectionCount).toBe(0);
  });

  test('a session whose answer throws loses its connection; the server keeps serving and logs it', async () => {
    const logs: string[] = [];
    await start({ log: (message) => logs.push(message) }, (connection) => ({
      line(bytes) {
        connection.reply(() => {
          if (bytes.toString() === 'boom') throw new Error('answer exploded');
          return 'fine\n';
        });
      },
      overlong() {},
    }));
    const bad = await connect();
    await bad.write('boom\n');
    await bad.until('closed', () => bad.closed);
    const good = await connect();
    await good.write('hello\n');
    await good.until('an answer', () => good.answers().length >= 1);
    expect(good.answers()).toEqual(['fine']);
    expect(logs.join('\n')).toMatch(/connection failed: answer exploded/);
  });
});

describe('close', () => {
  test('drops connected clients at once, refuses new ones, removes the socket file; idempotent', async () => {
    const server = await start();
    const waiting = await connect();
    await waiting.write('partial line without newline');
    const idle = await connect();
    await server.close();
    await waiting.until('closed', () => waiting.closed);
    await idle.until('closed', () => idle.closed);
    expect(existsSync(path)).toBe(false);
    await expect(Client.connect(path)).rejects.toThrow(/ENOENT/);
    await server.close();
  });

  test('with answerGraceMs, answers under way reach the client before it is closed', async () => {
    const server = await start({ answerGraceMs: 1000 }, (connection) => ({
      line() {
        connection.reply(async () => {
          await sleep(100);
          return 'late answer\n';
        });
      },
      overlong() {},
    }));
    const client = await connect();
    await client.write('slow\n');
    await sleep(20);
    await server.close();
    await client.until('closed', () => client.closed);
    expect(client.data).toBe('late answer\n');
    expect(existsSync(path)).toBe(false);
  });

  test('with answerGraceMs, an answer that never comes does not hold close() past the grace', async () => {
    const server = await start({ answerGraceMs: 100, closeGraceMs: 100 }, (connection) => ({
      line() {
        connection.reply(() => new Promise<string>(() => undefined));
      },
      overlong() {},
    }));
    const client = await connect();
    await client.write('never\n');
    await sleep(20);
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(existsSync(path)).toBe(false);
  });
});

describe('the socket path', () => {
  test('missing directories get directoryMode, the socket socketMode', async () => {
    path = join(dir, 'run', 'deep', 'lines.sock');
    await start();
    expect(lstatSync(path).isSocket()).toBe(true);
    expect(lstatSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'run')).mode & 0o777).toBe(0o750);
    expect(statSync(join(dir, 'run', 'deep')).mode & 0o777).toBe(0o750);
  });

  test('a stale socket file (its process died) is replaced', async () => {
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(lstatSync(path).isSocket()).toBe(true);
    await start();
    const client = await connect();
    await client.write('hi\n');
    await client.until('an answer', () => client.answers().length >= 1);
    expect(client.answers()).toEqual(['2']);
  });

  test('a live socket is refused with SocketInUseError and left working', async () => {
    const first = await start();
    const refusal = await LineServer.listen(path, (connection) => new Recorder(connection), OPTIONS).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(SocketInUseError);
    expect((refusal as SocketInUseError).accepted).toBe(true);
    expect((refusal as Error).message).toBe(`${path} accepts connections`);
    const client = await connect();
    await client.write('still\n');
    await client.until('an answer', () => client.answers().length >= 1);
    expect(client.answers()).toEqual(['5']);
    await first.close();
    expect(existsSync(path)).toBe(false);
  });

  test('a path that is not a socket is refused with NotASocketError and left alone', async () => {
    writeFileSync(path, 'precious');
    await expect(start()).rejects.toBeInstanceOf(NotASocketError);
    expect(readFileSync(path, 'utf8')).toBe('precious');
  });
});
