/**
 * A unix-socket server for newline-framed requests: the part every local
 * control socket shares, whatever it speaks.
 *
 * - Binding: missing directories are created with `directoryMode`; a stale
 *   socket file (nobody accepts connections on it) is replaced, a live one
 *   or a path that is not a socket is refused (SocketInUseError,
 *   NotASocketError). The bind runs under the umask that matches
 *   `socketMode`, so the socket is never wider than that, not even for a
 *   moment, and is chmod-ed to `socketMode` after.
 * - Framing: each connection splits its bytes into lines at '\n' and hands
 *   them, without the '\n', to its session. A line longer than the
 *   connection's current limit (which the session may change between lines)
 *   is reported once, as soon as it is known, and its bytes are dropped up to
 *   its newline: nothing a client sends makes the server hold more than one
 *   line's worth of bytes.
 * - Answers: a session queues answers with reply(); they are written in the
 *   order queued, each once the previous one is flushed. While `pauseAt`
 *   answers are outstanding the connection is not read, so a client that
 *   sends without reading cannot grow the queue without bound.
 * - Ending: finish() stops reading and closes the connection once its
 *   answers are out; a client that keeps its side open longer than
 *   `closeGraceMs` after that is cut off.
 * - close(): stops listening, drops the connections (or, with
 *   `answerGraceMs`, lets them take the answers under way first) and removes
 *   the socket file.
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { dirname } from 'node:path';
import { makeDirectory } from './directories.js';
import { PlatformError } from './errors.js';
import { errorMessage } from './error-message.js';

/** What a session does with its connection's input. */
export interface LineSession {
  /** One complete line, without its '\n' (a '\r' before it is kept). */
  line(bytes: Buffer): void;
  /** The line under way is longer than the limit; `head` is what arrived of it so far. */
  overlong(head: Buffer): void;
  /** The client ended its side; `rest` is the unterminated last line (empty when none). Only with allowHalfOpen. */
  end?(rest: Buffer): void;
}

export interface LineServerOptions {
  /** Mode of the socket file. */
  socketMode: number;
  /** Mode of the directories created on the way to it. */
  directoryMode: number;
  /** How long an existing socket gets to accept a connection before it counts as live. */
  probeTimeoutMs: number;
  /** The longest line, in bytes without the '\n', a new connection accepts. */
  maxLineBytes: number;
  /** Stop reading a connection while this many of its answers are outstanding. */
  pauseAt: number;
  /** Read it again once fewer than this many are. */
  resumeBelow: number;
  /** How long a client may keep its side open after the server's last word. */
  closeGraceMs: number;
  /** On close(), how long connections get for answers under way before they are ended; absent: they are dropped at once. */
  answerGraceMs?: number;
  /** Keep a connection writable after the client ends its side (sessions see end()); otherwise Node ends it too. */
  allowHalfOpen?: boolean;
  /** Errors of the listening socket and failed connections. */
  log?: (message: string) => void;
  /** Errors of single connections (EPIPE, ECONNRESET); ignored when absent. */
  onConnectionError?: (error: Error) => void;
}

/** Another process accepts connections on the socket path (or it cannot be told that none does). */
export class SocketInUseError extends PlatformError {
  override name = 'SocketInUseError';
  constructor(
    readonly path: string,
    /** Why it counts as live, e.g. "accepts connections". */
    readonly detail: string,
    /** Whether a connection was accepted (not merely left unanswered or unprobeable). */
    readonly accepted: boolean,
  ) {
    super(`${path} ${detail}`);
  }
}

/** Something other than a socket is at the socket path; it is left alone. */
export class NotASocketError extends PlatformError {
  override name = 'NotASocketError';
  constructor(readonly path: string) {
    super(`${path} exists and is not a socket; refusing to replace it`);
  }
}

const NEWLINE = 0x0a;

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined;
}

/** Resolves after `ms`; the timer never keeps the process alive. */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export class LineServer {
  private readonly connections = new Set<LineConnection>();
  private closing: Promise<void> | null = null;

  private constructor(
    readonly path: string,
    private readonly server: net.Server,
    openSession: (connection: LineConnection) => LineSession,
    private readonly options: LineServerOptions,
  ) {
    const log = options.log ?? (() => undefined);
    server.on('connection', (socket) => {
      if (this.closing !== null) {
        socket.destroy();
        return;
      }
      const connection = new LineConnection(socket, options, log);
      connection.attach(openSession(connection));
      this.connections.add(connection);
      socket.once('close', () => this.connections.delete(connection));
    });
    server.on('error', (error) => log(`socket ${path}: ${errorMessage(error)}`));
  }

  /** Listen on `path`; `openSession` is called for every connection accepted. */
  static async listen(path: string, openSession: (connection: LineConnection) => LineSession, options: LineServerOptions): Promise<LineServer> {
    const directory = dirname(path);
    const created = makeDirectory(directory, options.directoryMode);
    // mkdir's mode went through the umask; the directories must have theirs exactly.
    for (const made of created) await chmod(made, options.directoryMode);
    await claimSocketPath(path, options.probeTimeoutMs);
    const server = net.createServer({ allowHalfOpen: options.allowHalfOpen ?? false });
    await listenPrivately(server, path, options.socketMode);
    try {
      await chmod(path, options.socketMode);
    } catch (error) {
      server.close();
      throw error;
    }
    return new LineServer(path, server, openSession, options);
  }

  /** How many connections are open. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Stop listening, end the connections (see answerGraceMs) and remove the socket file. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      const { answerGraceMs } = this.options;
      if (answerGraceMs === undefined) {
        for (const connection of this.connections) connection.destroy();
      } else {
        await Promise.all([...this.connections].map((connection) => connection.finishWithin(answerGraceMs)));
      }
      await closed;
      // libuv unlinks the socket file when a listening pipe closes; make sure, but never remove anything else.
      try {
        const stats = await lstat(this.path);
        if (stats.isSocket()) await unlink(this.path);
      } catch (error) {
        if (errnoCode(error) !== 'ENOENT') throw error;
      }
    })();
    return this.closing;
  }
}

/** One client: splits its bytes into lines for its session and writes the session's answers in order. */
export class LineConnection {
  /** The longest line, without '\n', accepted from here on. */
  maxLineBytes: number;
  private session: LineSession | null = null;
  private pieces: Buffer[] = [];
  private pieceBytes = 0;
  /** Inside a line already reported as too long: drop bytes up to its newline. */
  private discarding = false;
  /** No more input is taken: finish() or destroy() was called. */
  private stopped = false;
  private readonly answers: (() => Promise<string> | string)[] = [];
  /** Answers queued and not yet written, the one being produced included. */
  private outstanding = 0;
  private writing = false;
  private paused = false;
  private closeWhenIdle = false;
  private ending = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly socket: net.Socket,
    private readonly options: LineServerOptions,
    private readonly log: (message: string) => void,
  ) {
    this.maxLineBytes = options.maxLineBytes;
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (error) => options.onConnectionError?.(error));
    socket.once('close', () => this.wakeIdle());
  }

  /** Give the connection its session; before it, input is not read. */
  attach(session: LineSession): void {
    this.session = session;
  }

  /**
   * Queue an answer: `produce` is called once every earlier answer is
   * written, and what it returns is written as is. An exception ends the
   * connection.
   */
  reply(produce: () => Promise<string> | string): void {
    this.answers.push(produce);
    this.outstanding++;
    if (this.outstanding >= this.options.pauseAt && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    if (!this.writing) void this.writeAnswers();
  }

  /** Take no more input; close the connection once the answers queued are written. */
  finish(): void {
    this.stop();
    this.closeWhenIdle = true;
    if (!this.writing) this.endGracefully();
  }

  /** Drop the connection now, answers and all. */
  destroy(): void {
    this.stop();
    this.answers.length = 0;
    this.socket.destroy();
  }

  /** Take no more input, give the answers under way up to `graceMs`, then end; resolves once the connection is closed. */
  async finishWithin(graceMs: number): Promise<void> {
    this.stop();
    if (this.outstanding > 0) await Promise.race([new Promise<void>((resolve) => this.idleWaiters.push(resolve)), delay(graceMs)]);
    if (this.socket.destroyed) return;
    const closed = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    this.endGracefully();
    await closed;
  }

  private stop(): void {
    this.stopped = true;
    this.pieces = [];
    this.pieceBytes = 0;
  }

  private receive(chunk: Buffer): void {
    let start = 0;
    while (!this.stopped && this.session !== null) {
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline < 0 ? chunk.length : newline;
      this.take(chunk.subarray(start, end), newline >= 0);
      if (newline < 0) break;
      start = newline + 1;
    }
  }

  /** A piece of a line; `complete` when its newline followed. */
  private take(piece: Buffer, complete: boolean): void {
    const session = this.session!;
    if (!this.discarding && piece.length > 0) {
      this.pieces.push(piece);
      this.pieceBytes += piece.length;
      if (this.pieceBytes > this.maxLineBytes) {
        const head = Buffer.concat(this.pieces);
        this.pieces = [];
        this.pieceBytes = 0;
        this.discarding = true;
        session.overlong(head);
      }
    }
    if (!complete) {
      // Copy what is kept, so that a large chunk is not held alive by a small tail.
      const last = this.pieces.length - 1;
      if (last >= 0 && this.pieces[last] === piece) this.pieces[last] = Buffer.from(piece);
      return;
    }
    if (this.discarding) {
      this.discarding = false;
      return;
    }
    const line = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces);
    this.pieces = [];
    this.pieceBytes = 0;
    if (!this.stopped) session.line(line);
  }

  private onEnd(): void {
    if (this.stopped || this.session === null) return;
    const rest = this.discarding ? Buffer.alloc(0) : Buffer.concat(this.pieces);
    this.stop();
    this.session.end?.(rest);
  }

  private async writeAnswers(): Promise<void> {
    this.writing = true;
    try {
      for (let produce = this.answers.shift(); produce !== undefined; produce = this.answers.shift()) {
        const answer = await produce();
        if (this.socket.destroyed) return;
        const flushed = this.socket.writable ? this.socket.write(answer) : true;
        this.outstanding--;
        if (this.paused && !this.stopped && this.outstanding < this.options.resumeBelow) {
          this.paused = false;
          this.socket.resume();
        }
        if (!flushed) await waitForDrain(this.socket);
      }
    } catch (error) {
      this.log(`connection failed: ${errorMessage(error)}`);
      this.socket.destroy();
    } finally {
      this.writing = false;
      this.outstanding = this.answers.length;
      if (this.outstanding === 0) this.wakeIdle();
    }
    if (this.answers.length > 0 && !this.socket.destroyed) {
      void this.writeAnswers();
    } else if (this.closeWhenIdle) {
      this.endGracefully();
    }
  }

  private wakeIdle(): void {
    for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /**
   * Half-close after the last answer. Whatever the client still sends is read
   * and dropped (so that it does not get EPIPE before reading the answer); a
   * client that has not closed its side within closeGraceMs is cut off.
   */
  private endGracefully(): void {
    if (this.ending || this.socket.destroyed) return;
    this.ending = true;
    this.socket.resume();
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), this.options.closeGraceMs);
    timer.unref();
    this.socket.once('close', () => clearTimeout(timer));
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

/** Bind under the umask matching `mode`, so the socket is never reachable by more than `mode` allows. */
function listenPrivately(server: net.Server, path: string, mode: number): Promise<void> {
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
      oldUmask = process.umask(~mode & 0o777);
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
async function claimSocketPath(path: string, probeTimeoutMs: number): Promise<void> {
  let stats;
  try {
    stats = await lstat(path);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return;
    throw error;
  }
  if (!stats.isSocket()) throw new NotASocketError(path);
  const probe = await probeSocket(path, probeTimeoutMs);
  if (probe.live) throw new SocketInUseError(path, probe.detail, probe.accepted);
  try {
    await unlink(path);
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
  }
}

/** Whether a process accepts connections on the socket at `path`; only a refusal (or the file gone) counts as stale. */
function probeSocket(path: string, timeoutMs: number): Promise<{ live: boolean; accepted: boolean; detail: string }> {
  return new Promise((resolve) => {
    const socket = net.createConnection(path);
    const settle = (live: boolean, detail: string, accepted = false): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ live, accepted, detail });
    };
    const timer = setTimeout(() => settle(true, `does not refuse connections (no answer in ${timeoutMs} ms)`), timeoutMs);
    socket.once('connect', () => settle(true, 'accepts connections', true));
    socket.once('error', (error) => {
      const code = errnoCode(error);
      if (code === 'ECONNREFUSED' || code === 'ENOENT') settle(false, 'is stale');
      else settle(true, `cannot be probed: ${errorMessage(error)}`);
    });
  });
}
