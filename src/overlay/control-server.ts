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
 * - A client may half-close its side after its requests (`nc -N`, a
 *   shutdown(SHUT_WR)): every request it sent is answered, then the server
 *   ends its side too. An unterminated last line counts as a request, as
 *   Go's line scanner (and so wireguard-go's UAPI) and JSON Lines readers
 *   take it; cut short, it is malformed JSON and gets an Err like any other.
 * - A connection that queues many requests without reading the answers is
 *   paused until they are answered, so a fast client cannot grow the queue
 *   without bound.
 */
import { LineServer, NotASocketError, SocketInUseError, type LineConnection, type LineSession } from '../platform/index.js';
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

/** Resolves after `ms`; the timer never keeps the process alive. */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export class ControlServer {
  /** The one queue every request of every connection goes through. */
  private chain: Promise<unknown> = Promise.resolve();
  /** The socket, set by listen() before any connection can arrive. */
  private lines!: LineServer;

  private constructor(
    readonly path: string,
    private readonly handler: RequestHandler,
    private readonly log: (message: string) => void,
  ) {}

  /** Listen on `path` (see the file comment for what is refused). */
  static async listen(path: string, handler: RequestHandler, log: (message: string) => void = () => undefined): Promise<ControlServer> {
    const server = new ControlServer(path, handler, log);
    try {
      server.lines = await LineServer.listen(path, (connection) => new ControlSession(connection, server), {
        socketMode: CONTROL_SOCKET_MODE,
        directoryMode: SOCKET_DIRECTORY_MODE,
        probeTimeoutMs: PROBE_TIMEOUT_MS,
        maxLineBytes: MAX_CONTROL_LINE_BYTES,
        pauseAt: MAX_PENDING_PER_CONNECTION,
        resumeBelow: MAX_PENDING_PER_CONNECTION / 2,
        closeGraceMs: CLOSE_GRACE_MS,
        answerGraceMs: ANSWER_GRACE_MS,
        // A client's end is the end of its requests, not of the conversation: the answers still go out.
        allowHalfOpen: true,
        log: (message) => log(`control ${message}`),
        // A client that left before its answers (EPIPE, ECONNRESET) is no fault of the node's: nothing to report.
        onConnectionError: (error: NodeJS.ErrnoException) => {
          if (error.code !== 'EPIPE' && error.code !== 'ECONNRESET') log(`control connection: ${error.message}`);
        },
      });
    } catch (error) {
      if (error instanceof SocketInUseError) throw new Error(`another tswg node is already listening on ${path}`);
      if (error instanceof NotASocketError) throw new Error(error.message);
      throw error;
    }
    return server;
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
  async close(): Promise<void> {
    await this.lines.close().catch((error: unknown) => this.log(`removing ${this.path}: ${(error as Error).message}`));
  }
}

/**
 * One client: each line is a request, answered in order; a malformed or
 * over-long one gets an Err and the connection stays usable. The client's end
 * closes the connection once the answers are out.
 */
class ControlSession implements LineSession {
  constructor(
    private readonly connection: LineConnection,
    private readonly server: ControlServer,
  ) {}

  line(bytes: Buffer): void {
    const line = bytes.toString('utf8').replace(/\r$/, '');
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

  end(rest: Buffer): void {
    this.line(rest);
    this.connection.finish();
  }

  overlong(): void {
    this.answer(Promise.resolve({ type: 'Err', message: `request line is longer than ${MAX_CONTROL_LINE_BYTES} bytes` }));
  }

  private answer(response: Promise<Response>): void {
    this.connection.reply(async () => `${encodeResponse(await response)}\n`);
  }
}
