/**
 * A test client for the unix-socket line servers (the UAPI socket, the line
 * server itself): collects everything the server sends, notices when it
 * closes, and waits on what arrives instead of sleeping.
 */
import net from 'node:net';

export class SocketClient {
  data = '';
  closed = false;
  private waiters: (() => void)[] = [];

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.data += chunk;
      this.notify();
    });
    socket.on('error', () => undefined);
    // The client is half-open: the server's FIN ('end') is the server closing.
    for (const event of ['end', 'close']) {
      socket.on(event, () => {
        this.closed = true;
        this.notify();
      });
    }
  }

  /** Connect to `path` (half-open, so the server's end is seen as its close). */
  static connect<T extends SocketClient>(this: new (socket: net.Socket) => T, path: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ path, allowHalfOpen: true });
      socket.once('connect', () => resolve(new this(socket)));
      socket.once('error', reject);
    });
  }

  private notify(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  /** Resolves once the bytes are written, or at once when the connection is gone. */
  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed || this.closed) {
        resolve();
        return;
      }
      this.socket.write(data, () => resolve());
    });
  }

  /** Wait until `predicate` holds, re-checked whenever bytes arrive or the connection closes. */
  async until(what: string, predicate: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.data.slice(0, 500))}, closed=${this.closed}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  waitClosed(): Promise<void> {
    return this.until('the server to close', () => this.closed);
  }

  destroy(): void {
    this.socket.destroy();
  }
}
