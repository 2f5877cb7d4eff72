/**
 * Names outside the zone go to the host's resolvers, the client's bytes as
 * they are (over UDP with our own random id, see udp-pool.ts), over the
 * transport the client used (a UDP client gets the upstream's UDP answer,
 * truncated or not, and retries over TCP itself).
 *
 * Upstreams are asked in order, each for 4 s; SERVFAIL, REFUSED, a timeout
 * or an error moves on to the next. Any other answer (NXDOMAIN with its SOA
 * included) goes back unchanged. null means every upstream failed.
 */
import { connect } from 'node:net';
import { DNS_UPSTREAM_TIMEOUT_MS } from '../constants.js';
import { messageId, RCODE, responseHeader } from './codec.js';
import type { Upstream } from './resolv-conf.js';
import { UdpPool } from './udp-pool.js';

export type Transport = 'udp' | 'tcp';

/** The largest DNS message (its TCP length prefix is 16 bits). */
const MAX_MESSAGE_BYTES = 65_535;

function acceptable(answer: Buffer, id: number): boolean {
  const header = responseHeader(answer);
  return header !== null && header.isResponse && messageId(answer) === id;
}

function tcpExchange(upstream: Upstream, query: Buffer, id: number, timeoutMs: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const socket = connect({ host: upstream.host, port: upstream.port });
    let buffered = Buffer.alloc(0);
    const finish = (answer: Buffer | null): void => {
      clearTimeout(timer);
      socket.removeAllListeners('data');
      socket.on('error', () => undefined);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    socket.on('error', () => finish(null));
    socket.on('close', () => finish(null));
    socket.on('connect', () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(query.length);
      socket.write(Buffer.concat([length, query]));
    });
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const size = buffered.readUInt16BE(0);
        if (buffered.length < 2 + size) return;
        const message = buffered.subarray(2, 2 + size);
        buffered = buffered.subarray(2 + size);
        if (acceptable(message, id)) {
          finish(Buffer.from(message));
          return;
        }
      }
    });
  });
}

export class Forwarder {
  private readonly udp = new UdpPool();

  constructor(
    readonly upstreams: readonly Upstream[],
    private readonly timeoutMs = DNS_UPSTREAM_TIMEOUT_MS,
  ) {}

  /** The first usable answer to `query` from the upstreams in order; null when all failed (or there are none). */
  async forward(query: Buffer, transport: Transport): Promise<Buffer | null> {
    const id = messageId(query);
    if (id === null || query.length > MAX_MESSAGE_BYTES) return null;
    for (const upstream of this.upstreams) {
      const answer = transport === 'udp' ? await this.udp.exchange(upstream, query, this.timeoutMs) : await tcpExchange(upstream, query, id, this.timeoutMs);
      if (answer === null) continue;
      const rcode = responseHeader(answer)!.rcode;
      if (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) continue;
      return answer;
    }
    return null;
  }

  /** Close the pooled sockets; forwards still waiting get null. */
  close(): void {
    this.udp.close();
  }
}
