/**
 * The control socket of `tswg node`: a Unix stream socket (default
 * /run/tswg/node.sock, mode 0600 — it drives the network and hands out keys'
 * effects, so owner only), one JSON object per line each way.
 *
 * - A malformed line (not JSON, unknown type, a bad field, too long) gets
 *   Err{message} naming the field and the connection stays usable.
 * - Requests are answered one at a time, in arrival order, across all
 *   connections: the engine is not re-entrant and order is the contract.
 *   Two exceptions keep the node responsive: NatTick (STUN round trips,
 *   seconds) starts in its turn but does not hold the queue (the engine runs
 *   one at a time), and Shutdown waits at most SHUTDOWN_QUEUE_WAIT_MS for the
 *   request in flight.
 * - Start-up refuses a path where another node answers, and a path that is
 *   not a socket; a stale socket (nobody answers) is replaced.
 * - A connection that queues many requests without reading the answers is
 *   paused until they are answered, so a fast client cannot grow the queue
 *   without bound.
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { dirname } from 'node:path';
import { makeDirectory } from './directories.js';
import { CONTROL_SOCKET_MODE, MAX_CONTROL_LINE_BYTES, SHUTDOWN_QUEUE_WAIT_MS } from './constants.js';
import { encodeResponse, errorResponse, parseRequest, type Request, type Response } from './protocol.js';

export type RequestHandler = (request: Request) => Promise<Response>;

/** Pause reading a connection while this many of its requests wait for an answer. */
const MAX_PENDING_PER_CONNECTION = 256;
/** How long an existing socket gets to answer the liveness probe. */
const PROBE_TIMEOUT_MS = 1000;
/** How long a closing server waits for answers still being computed (a NatTick's), then for the client to take them. */
const ANSWER_GRACE_MS = 300;
const CLOSE_GRACE_MS = 300;
const SOCKET_DIRECTORY_MODE = 0o755;
const NEWLINE = 0x0a;

/** Resolves after `ms`; the timer never keeps the process alive. */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined;
}

/** Whether some process accepts connections on the socket at `path`. */
export function socketAnswers(path: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.createConnection(path);
    const done = (live: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(live);
    };
    const timer = setTimeout(() => done(true), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Remove a stale socket at `path`; refuse a live one or a non-socket. */
async function claimPath(path: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(path);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return;
    throw error;
  }
  if (!stats.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  if (await socketAnswers(path)) throw new Error(`another tswg node is already listening on ${path}`);
  await unlink(path).catch((error: unknown) => {
    if (errnoCode(error) !== 'ENOENT') throw error;
  });
}

/** Bind with a umask that leaves the socket owner-only from its first moment. */
function listenPrivately(server: net.Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const previous = process.umask(0o177);
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    try {
      server.listen(path, () => {
        server.off('error', onError);
        resolve();
      });
    } finally {
      process.umask(previous);
    }
  });
}

export class ControlServer {
  private readonly connections = new Set<ControlConnection>();
  /** The one queue every request of every connection goes through. */
  private chain: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | null = null;

  private constructor(
    readonly path: string,
    private readonly server: net.Server,
    private readonly handler: RequestHandler,
    private readonly log: (message: string) => void,
  ) {
    server.on('connection', (socket) => {
      if (this.closing !== null) {
        socket.destroy();
        return;
      }
      const connection = new ControlConnection(socket, this, log);
      this.connections.add(connection);
      socket.once('close', () => this.connections.delete(connection));
    });
    server.on('error', (error) => log(`control socket ${path}: ${error.message}`));
  }

  /** Listen on `path` (see the file comment for what is refused). */
  static async listen(path: string, handler: RequestHandler, log: (message: string) => void = () => undefined): Promise<ControlServer> {
    const created = makeDirectory(dirname(path), SOCKET_DIRECTORY_MODE);
    if (created.length > 0) await chmod(dirname(path), SOCKET_DIRECTORY_MODE);
    await claimPath(path);
    const server = net.createServer();
    await listenPrivately(server, path);
    try {
      await chmod(path, CONTROL_SOCKET_MODE);
    } catch (error) {
      server.close();
      throw error;
    }
    return new ControlServer(path, server, handler, log);
  }

  /** Run `work` behind everything queued before it; what is queued later waits for it. */
  enqueue<T>(work: () => Promise<T>): Promise<T> {
    const result = this.chain.then(work);
    this.chain = result.catch(() => undefined);
    return result;
  }

  /** Queue a request behind every earlier one (see the file comment for the two exceptions); resolves with its answer (never rejects). */
  submit(request: Request): Promise<Response> {
    if (request.type === 'NatTick') {
      const started = this.chain.then(() => ({ answer: this.handler(request) }));
      this.chain = started.catch(() => undefined);
      return started.then(({ answer }) => answer).catch((error: unknown) => errorResponse(error));
    }
    if (request.type === 'Shutdown') {
      const turn = Promise.race([this.chain, delay(SHUTDOWN_QUEUE_WAIT_MS)]);
      const answer = turn.then(() => this.handler(request)).catch((error: unknown) => errorResponse(error));
      this.chain = answer;
      return answer;
    }
    return this.enqueue(() => this.handler(request)).catch((error: unknown) => errorResponse(error));
  }

  /** Stop listening, let connections take the answers already computed, remove the socket file. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      await Promise.all([...this.connections].map((connection) => connection.finish()));
      await closed;
      await unlink(this.path).catch((error: unknown) => {
        if (errnoCode(error) !== 'ENOENT') this.log(`removing ${this.path}: ${(error as Error).message}`);
      });
    })();
    return this.closing;
  }
}

/** One client: splits lines, answers each in order, pauses when too far behind. */
class ControlConnection {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  /** Inside a line that is already too long: drop bytes until its newline. */
  private discarding = false;
  private pending = 0;
  private paused = false;
  private last: Promise<void> = Promise.resolve();

  constructor(
    private readonly socket: net.Socket,
    private readonly server: ControlServer,
    private readonly log: (message: string) => void,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error) => log(`control connection: ${error.message}`));
  }

  private receive(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(NEWLINE, start);
      if (newline < 0) break;
      this.take(chunk.subarray(start, newline), true);
      start = newline + 1;
    }
    if (start < chunk.length) this.take(chunk.subarray(start), false);
  }

  /** A piece of a line; `complete` when the newline followed it. */
  private take(piece: Buffer, complete: boolean): void {
    if (!this.discarding) {
      this.buffered.push(piece);
      this.bufferedBytes += piece.length;
      if (this.bufferedBytes > MAX_CONTROL_LINE_BYTES) {
        this.buffered = [];
        this.bufferedBytes = 0;
        this.discarding = true;
        this.answer(Promise.resolve({ type: 'Err', message: `request line is longer than ${MAX_CONTROL_LINE_BYTES} bytes` }));
      }
    }
    if (!complete) return;
    if (this.discarding) {
      this.discarding = false;
      return;
    }
    const line = Buffer.concat(this.buffered).toString('utf8').replace(/\r$/, '');
    this.buffered = [];
    this.bufferedBytes = 0;
    if (line.trim() === '') return;
    let request: Request;
    try {
      request = parseRequest(line);
    } catch (error) {
      this.answer(Promise.resolve(errorResponse(error)));
      return;
    }
    this.answer(this.server.submit(request));
  }

  /** Write answers in the order their requests arrived. */
  private answer(response: Promise<Response>): void {
    this.pending++;
    if (this.pending >= MAX_PENDING_PER_CONNECTION && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    const previous = this.last;
    this.last = (async () => {
      const [, value] = await Promise.all([previous, response]);
      if (!this.socket.destroyed && this.socket.writable) this.socket.write(`${encodeResponse(value)}\n`);
      this.pending--;
      if (this.paused && this.pending < MAX_PENDING_PER_CONNECTION / 2) {
        this.paused = false;
        this.socket.resume();
      }
    })().catch((error: unknown) => this.log(`control connection: ${(error as Error).message}`));
  }

  /** Send the answers still due (waiting briefly for those not computed yet), then end the connection (destroy it after a grace period). */
  async finish(): Promise<void> {
    this.socket.pause();
    await Promise.race([this.last, delay(ANSWER_GRACE_MS)]);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, CLOSE_GRACE_MS);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.end();
      if (this.socket.destroyed) {
        clearTimeout(timer);
        resolve();
      }
    });
  }
}
