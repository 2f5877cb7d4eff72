/**
 * A raw client for a UAPI unix socket (/var/run/wireguard/IFNAME.sock) that
 * sends arbitrary bytes and reports exactly what came back and whether the
 * server closed the connection.
 */
import net from 'node:net';

export interface RawExchange {
  /** Everything the server sent (latin1). */
  reply: string;
  /** The server ended or closed the connection (as opposed to our timeout). */
  closedByServer: boolean;
  /** The connection failed (e.g. ECONNREFUSED, EPIPE): its code. */
  error: string | null;
}

export interface RawOptions {
  /** Shut down our sending side after writing (default true). */
  end?: boolean;
  /** Give up waiting for the server after this long (default 3000 ms). */
  timeoutMs?: number;
  /** Resolve as soon as a full "errno=N\n\n" arrived (default true); otherwise wait for the close. */
  stopAtErrno?: boolean;
}

/** Connect, write `payload` (in one go), optionally half-close, and collect the reply. */
export function rawUapi(path: string, payload: string | Uint8Array, options: RawOptions = {}): Promise<RawExchange> {
  const { end = true, timeoutMs = 3000, stopAtErrno = true } = options;
  return new Promise((resolve) => {
    const socket = net.createConnection({ path, allowHalfOpen: true });
    let reply = '';
    let error: string | null = null;
    let settled = false;
    const finish = (closedByServer: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ reply, closedByServer, error });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (stopAtErrno && /errno=-?\d+\n\n$/.test(reply)) finish(false);
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    socket.on('connect', () => {
      socket.write(payload, () => {
        if (end) socket.end();
      });
    });
  });
}

/** The N of the last "errno=N" in a reply, or null when there is none. */
export function errnoOf(reply: string): number | null {
  const matches = [...reply.matchAll(/errno=(-?\d+)\n/g)];
  const last = matches.at(-1);
  return last === undefined ? null : Number(last[1]);
}

/** A `get=1` over the raw client: the reply text (throws when it does not end in errno=0). */
export async function uapiGet(path: string): Promise<string> {
  const result = await rawUapi(path, 'get=1\n\n');
  if (errnoOf(result.reply) !== 0) throw new Error(`get=1 on ${path} failed: ${JSON.stringify(result)}`);
  return result.reply;
}

/** The stable part of a get reply: device keys and, per peer, key, endpoint, allowed IPs and keepalive (no counters, no handshake times). */
export function configOf(getReply: string): string[] {
  return getReply
    .split('\n')
    .filter((line) => /^(private_key|listen_port|fwmark|public_key|preshared_key|endpoint|persistent_keepalive_interval|allowed_ip|protocol_version)=/.test(line));
}
