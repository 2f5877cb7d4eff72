/**
 * The UAPI socket server, driven over node:net with a fake handler, plus the
 * real wg(8) against it (needs root: it uses /var/run/wireguard).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, rmSync, statSync, unlinkSync, writeFileSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, test } from 'vitest';
import { parseCidr } from '../../src/device/addr.js';
import { Errno, UapiError, formatGetResponse, formatUapiCidr } from '../../src/device/uapi.js';
import type { UapiDeviceState, UapiSetRequest } from '../../src/device/uapi.js';
import { UapiServer, uapiSocketPath } from '../../src/device/uapi-server.js';
import type { UapiHandler } from '../../src/device/uapi-server.js';
import { SocketClient } from '../helpers/socket-client.js';

const PUB_C = '4ca9497d9f7b167c754488a90f54a2096fbe42427299a48c4fdd786401e77674';
const hexKey = (hex: string): Uint8Array => new Uint8Array(Buffer.from(hex, 'hex'));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A device double: records set requests, applies the device-level part, answers get from `state`. */
class FakeDevice implements UapiHandler {
  state: UapiDeviceState = { privateKey: null, listenPort: 0, fwmark: 0, peers: [] };
  requests: UapiSetRequest[] = [];
  setHook: ((request: UapiSetRequest) => Promise<void>) | null = null;
  getError: unknown = null;

  get(): UapiDeviceState {
    if (this.getError !== null) throw this.getError;
    return this.state;
  }

  async set(request: UapiSetRequest): Promise<void> {
    this.requests.push(request);
    if (this.setHook) await this.setHook(request);
    if (request.listenPort !== undefined) this.state = { ...this.state, listenPort: request.listenPort };
    if (request.fwmark !== undefined) this.state = { ...this.state, fwmark: request.fwmark };
    if (request.privateKey !== undefined) this.state = { ...this.state, privateKey: request.privateKey };
  }
}

const RESPONSE_END = /errno=-?\d+\n\n/g;

/** A UAPI client: the line server's test client, reading whole UAPI responses. */
class Client extends SocketClient {
  responses(): string[] {
    const out: string[] = [];
    let start = 0;
    for (const match of this.data.matchAll(RESPONSE_END)) {
      out.push(this.data.slice(start, match.index + match[0].length));
      start = match.index + match[0].length;
    }
    return out;
  }

  waitResponses(n: number): Promise<void> {
    return this.until(`${n} responses`, () => this.responses().length >= n || this.closed);
  }
}

/** One request on a fresh connection; the whole transcript once the server answered `n` times or closed. */
async function transact(path: string, request: string | Buffer, n = 1): Promise<{ data: string; client: Client }> {
  const client = await Client.connect(path);
  await client.write(request);
  await client.waitResponses(n);
  return { data: client.data, client };
}

let dir: string;
let path: string;
let device: FakeDevice;
let logs: string[];
let server: UapiServer | null;
const clients: Client[] = [];

async function start(options?: Parameters<typeof UapiServer.listen>[3]): Promise<UapiServer> {
  server = await UapiServer.listen(path, device, (msg) => logs.push(msg), options);
  return server;
}

async function connect(): Promise<Client> {
  const client = await Client.connect(path);
  clients.push(client);
  return client;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tswg-uapi-'));
  path = join(dir, 'wgtest0.sock');
  device = new FakeDevice();
  logs = [];
  server = null;
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('requests', () => {
  test('get answers formatGetResponse(handler.get())', async () => {
    await start();
    device.state = { privateKey: null, listenPort: 41616, fwmark: 0, peers: [] };
    const client = await connect();
    await client.write('get=1\n\n');
    await client.waitResponses(1);
    expect(client.data).toBe('listen_port=41616\nerrno=0\n\n');
    expect(client.closed).toBe(false);
  });

  test('set hands the parsed request to the handler and answers errno=0', async () => {
    await start();
    const client = await connect();
    await client.write(`set=1\nlisten_port=51820\npublic_key=${PUB_C}\nallowed_ip=10.0.0.1/24\nendpoint=1.2.3.4:5\n\n`);
    await client.waitResponses(1);
    expect(client.data).toBe('errno=0\n\n');
    expect(device.requests).toHaveLength(1);
    const request = device.requests[0]!;
    expect(request.listenPort).toBe(51820);
    expect(Buffer.from(request.peers[0]!.publicKey).toString('hex')).toBe(PUB_C);
    expect(request.peers[0]!.allowedIps.map(formatUapiCidr)).toEqual(['10.0.0.0/24']);
    expect(request.peers[0]!.endpoint).toEqual({ family: 4, address: '1.2.3.4', port: 5 });
  });

  test('a bad set never reaches the handler; errno=-22 / -71; the connection stays usable', async () => {
    await start();
    const client = await connect();
    await client.write('set=1\nlisten_port=40005\nbogus=1\n\n');
    await client.waitResponses(1);
    await client.write('set=1\nnoequals\n\n');
    await client.waitResponses(2);
    await client.write('get=1\n\n');
    await client.waitResponses(3);
    expect(client.responses()).toEqual(['errno=-22\n\n', 'errno=-71\n\n', 'errno=0\n\n']);
    expect(device.requests).toEqual([]);
    expect(logs.join('\n')).toMatch(/invalid UAPI device key "bogus"/);
  });

  test('several requests in one write are answered in order', async () => {
    await start();
    const client = await connect();
    await client.write('get=1\n\nset=1\nlisten_port=7\n\nget=1\n\nset=1\nfwmark=x\n\nget=1\n\n');
    await client.waitResponses(5);
    expect(client.responses()).toEqual(['errno=0\n\n', 'errno=0\n\n', 'listen_port=7\nerrno=0\n\n', 'errno=-22\n\n', 'listen_port=7\nerrno=0\n\n']);
    expect(client.closed).toBe(false);
  });

  test('requests split across chunks at every byte', async () => {
    await start();
    const client = await connect();
    const text = `get=1\n\nset=1\nlisten_port=9\r\npublic_key=${PUB_C}\nallowed_ip=10.0.0.0/8\n\nget=1\n\n`;
    for (const byte of Buffer.from(text)) {
      await client.write(Buffer.of(byte));
      await sleep(0);
    }
    await client.waitResponses(3);
    expect(client.responses()).toEqual(['errno=0\n\n', 'errno=0\n\n', 'listen_port=9\nerrno=0\n\n']);
    expect(device.requests[0]!.peers[0]!.allowedIps.map(formatUapiCidr)).toEqual(['10.0.0.0/8']);
  });

  test('CRLF line ends inside a set are accepted (Go bufio.ScanLines strips the \\r)', async () => {
    await start();
    const crlf = await connect();
    await crlf.write('set=1\r\n');
    await crlf.waitClosed();
    expect(crlf.data).toBe(''); // "set=1\r\n" is not an operation: closed without an answer, like wireguard-go
    const client = await connect();
    await client.write('set=1\nlisten_port=51820\r\n\r\n');
    await client.waitResponses(1);
    expect(client.data).toBe('errno=0\n\n');
    expect(device.state.listenPort).toBe(51820);
  });

  test('a set cut short by the client shutting down its side is applied and answered (wireguard-go does)', async () => {
    await start();
    const client = await connect();
    await client.write('set=1\nlisten_port=51821\nfwmark=3');
    client.socket.end();
    await client.waitClosed();
    expect(client.data).toBe('errno=0\n\n');
    expect(device.requests).toEqual([{ listenPort: 51821, fwmark: 3, replacePeers: false, peers: [] }]);
  });

  test('"get=1\\n" then EOF: closed without an answer; "get=1\\nx": errno=-22 then closed', async () => {
    await start();
    const a = await connect();
    await a.write('get=1\n');
    a.socket.end();
    await a.waitClosed();
    expect(a.data).toBe('');
    const b = await connect();
    await b.write('get=1\nx\n');
    await b.waitClosed();
    expect(b.data).toBe('errno=-22\n\n');
  });

  test('handler errors: UapiError keeps its errno, anything else is EIO and logged', async () => {
    await start();
    device.setHook = async (request) => {
      if (request.listenPort === 1) throw new UapiError(Errno.EADDRINUSE, 'listen port 1 is in use');
      if (request.listenPort === 2) throw new TypeError('boom');
    };
    const client = await connect();
    await client.write('set=1\nlisten_port=1\n\nset=1\nlisten_port=2\n\n');
    await client.waitResponses(2);
    device.getError = new RangeError('get exploded');
    await client.write('get=1\n\n');
    await client.waitResponses(3);
    device.getError = new UapiError(Errno.EPROTO, 'nope');
    await client.write('get=1\n\n');
    await client.waitResponses(4);
    expect(client.responses()).toEqual(['errno=-98\n\n', 'errno=-5\n\n', 'errno=-5\n\n', 'errno=-71\n\n']);
    const log = logs.join('\n');
    expect(log).toMatch(/listen port 1 is in use/);
    expect(log).toMatch(/boom/);
    expect(log).toMatch(/get exploded/);
  });

  test('handler calls are serialised across connections: a get waits for a set in progress', async () => {
    await start();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const setInProgress = new Promise<void>((resolve) => (entered = resolve));
    device.setHook = async () => {
      device.state = { ...device.state, fwmark: 1 }; // half done
      entered();
      await gate;
    };
    const setter = await connect();
    await setter.write('set=1\nlisten_port=99\n\n');
    await setInProgress; // the get below must arrive while the set is half done
    const getter = await connect();
    await getter.write('get=1\n\n');
    await sleep(50);
    expect(getter.data).toBe('');
    release();
    await getter.waitResponses(1);
    expect(getter.data).toBe('listen_port=99\nfwmark=1\nerrno=0\n\n');
  });
});

describe('garbage and limits', () => {
  test('an unknown operation closes the connection without an answer, like wireguard-go', async () => {
    await start();
    for (const op of ['foo=1\n\n', 'get=2\n\n', 'get=1\r\n\r\n', '\n', 'GET=1\n\n']) {
      const client = await connect();
      await client.write(op);
      await client.waitClosed();
      expect(client.data, op).toBe('');
    }
    expect(logs.join('\n')).toMatch(/invalid UAPI operation: "foo=1"/);
  });

  test('random bytes never crash the server', async () => {
    await start();
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) & 0xff;
    for (let i = 0; i < 60; i++) {
      const client = await connect();
      const prefix = ['', 'set=1\n', 'get=1\n', `set=1\npublic_key=${PUB_C}\n`][i % 4]!;
      const noise = Buffer.from(Array.from({ length: 1 + (random() << 2) }, random));
      await client.write(Buffer.concat([Buffer.from(prefix), noise]));
      if (i % 2 === 0) client.socket.end();
      else client.destroy();
    }
    await sleep(50);
    const { data } = await transact(path, 'get=1\n\n');
    expect(data).toBe('errno=0\n\n');
  });

  test('an over-long set line: errno=-5 (EIO, as wireguard-go answers a line over 64 KiB) and closed', async () => {
    await start();
    const client = await connect();
    await client.write(`set=1\nfwmark=${'1'.repeat(70_000)}\n\n`);
    await client.waitClosed();
    expect(client.data).toBe('errno=-5\n\n');
    expect(device.requests).toEqual([]);
  });

  test('a never-ending line is cut off at the limit, not buffered', async () => {
    await start({ maxLineBytes: 1024 });
    const client = await connect();
    await client.write('set=1\nlisten_port=');
    const chunk = Buffer.alloc(512, 0x31);
    for (let i = 0; i < 100 && !client.closed; i++) {
      await client.write(chunk);
      await sleep(0);
    }
    await client.waitClosed();
    expect(client.data).toBe('errno=-5\n\n');
  });

  test('an endless operation line (no newline) is dropped without an answer', async () => {
    await start();
    const client = await connect();
    const chunk = Buffer.alloc(4096, 0x61);
    for (let i = 0; i < 100 && !client.closed; i++) {
      await client.write(chunk);
      await sleep(0);
    }
    await client.waitClosed();
    expect(client.data).toBe('');
  });

  test('a set request over maxRequestBytes: errno=-90 (EMSGSIZE) and closed, handler not called', async () => {
    await start({ maxRequestBytes: 4096 });
    const client = await connect();
    const lines = Array.from({ length: 400 }, (_, i) => `allowed_ip=10.${i >> 8}.${i & 255}.0/24\n`).join('');
    await client.write(`set=1\npublic_key=${PUB_C}\n${lines}\n`);
    await client.waitClosed();
    expect(client.data).toBe('errno=-90\n\n');
    expect(device.requests).toEqual([]);
  });

  test('a large valid request within the limits goes through', async () => {
    await start();
    const lines = Array.from({ length: 20_000 }, (_, i) => `allowed_ip=10.${i >> 8}.${i & 255}.0/24\n`).join('');
    const { data } = await transact(path, `set=1\npublic_key=${PUB_C}\n${lines}\n`);
    expect(data).toBe('errno=0\n\n');
    expect(device.requests[0]!.peers[0]!.allowedIps).toHaveLength(20_000);
  });

  test('many pipelined requests from a client that reads slowly are all answered', async () => {
    await start();
    device.state = { ...device.state, peers: [] };
    const client = await connect();
    client.socket.pause();
    await client.write('get=1\n\n'.repeat(500));
    await sleep(50);
    client.socket.resume();
    await client.until('500 responses', () => client.responses().length >= 500);
    expect(client.responses().every((r) => r === 'errno=0\n\n')).toBe(true);
  });
});

describe('the socket file', () => {
  test('mode 0700 like wireguard-go; a missing directory is created 0755; close() removes the socket', async () => {
    path = join(dir, 'run', 'wireguard', 'wgtest1.sock');
    const s = await start();
    expect(s.path).toBe(path);
    expect(lstatSync(path).isSocket()).toBe(true);
    expect(lstatSync(path).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'run', 'wireguard')).mode & 0o777).toBe(0o755);
    const client = await connect();
    await s.close();
    await client.waitClosed();
    expect(existsSync(path)).toBe(false);
    await s.close(); // idempotent
    server = null;
  });

  test('a stale socket file (its process died) is replaced', async () => {
    // A process that binds the path and is SIGKILLed leaves the socket file behind.
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(lstatSync(path).isSocket()).toBe(true);
    await start();
    const { data } = await transact(path, 'get=1\n\n');
    expect(data).toBe('errno=0\n\n');
  });

  test('a live socket is refused: "interface NAME is in use"', async () => {
    const other = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => other.listen(path, resolve));
    try {
      await expect(UapiServer.listen(path, device)).rejects.toThrow(/^interface wgtest0 is in use: /);
      expect(lstatSync(path).isSocket()).toBe(true);
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
    const first = await start();
    await expect(UapiServer.listen(path, new FakeDevice())).rejects.toThrow(/interface wgtest0 is in use/);
    expect((await transact(path, 'get=1\n\n')).data).toBe('errno=0\n\n');
    await first.close();
  });

  test('a path that is not a socket is left alone', async () => {
    writeFileSync(path, 'precious');
    await expect(UapiServer.listen(path, device)).rejects.toThrow(/not a socket/);
    expect(readFileSync(path, 'utf8')).toBe('precious');
    unlinkSync(path);
  });

  test('uapiSocketPath', () => {
    expect(uapiSocketPath('wg0')).toBe('/var/run/wireguard/wg0.sock');
  });
});

describe('the real wg(8) against the server', () => {
  const name = `tswgut${process.pid}`;
  const socketPath = uapiSocketPath(name);
  let wgServer: UapiServer | null = null;
  const wgDevice = new FakeDevice();
  const removeSocket = () => {
    try {
      if (lstatSync(socketPath).isSocket()) unlinkSync(socketPath);
    } catch {
      // gone already
    }
  };

  afterAll(async () => {
    await wgServer?.close();
    removeSocket();
    process.off('exit', removeSocket);
  });

  /** Asynchronous on purpose: the server answering wg runs on this very event loop. */
  const wg = (...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const child = spawn('wg', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.on('close', (status) => {
        clearTimeout(timer);
        resolve({ status, stdout, stderr });
      });
    });

  test('wg show dump and wg set', async () => {
    expect(process.getuid?.(), 'needs root for /var/run/wireguard').toBe(0);
    expect(name.length).toBeLessThanOrEqual(15);
    process.on('exit', removeSocket);
    wgServer = await UapiServer.listen(socketPath, wgDevice, () => {});

    const privateB64 = execFileSync('wg', ['genkey'], { encoding: 'utf8' }).trim();
    const publicB64 = execFileSync('wg', ['pubkey'], { input: `${privateB64}\n`, encoding: 'utf8' }).trim();
    const peerB64 = randomBytes(32).toString('base64');
    const pskB64 = randomBytes(32).toString('base64');
    wgDevice.state = {
      privateKey: new Uint8Array(Buffer.from(privateB64, 'base64')),
      listenPort: 51820,
      fwmark: 0,
      peers: [
        {
          publicKey: new Uint8Array(Buffer.from(peerB64, 'base64')),
          presharedKey: new Uint8Array(Buffer.from(pskB64, 'base64')),
          endpoint: { family: 6, address: 'fd00::1', port: 5 },
          lastHandshakeTimeMs: 1_700_000_000_500,
          rxBytes: 92,
          txBytes: 212,
          persistentKeepaliveInterval: 25,
          allowedIps: [parseCidr('10.0.0.0/24'), parseCidr('fd00::/64')],
        },
        {
          publicKey: hexKey(PUB_C),
          presharedKey: null,
          endpoint: null,
          lastHandshakeTimeMs: 0,
          rxBytes: 0,
          txBytes: 0,
          persistentKeepaliveInterval: 0,
          allowedIps: [],
        },
      ],
    };

    const show = await wg('show', name, 'dump');
    expect(show.stderr).toBe('');
    expect(show.status).toBe(0);
    const pubC = Buffer.from(PUB_C, 'hex').toString('base64');
    expect(show.stdout).toBe(
      `${privateB64}\t${publicB64}\t51820\toff\n` +
        `${peerB64}\t${pskB64}\t[fd00::1]:5\t10.0.0.0/24,fd00::/64\t1700000000\t92\t212\t25\n` +
        `${pubC}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n`,
    );

    const newPeer = randomBytes(32).toString('base64');
    const set = await wg('set', name, 'peer', newPeer, 'allowed-ips', '10.0.0.1/32', 'endpoint', '1.2.3.4:5');
    expect(set.stderr).toBe('');
    expect(set.status).toBe(0);
    expect(wgDevice.requests).toHaveLength(1);
    const request = wgDevice.requests[0]!;
    expect(request.replacePeers).toBe(false);
    expect(request.privateKey).toBeUndefined();
    expect(request.peers).toHaveLength(1);
    const change = request.peers[0]!;
    expect(Buffer.from(change.publicKey).toString('base64')).toBe(newPeer);
    expect(change.endpoint).toEqual({ family: 4, address: '1.2.3.4', port: 5 });
    expect(change.replaceAllowedIps).toBe(true);
    expect(change.allowedIps.map(formatUapiCidr)).toEqual(['10.0.0.1/32']);
    expect(change.remove || change.updateOnly).toBe(false);

    // An error from the device reaches wg as errno: it prints strerror(EADDRINUSE).
    wgDevice.setHook = async () => {
      throw new UapiError(Errno.EADDRINUSE, 'port taken');
    };
    const failed = await wg('set', name, 'listen-port', '1');
    expect(failed.status).not.toBe(0);
    expect(failed.stderr).toMatch(/Address already in use/);
    wgDevice.setHook = null;

    const removed = await wg('set', name, 'peer', newPeer, 'remove');
    expect(removed.status).toBe(0);
    expect(wgDevice.requests.at(-1)!.peers[0]!.remove).toBe(true);

    // The golden text this server sent for the dump above, for the record.
    expect(formatGetResponse(wgDevice.state)).toContain('endpoint=[fd00::1]:5\nlast_handshake_time_sec=1700000000\nlast_handshake_time_nsec=500000000\n');

    await wgServer.close();
    wgServer = null;
    expect(existsSync(socketPath)).toBe(false);
  });
});
