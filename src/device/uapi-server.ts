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
import { basename, join } from 'node:path';
import { LineServer, NotASocketError, SocketInUseError, type LineConnection, type LineSession } from '../platform/index.js';
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

const DEFAULT_MAX_LINE_BYTES = 64 * 1024;
const DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024;
const DEFAULT_SOCKET_MODE = 0o700;

/** "/var/run/wireguard/IFNAME.sock", where wg(8) looks for a userspace interface. */
export function uapiSocketPath(interfaceName: string): string {
  return join(UAPI_SOCKET_DIRECTORY, `${interfaceName}.sock`);
}

/** Operation lines are "get=1" and "set=1"; a longer line is not one. */
const MAX_OPERATION_BYTES = 64;
/** After "get=1" only an empty line may follow: any other byte is refused at once. */
const GET_TERMINATOR_BYTES = 0;
/** Stop reading a connection while this many requests wait for an answer. */
const MAX_QUEUED_JOBS = 4;
const PROBE_TIMEOUT_MS = 2000;
/** How long a client may keep its side open after the server said its last word. */
const CLOSE_GRACE_MS = 1000;
const SOCKET_DIRECTORY_MODE = 0o755;

type Job =
  | { kind: 'get' }
  | { kind: 'set'; lines: string[] }
  | { kind: 'error'; errno: number; message: string };

interface Limits {
  maxLineBytes: number;
  maxRequestBytes: number;
}

function printable(bytes: Buffer): string {
  return JSON.stringify(bytes.subarray(0, MAX_OPERATION_BYTES).toString('latin1'));
}

export class UapiServer {
  /** Serialises handler calls across connections. */
  private lock: Promise<unknown> = Promise.resolve();
  /** The socket, set by listen() before any connection can arrive. */
  private lines!: LineServer;

  private constructor(
    readonly path: string,
    private readonly handler: UapiHandler,
    private readonly log: (msg: string) => void,
  ) {}

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
    const server = new UapiServer(path, handler, log);
    try {
      server.lines = await LineServer.listen(path, (connection) => new UapiSession(connection, server, limits, log), {
        socketMode: options.socketMode ?? DEFAULT_SOCKET_MODE,
        directoryMode: SOCKET_DIRECTORY_MODE,
        probeTimeoutMs: PROBE_TIMEOUT_MS,
        maxLineBytes: MAX_OPERATION_BYTES,
        pauseAt: MAX_QUEUED_JOBS,
        resumeBelow: MAX_QUEUED_JOBS,
        closeGraceMs: CLOSE_GRACE_MS,
        // A set cut short by the client's shutdown is still applied and answered, as wireguard-go does.
        allowHalfOpen: true,
        log: (message) => log(`UAPI: ${message}`),
      });
    } catch (error) {
      throw socketPathError(path, error);
    }
    return server;
  }

  /** Stop listening, drop the open connections and remove the socket file. */
  close(): Promise<void> {
    return this.lines.close();
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

/** The socket path's refusals in wg(8)'s terms: the interface is in use, or its path is taken. */
function socketPathError(path: string, error: unknown): unknown {
  const interfaceName = basename(path).replace(/\.sock$/, '');
  if (error instanceof NotASocketError) return new Error(`interface ${interfaceName}: ${error.message}`);
  if (error instanceof SocketInUseError) {
    const hint = error.accepted ? ' (another wireguard process is running?)' : '';
    return new Error(`interface ${interfaceName} is in use: ${error.message}${hint}`);
  }
  return error;
}

/** One client connection: turns its lines into requests and queues their answers in order. */
class UapiSession implements LineSession {
  private mode: 'operation' | 'get' | 'set' = 'operation';
  private lines: string[] = [];
  private requestBytes = 0;

  constructor(
    private readonly connection: LineConnection,
    private readonly server: UapiServer,
    private readonly limits: Limits,
    private readonly log: (msg: string) => void,
  ) {}

  line(bytes: Buffer): void {
    if (this.mode === 'operation') {
      this.startOperation(bytes);
      return;
    }
    if (this.mode === 'get') {
      // The limit of 0 lets only the empty line through.
      this.submit({ kind: 'get' });
      this.expectOperation();
      return;
    }
    this.requestBytes += bytes.length + 1;
    let line = bytes.toString('utf8');
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line === '') {
      this.submit({ kind: 'set', lines: this.lines });
      this.lines = [];
      this.expectOperation();
      return;
    }
    if (this.requestBytes > this.limits.maxRequestBytes) {
      this.fail(Errno.EMSGSIZE, `set request larger than ${this.limits.maxRequestBytes} bytes`);
      return;
    }
    this.lines.push(line);
  }

  overlong(head: Buffer): void {
    if (this.mode === 'operation') {
      this.log(`UAPI: invalid UAPI operation: ${printable(head)}`);
      this.connection.finish();
    } else if (this.mode === 'get') {
      this.fail(Errno.EINVAL, `trailing character in UAPI get: ${JSON.stringify(String.fromCharCode(head[0]!))}`);
    } else {
      this.fail(Errno.EIO, `set line longer than ${this.limits.maxLineBytes} bytes`);
    }
  }

  end(rest: Buffer): void {
    if (this.mode === 'set') {
      // wireguard-go's scanner takes what is left as the last line and applies the request.
      const last = rest.toString('utf8').replace(/\r$/, '');
      if (last !== '') this.lines.push(last);
      this.submit({ kind: 'set', lines: this.lines });
    }
    this.connection.finish();
  }

  private startOperation(bytes: Buffer): void {
    const operation = bytes.toString('latin1');
    if (operation === 'get=1') {
      this.mode = 'get';
      this.connection.maxLineBytes = GET_TERMINATOR_BYTES;
    } else if (operation === 'set=1') {
      this.mode = 'set';
      this.lines = [];
      this.requestBytes = 0;
      this.connection.maxLineBytes = this.limits.maxLineBytes;
    } else {
      this.log(`UAPI: invalid UAPI operation: ${printable(bytes)}`);
      this.connection.finish();
    }
  }

  private expectOperation(): void {
    this.mode = 'operation';
    this.connection.maxLineBytes = MAX_OPERATION_BYTES;
  }

  /** Answer with `errno` and close: the stream can no longer be trusted to be in step. */
  private fail(errno: number, message: string): void {
    this.submit({ kind: 'error', errno, message });
    this.connection.finish();
  }

  private submit(job: Job): void {
    this.connection.reply(() => this.server.execute(job));
  }
}
