/**
 * A client of the `tswg node` control socket: one connection, requests sent
 * as JSON lines, answers matched to requests by order (the server answers in
 * order). Used by the `tswg node status|peers|…` commands, the tests and the
 * benchmark. Connection failures are phrased for a person:
 * "no tswg node is listening on SOCKET".
 */
import net from 'node:net';
import { MAX_CONTROL_RESPONSE_BYTES } from './constants.js';
import { encodeRequest, parseResponse, type Request, type Response } from './protocol.js';

class ControlClientError extends Error {
  override readonly name = 'ControlClientError';
}

const NEWLINE = 0x0a;

function connectError(path: string, error: NodeJS.ErrnoException): ControlClientError {
  switch (error.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      return new ControlClientError(`no tswg node is listening on ${path}`);
    case 'EACCES':
    case 'EPERM':
      return new ControlClientError(`no permission to use ${path} (the control socket is owner-only: run as root)`);
    default:
      return new ControlClientError(`cannot connect to ${path}: ${error.message}`);
  }
}

export class ControlClient {
  private readonly waiting: Array<{ resolve: (response: Response) => void; reject: (error: Error) => void }> = [];
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private failure: Error | null = null;

  private constructor(
    readonly path: string,
    private readonly socket: net.Socket,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error) => this.fail(new ControlClientError(`control socket ${path}: ${error.message}`)));
    socket.on('close', () => this.fail(new ControlClientError(`the tswg node on ${path} closed the connection`)));
  }

  static connect(path: string): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(path);
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(new ControlClient(path, socket));
      });
      socket.once('error', (error: NodeJS.ErrnoException) => reject(connectError(path, error)));
    });
  }

  /** Send one request and wait for its answer. */
  request(request: Request): Promise<Response> {
    return this.requestLine(encodeRequest(request));
  }

  /** Send a raw line (tests send malformed ones) and wait for the answer it gets. */
  requestLine(line: string): Promise<Response> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(`${line}\n`);
    });
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(NEWLINE, start);
      if (newline < 0) break;
      this.buffered.push(chunk.subarray(start, newline));
      const line = Buffer.concat(this.buffered).toString('utf8');
      this.buffered = [];
      this.bufferedBytes = 0;
      start = newline + 1;
      const waiter = this.waiting.shift();
      if (waiter === undefined) continue;
      try {
        waiter.resolve(parseResponse(line));
      } catch (error) {
        waiter.reject(new ControlClientError(`malformed answer from ${this.path}: ${(error as Error).message}`));
      }
    }
    if (start < chunk.length) {
      this.buffered.push(chunk.subarray(start));
      this.bufferedBytes += chunk.length - start;
      if (this.bufferedBytes > MAX_CONTROL_RESPONSE_BYTES) {
        this.fail(new ControlClientError(`an answer from ${this.path} is longer than ${MAX_CONTROL_RESPONSE_BYTES} bytes`));
        this.socket.destroy();
      }
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiter of this.waiting.splice(0)) waiter.reject(this.failure);
  }
}

/** Connect, send one request, close: what a CLI command does. */
export async function requestOnce(path: string, request: Request): Promise<Response> {
  const client = await ControlClient.connect(path);
  try {
    return await client.request(request);
  } finally {
    client.close();
  }
}
