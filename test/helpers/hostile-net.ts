/**
 * The hostile sender's side of the network: a UDP socket in the test process
 * with a receive queue, a flow-controlled flooder that never lets more than a
 * few datagrams wait in the target's socket buffer (it watches the target's
 * UDP counters, so every datagram is actually read by the target rather than
 * dropped by the kernel), and a peer of the target driven by the protocol
 * core (a real session to replay and to prove the target still answers).
 */
import dgram from 'node:dgram';
import { Tunnel, messageType, type StaticIdentity } from '../../src/noise/index.js';
import { registerCleanup } from '../../scripts/lib/netns.js';
import { ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, buildIcmpEcho, parseIcmpEcho, parseIpv4 } from './ip.js';
import { processAlive, udpCounters, udpSocketState, type UdpSocketState } from './hostile-proc.js';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface Received {
  data: Uint8Array;
  address: string;
  port: number;
  at: number;
}

/** A bound UDP socket; everything it receives is kept in `log` and offered to `receive`. */
export class HostileSocket {
  readonly log: Received[] = [];
  private readonly queue: Received[] = [];
  private waiter: (() => void) | null = null;
  private closed = false;
  private readonly unregister: () => void;

  private constructor(
    private readonly socket: dgram.Socket,
    readonly address: string,
    readonly port: number,
  ) {
    socket.on('message', (message, info) => {
      const item = { data: new Uint8Array(message), address: info.address, port: info.port, at: performance.now() };
      this.log.push(item);
      this.queue.push(item);
      this.waiter?.();
    });
    socket.on('error', () => {});
    this.unregister = registerCleanup('other', `close UDP socket ${address}:${port}`, () => this.close());
  }

  static async bind(family: 4 | 6, address: string): Promise<HostileSocket> {
    const socket = dgram.createSocket({ type: family === 4 ? 'udp4' : 'udp6', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new HostileSocket(socket, address, socket.address().port);
  }

  send(data: Uint8Array, address: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(data, port, address, (error) => (error ? reject(error) : resolve())));
  }

  /** Drop what is queued (the log keeps it). */
  drain(): void {
    this.queue.length = 0;
  }

  async receive(what: string, accept: (item: Received) => boolean = () => true, timeoutMs = 5000): Promise<Received> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.queue.length > 0) {
        const item = this.queue.shift()!;
        if (accept(item)) return item;
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) throw new Error(`nothing on ${this.address}:${this.port} within ${timeoutMs} ms while waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
    this.unregister();
  }
}

export interface FloodStats {
  sent: number;
  bytes: number;
  /** Datagrams the target's namespace read from UDP sockets (all sockets, our traffic and the rest). */
  read: number;
  /** Namespace-wide receive-buffer drops. */
  rcvbufErrors: number;
  inErrors: number;
  /** Drops counted on the target's own socket. */
  socketDrops: number;
}

/** Keep at most this many bytes (truesize) in the target's receive queue: well under the 208 KiB default. */
const MAX_QUEUED_BYTES = 48 * 1024;

/**
 * Sends datagrams to (address, port) from `socket`, keeping at most `window`
 * of them (or one large one) unread in the target's socket buffer.
 */
export class Flooder {
  private sent = 0;
  private bytes = 0;
  private readonly start: ReturnType<typeof udpCounters>;
  private readonly startDrops: number;

  constructor(
    private readonly socket: HostileSocket,
    private readonly family: 4 | 6,
    private readonly address: string,
    private readonly port: number,
    /** A process in the target's network namespace (the target itself). */
    private readonly pid: number,
    private readonly window = 16,
    private readonly describe: () => string = () => '',
  ) {
    this.start = udpCounters(pid, family);
    this.startDrops = this.socket_().drops;
  }

  private socket_(): UdpSocketState {
    const state = udpSocketState(this.pid, this.family, this.port);
    if (state === null) throw new Error(`no UDP socket on port ${this.port} (IPv${this.family}) in the target's namespace\n${this.describe()}`);
    return state;
  }

  stats(): FloodStats {
    const now = udpCounters(this.pid, this.family);
    return {
      sent: this.sent,
      bytes: this.bytes,
      read: now.inDatagrams - this.start.inDatagrams,
      rcvbufErrors: now.rcvbufErrors - this.start.rcvbufErrors,
      inErrors: now.inErrors - this.start.inErrors,
      socketDrops: this.socket_().drops - this.startDrops,
    };
  }

  /**
   * Our datagrams not yet read, by the namespace's counters (an underestimate
   * by whatever else arrived meanwhile), or more when the target's receive
   * queue is fuller than MAX_QUEUED_BYTES (exact).
   */
  private unread(limit: number): number {
    const s = this.stats();
    const byCount = this.sent - s.read - s.rcvbufErrors - s.inErrors;
    const queued = this.socket_().rxQueue;
    if (limit === 0) return queued > 0 ? Math.max(1, byCount) : byCount;
    return queued > MAX_QUEUED_BYTES ? Math.max(limit + 1, byCount) : byCount;
  }

  /** Wait until at most `limit` of our datagrams are unread (0: none, and the queue empty). */
  async settle(limit = 0, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.unread(limit) > limit) {
      if (!processAlive(this.pid)) throw new Error(`the target (pid ${this.pid}) died with ${this.unread(limit)} datagrams unread\n${this.describe()}`);
      if (Date.now() > deadline) throw new Error(`the target (pid ${this.pid}) left ${this.unread(limit)} datagrams unread for ${timeoutMs} ms\n${this.describe()}`);
      await sleep(1);
    }
  }

  async send(datagrams: Iterable<Uint8Array>): Promise<void> {
    let sinceCheck = 0;
    for (const datagram of datagrams) {
      const large = datagram.length > 1500;
      if (large) await this.settle(0);
      else if (++sinceCheck >= 4) {
        sinceCheck = 0;
        await this.settle(this.window);
      }
      this.sent++;
      this.bytes += datagram.length;
      const sending = this.socket.send(datagram, this.address, this.port);
      if (large) {
        await sending;
        await this.settle(0);
      } else sending.catch(() => {});
    }
  }
}

/** A peer of the target run by the protocol core over a HostileSocket: handshakes and pings its inner address. */
export class CorePeer {
  tunnel: Tunnel;
  /** Every datagram this peer sent (initiations and transport): material for replays. */
  readonly sentDatagrams: Uint8Array[] = [];
  /** The target's index for the current session (the sender index of its response). */
  targetIndex = 0;
  private sequence = 0;

  constructor(
    readonly identity: StaticIdentity,
    readonly targetPublicKey: Uint8Array,
    readonly socket: HostileSocket,
    readonly targetAddress: string,
    readonly targetPort: number,
    /** Our inner address (in the target's allowed IPs for us) and the target's. */
    readonly innerAddress: string,
    readonly targetInnerAddress: string,
  ) {
    this.tunnel = new Tunnel({ identity, peerPublicKey: targetPublicKey });
  }

  private async sendAll(datagrams: Uint8Array[]): Promise<void> {
    for (const datagram of datagrams) {
      this.sentDatagrams.push(Uint8Array.from(datagram));
      await this.socket.send(datagram, this.targetAddress, this.targetPort);
    }
  }

  /** Throw away the session: the next ping starts a fresh handshake (a new Tunnel, so no rate limit of ours applies). */
  reset(): void {
    this.tunnel.close();
    this.tunnel = new Tunnel({ identity: this.identity, peerPublicKey: this.targetPublicKey });
  }

  /**
   * Send an ICMP echo request to the target's inner address through the
   * tunnel (handshaking first when needed) and wait for the reply. Anything
   * else that arrives (cookie replies from a flood, keepalives) is handled or skipped.
   */
  async ping(timeoutMs = 5000): Promise<void> {
    const identifier = 0x4242;
    const sequence = ++this.sequence;
    const payload = new Uint8Array(Buffer.from(`hostile-test-${sequence}`));
    const request = buildIcmpEcho({ type: ICMP_ECHO_REQUEST, source: this.innerAddress, destination: this.targetInnerAddress, identifier, sequence, payload });
    this.socket.drain();
    const out = this.tunnel.encapsulate(request);
    if (out.error !== null) throw new Error(`encapsulate: ${out.error.code}: ${out.error.message}`);
    await this.sendAll(out.network);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      const item = await this.socket.receive(`the echo reply ${sequence} from ${this.targetInnerAddress}`, (i) => i.address === this.targetAddress, Math.max(1, left));
      const type = messageType(item.data);
      if (type !== 'response' && type !== 'transport' && type !== 'cookie-reply') continue;
      const result = this.tunnel.decapsulate(item.data);
      if (type === 'response' && result.authenticated) this.targetIndex = new DataView(item.data.buffer, item.data.byteOffset).getUint32(4, true);
      await this.sendAll(result.network);
      if (result.tunnel === null) continue;
      const ip = parseIpv4(result.tunnel);
      if (ip.protocol !== 1) continue;
      const icmp = parseIcmpEcho(ip);
      if (icmp.type === ICMP_ECHO_REPLY && icmp.identifier === identifier && icmp.sequence === sequence) return;
    }
  }
}
