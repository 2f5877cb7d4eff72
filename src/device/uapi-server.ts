/**
 * The UAPI unix-socket server: /var/run/wireguard/IFNAME.sock, spoken by
 * wg(8) and any other client of the cross-platform userspace API.
 *
 * Framing follows wireguard-go 0.0.20220316 (device/uapi.go IpcHandle and
 * ipc/uapi_linux.go), checked against the real binary:
 *
 * - Each request starts with an operation line, "get=1" or "set=1". Any other
 *   operation line is logged and the connection is closed without a reply.
 * - "get=1" must be followed by an empty line; anything else is answered with
 *   errno=-22 (EINVAL). Here the connection is then closed as well, because
 *   the stream can no longer be trusted to be in step.
 * - "set=1" is followed by key=value lines up to an empty line. A trailing
 *   '\r' is stripped from each of them (Go's bufio.ScanLines does the same).
 *   When the client shuts down its sending side before the empty line, the
 *   request is processed as it stands and answered, as wireguard-go does.
 * - Every reply ends with "errno=N\n\n", N being 0 or a negative errno.
 * - Several requests may follow one another on a connection; each is answered
 *   in order. (wireguard-go reads ahead after a set and may drop a request
 *   that follows it; this server does not.)
 * - A set line longer than maxLineBytes (64 KiB, bufio.Scanner's limit in
 *   wireguard-go) is answered with errno=-5 (EIO), and the connection closed.
 *   A set request larger than maxRequestBytes gets errno=-90 (EMSGSIZE) and
 *   the connection is closed. Nothing a client sends can make the server hold
 *   more than about one request's worth of memory per connection.
 * - A set request is parsed and validated in full before the handler sees
 *   it: a request with a bad line changes nothing (wireguard-go would have
 *   applied the lines before the bad one).
 * - Handler calls are serialised across all connections (wireguard-go's
 *   ipcMutex): a get never sees a set half done.
 * - A handler exception that is not a UapiError is logged and answered with
 *   errno=-5 (EIO).
 *
 * The socket directory is created with mode 0755 when missing and the socket
 * is created with mode 0700 (umask 077 during bind), as wireguard-go leaves
 * them. A stale socket file (nobody accepts connections on it) is replaced;
 * a live one makes listen() fail.
 */
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import net from 'node:net';
import { basename, dirname, join } from 'node:path';
import { UAPI_SOCKET_DIRECTORY } from './constants.js';
import { Errno, UapiError, formatErrno, formatGetResponse, parseSetRequest } from './uapi.js';
import type { UapiDeviceState, UapiSetRequest } from './uapi.js';

export interface UapiHandler {
  get(): UapiDeviceState;
  /** Apply a request that parseSetRequest has already validated. May throw UapiError. */
  set(request: UapiSetRequest): Promise<void>;
}

export interface UapiServerOptions {
  /** Longest set line, in bytes, not counting '\n'. Default 65536. */
  maxLineBytes?: number;
  /** Largest set request, in bytes, lines and their '\n' included. Default 32 MiB. */
  maxRequestBytes?: number;
  /** Mode of the socket file. Default 0o700, what wireguard-go leaves. */
  socketMode?: number;
}

export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;
export const DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024;
export const DEFAULT_SOCKET_MODE = 0o700;

/** "/var/run/wireguard/IFNAME.sock", where wg(8) looks for a userspace interface. */
export function uapiSocketPath(interfaceName: string): string {
  return join(UAPI_SOCKET_DIRECTORY, `${interfaceName}.sock`);
}

/** Operation lines are "get=1" and "set=1"; a longer line is not one. */
const MAX_OPERATION_BYTES = 64;
/** Stop reading a connection while this many requests wait for an answer. */
const MAX_QUEUED_JOBS = 4;
const PROBE_TIMEOUT_MS = 2000;
/** How long a client may keep its side open after the server said its last word. */
const CLOSE_GRACE_MS = 1000;
const NEWLINE = 0x0a;
const EMPTY = Buffer.alloc(0);

type Job =
  | { kind: 'get' }
  | { kind: 'set'; lines: string[] }
  | { kind: 'error'; errno: number; message: string };

interface Limits {
  maxLineBytes: number;
  maxRequestBytes: number;
}

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function printable(bytes: Buffer): string {
  return JSON.stringify(bytes.subarray(0, MAX_OPERATION_BYTES).toString('latin1'));
}

export class UapiServer {
  private readonly connections = new Set<UapiConnection>();
  /** Serialises handler calls across connections. */
  private lock: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | null = null;

  private constructor(
    readonly path: string,
    private readonly server: net.Server,
    private readonly handler: UapiHandler,
    private readonly log: (msg: string) => void,
    private readonly limits: Limits,
  ) {
    server.on('connection', (socket) => {
      if (this.closing !== null) {
        socket.destroy();
        return;
      }
      const connection = new UapiConnection(socket, this, this.limits, this.log);
      this.connections.add(connection);
      socket.once('close', () => this.connections.delete(connection));
    });
    server.on('error', (error) => this.log(`UAPI: socket ${this.path}: ${describe(error)}`));
  }

  /**
   * Listen on `path` (normally uapiSocketPath(ifname)). Fails when another
   * process answers on it ("interface IFNAME is in use") or when the path is
   * something other than a socket; a stale socket file is replaced.
   */
  static async listen(
    path: string,
    handler: UapiHandler,
    log: (msg: string) => void = () => {},
    options: UapiServerOptions = {},
  ): Promise<UapiServer> {
    const limits: Limits = {
      maxLineBytes: options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES,
      maxRequestBytes: options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
    };
    const directory = dirname(path);
    const created = await mkdir(directory, { recursive: true, mode: 0o755 });
    if (created !== undefined) await chmod(directory, 0o755);
    await removeStaleSocket(path);
    const server = net.createServer({ allowHalfOpen: true });
    await listenPrivately(server, path);
    try {
      await chmod(path, options.socketMode ?? DEFAULT_SOCKET_MODE);
    } catch (error) {
      server.close();
      throw error;
    }
    return new UapiServer(path, server, handler, log, limits);
  }

  /** Stop listening, drop the open connections and remove the socket file. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const connection of this.connections) connection.destroy();
      // libuv unlinks the socket file when a listening pipe closes.
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
      try {
        const stats = await lstat(this.path);
        if (stats.isSocket()) await unlink(this.path);
      } catch (error) {
        if (errnoCode(error) !== 'ENOENT') throw error;
      }
    })();
    return this.closing;
  }

  /** Run one job under the server-wide lock; always resolves to the full response text. */
  async execute(job: Job): Promise<string> {
    if (job.kind === 'error') {
      this.log(`UAPI: ${job.message} (errno=-${job.errno})`);
      return formatErrno(job.errno);
    }
    let request: UapiSetRequest | undefined;
    if (job.kind === 'set') {
      try {
        request = parseSetRequest(job.lines);
      } catch (error) {
        return this.failure('set', error);
      }
    }
    return this.locked(async () => {
      try {
        if (request === undefined) return formatGetResponse(this.handler.get());
        await this.handler.set(request);
        return formatErrno(0);
      } catch (error) {
        return this.failure(job.kind, error);
      }
    });
  }

  private failure(operation: string, error: unknown): string {
    if (error instanceof UapiError) {
      this.log(`UAPI: ${operation} failed: ${error.message} (errno=-${error.errno})`);
      return formatErrno(error.errno);
    }
    this.log(`UAPI: ${operation} failed with an unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return formatErrno(Errno.EIO);
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.lock.then(fn);
    this.lock = result.catch(() => {});
    return result;
  }
}

/** One client connection: splits the byte stream into requests and answers them in order. */
class UapiConnection {
  private pending: Buffer = EMPTY;
  private mode: 'operation' | 'get' | 'set' | 'done' = 'operation';
  private lines: string[] = [];
  private requestBytes = 0;
  private readonly jobs: Job[] = [];
  private running = false;
  private closeWhenIdle = false;
  private closing = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly server: UapiServer,
    private readonly limits: Limits,
    private readonly log: (msg: string) => void,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', () => {
      // EPIPE, ECONNRESET: the client went away. 'close' follows.
    });
  }

  destroy(): void {
    this.mode = 'done';
    this.jobs.length = 0;
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.mode === 'done') return;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    this.scan();
    this.pump();
  }

  private onEnd(): void {
    if (this.mode === 'set') {
      // wireguard-go's scanner takes what is left as the last line and applies the request.
      const rest = this.pending.toString('utf8').replace(/\r$/, '');
      if (rest !== '') this.lines.push(rest);
      this.jobs.push({ kind: 'set', lines: this.lines });
    }
    this.finish();
    this.pump();
  }

  /** Stop reading requests; close once the queued ones are answered. */
  private finish(): void {
    this.mode = 'done';
    this.pending = EMPTY;
    this.lines = [];
    this.closeWhenIdle = true;
  }

  private scan(): void {
    const data = this.pending;
    let pos = 0;
    while (this.mode !== 'done') {
      if (this.mode === 'get') {
        if (pos >= data.length) break;
        const next = data[pos++]!;
        if (next === NEWLINE) {
          this.jobs.push({ kind: 'get' });
          this.mode = 'operation';
        } else {
          this.jobs.push({ kind: 'error', errno: Errno.EINVAL, message: `trailing character in UAPI get: ${JSON.stringify(String.fromCharCode(next))}` });
          this.finish();
        }
        continue;
      }
      const newline = data.indexOf(NEWLINE, pos);
      const lineEnd = newline < 0 ? data.length : newline;
      if (this.mode === 'operation') {
        if (lineEnd - pos > MAX_OPERATION_BYTES || (newline >= 0 && !this.startOperation(data.toString('latin1', pos, newline)))) {
          this.log(`UAPI: invalid UAPI operation: ${printable(data.subarray(pos, lineEnd))}`);
          this.finish();
          break;
        }
        if (newline < 0) break;
        pos = newline + 1;
        continue;
      }
      // mode === 'set'
      if (lineEnd - pos > this.limits.maxLineBytes) {
        this.jobs.push({ kind: 'error', errno: Errno.EIO, message: `set line longer than ${this.limits.maxLineBytes} bytes` });
        this.finish();
        break;
      }
      if (newline < 0) break;
      let line = data.toString('utf8', pos, newline);
      this.requestBytes += newline - pos + 1;
      pos = newline + 1;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        this.jobs.push({ kind: 'set', lines: this.lines });
        this.lines = [];
        this.mode = 'operation';
        continue;
      }
      if (this.requestBytes > this.limits.maxRequestBytes) {
        this.jobs.push({ kind: 'error', errno: Errno.EMSGSIZE, message: `set request larger than ${this.limits.maxRequestBytes} bytes` });
        this.finish();
        break;
      }
      this.lines.push(line);
    }
    if (this.mode === 'done') return;
    // Keep only the unfinished line; copy it so that a large chunk is not kept alive by a small tail.
    this.pending = pos >= data.length ? EMPTY : pos === 0 ? data : Buffer.from(data.subarray(pos));
  }

  private startOperation(operation: string): boolean {
    if (operation === 'get=1') {
      this.mode = 'get';
      return true;
    }
    if (operation === 'set=1') {
      this.mode = 'set';
      this.lines = [];
      this.requestBytes = 0;
      return true;
    }
    return false;
  }

  /**
   * Half-close after the last answer. Whatever the client still sends is read
   * and dropped (so that it does not get EPIPE before reading the answer); a
   * client that has not closed its side within CLOSE_GRACE_MS is cut off.
   */
  private close(): void {
    if (this.closing) return;
    this.closing = true;
    this.socket.resume();
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    timer.unref();
    this.socket.once('close', () => clearTimeout(timer));
  }

  private pump(): void {
    if (this.jobs.length >= MAX_QUEUED_JOBS) this.socket.pause();
    if (this.running) return;
    this.running = true;
    void this.run();
  }

  private async run(): Promise<void> {
    try {
      for (let job = this.jobs.shift(); job !== undefined; job = this.jobs.shift()) {
        const response = await this.server.execute(job);
        if (this.socket.destroyed) return;
        const flushed = this.socket.write(response);
        if (this.jobs.length < MAX_QUEUED_JOBS && this.mode !== 'done') this.socket.resume();
        if (!flushed) await waitForDrain(this.socket);
      }
      if (this.closeWhenIdle && !this.socket.destroyed) {
        this.close();
      } else if (this.mode !== 'done') {
        this.socket.resume();
      }
    } catch (error) {
      this.log(`UAPI: connection failed: ${describe(error)}`);
      this.socket.destroy();
    } finally {
      this.running = false;
    }
  }
}

function waitForDrain(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/** Bind with umask 077 so the socket is never reachable by others, not even for a moment. */
function listenPrivately(server: net.Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    let oldUmask: number | undefined;
    try {
      oldUmask = process.umask(0o077);
    } catch {
      // Worker threads cannot change the umask; the chmod after listen() still applies.
    }
    try {
      server.listen(path);
    } finally {
      if (oldUmask !== undefined) process.umask(oldUmask);
    }
  });
}

/** Remove `path` if it is a socket nobody accepts connections on; throw if it is live or not a socket. */
async function removeStaleSocket(path: string): Promise<void> {
  const interfaceName = basename(path).replace(/\.sock$/, '');
  let stats;
  try {
    stats = await lstat(path);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return;
    throw error;
  }
  if (!stats.isSocket()) {
    throw new Error(`interface ${interfaceName}: ${path} exists and is not a socket; refusing to replace it`);
  }
  const probe = await probeSocket(path);
  if (probe.live) throw new Error(`interface ${interfaceName} is in use: ${path} ${probe.detail}`);
  try {
    await unlink(path);
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
  }
}

/** Whether a process accepts connections on the socket at `path`. */
function probeSocket(path: string): Promise<{ live: boolean; detail: string }> {
  return new Promise((resolve) => {
    const socket = net.createConnection(path);
    const settle = (live: boolean, detail: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ live, detail });
    };
    const timer = setTimeout(() => settle(true, `does not refuse connections (no answer in ${PROBE_TIMEOUT_MS} ms)`), PROBE_TIMEOUT_MS);
    socket.once('connect', () => settle(true, 'accepts connections (another wireguard process is running?)'));
    socket.once('error', (error) => {
      const code = errnoCode(error);
      if (code === 'ECONNREFUSED' || code === 'ENOENT') settle(false, 'is stale');
      else settle(true, `cannot be probed: ${describe(error)}`);
    });
  });
}
