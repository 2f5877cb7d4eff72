/** A raw UAPI `get=1` on a daemon's socket (cross-platform UAPI, wireguard.com/xplatform), timed. */
import { createConnection } from 'node:net';
import { performance } from 'node:perf_hooks';

export interface UapiGetResult {
  ms: number;
  bytes: number;
  /** `public_key=` lines: one per peer. */
  peers: number;
}

/** Send `get=1` and read until the closing `errno=N` and blank line; rejects on errno != 0 or after timeoutMs. */
export function uapiGet(socketPath: string, timeoutMs = 60_000): Promise<UapiGetResult> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const chunks: Buffer[] = [];
    let bytes = 0;
    let tail = '';
    const socket = createConnection(socketPath);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`UAPI get on ${socketPath}: no complete answer after ${timeoutMs} ms (${bytes} bytes)`));
    }, timeoutMs);
    const finish = (error: Error | null): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error !== null) return reject(error);
      const text = Buffer.concat(chunks).toString('utf8');
      const errno = /(?:^|\n)errno=(-?\d+)\n\n$/.exec(text)?.[1];
      if (errno !== '0') return reject(new Error(`UAPI get on ${socketPath} answered errno=${errno ?? '(none)'}`));
      resolve({ ms: performance.now() - start, bytes, peers: text.match(/^public_key=/gm)?.length ?? 0 });
    };
    socket.on('connect', () => socket.write('get=1\n\n'));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      bytes += chunk.length;
      // The answer ends with "errno=N\n\n" (the daemon may keep the connection open for more requests).
      tail = (tail + chunk.toString('latin1')).slice(-64);
      if (/(?:^|\n)errno=-?\d+\n\n$/.test(tail)) finish(null);
    });
    socket.on('error', (error) => finish(new Error(`UAPI get on ${socketPath}: ${error.message}`)));
    socket.on('end', () => finish(null));
  });
}
