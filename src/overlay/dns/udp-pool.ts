/**
 * UDP exchanges with upstream resolvers over a small pool of sockets per
 * upstream, so a forwarded query does not pay for a socket of its own.
 *
 * Spoofing resistance stays close to a socket per query: each query goes
 * out on a random socket of the pool (each bound by the kernel to a random
 * port) with a fresh random id (the client's id is put back in the answer),
 * and a socket is replaced after 2,000 queries. Sockets are connected to
 * their upstream, so the kernel drops datagrams from anyone else and an
 * ICMP "port unreachable" fails the queries waiting on that socket at once
 * instead of after the timeout.
 */
import { randomInt } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIP } from 'node:net';
import { DNS_FORWARD_SOCKET_USES, DNS_FORWARD_SOCKETS_PER_UPSTREAM } from '../constants.js';
import { responseHeader } from './codec.js';
import type { Upstream } from './resolv-conf.js';

interface Waiter {
  clientId: number;
  timer: NodeJS.Timeout;
  resolve: (answer: Buffer | null) => void;
}

interface PooledSocket {
  socket: UdpSocket;
  /** Resolves once connect() is done; false when it failed. */
  ready: Promise<boolean>;
  /** Our id → the query waiting for it. */
  waiting: Map<number, Waiter>;
  uses: number;
  /** Out of the pool: no new queries pick it, those already on it finish. */
  retired: boolean;
  destroyed: boolean;
}

const ID_SPACE = 0x10000;

export class UdpPool {
  /** "host|port" → slots (empty until first used). */
  private readonly pools = new Map<string, Array<PooledSocket | undefined>>();
  private closed = false;

  constructor(
    private readonly socketsPerUpstream = DNS_FORWARD_SOCKETS_PER_UPSTREAM,
    private readonly usesPerSocket = DNS_FORWARD_SOCKET_USES,
  ) {}

  /** Send `query` to `upstream` and wait for its answer (client id restored); null on timeout or error. */
  async exchange(upstream: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer | null> {
    if (this.closed || query.length < 2) return null;
    const pooled = this.pick(upstream);
    if (!(await pooled.ready) || pooled.destroyed) return null;
    let id: number;
    do id = randomInt(ID_SPACE);
    while (pooled.waiting.has(id));
    const outgoing = Buffer.from(query);
    outgoing.writeUInt16BE(id, 0);
    pooled.uses++;
    if (pooled.uses >= this.usesPerSocket) this.retire(upstream, pooled);
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.settle(pooled, id, null), timeoutMs);
      pooled.waiting.set(id, { clientId: query.readUInt16BE(0), timer, resolve });
      pooled.socket.send(outgoing, (error) => {
        if (error) this.settle(pooled, id, null);
      });
    });
  }

  /** Close every socket; queries still waiting get null. */
  close(): void {
    this.closed = true;
    for (const slots of this.pools.values()) {
      for (const pooled of slots) if (pooled !== undefined) this.destroy(pooled);
    }
    this.pools.clear();
  }

  private pick(upstream: Upstream): PooledSocket {
    const key = `${upstream.host}|${upstream.port}`;
    let slots = this.pools.get(key);
    if (slots === undefined) this.pools.set(key, (slots = new Array<PooledSocket | undefined>(this.socketsPerUpstream).fill(undefined)));
    const index = randomInt(slots.length);
    let pooled = slots[index];
    if (pooled === undefined || pooled.retired) slots[index] = pooled = this.open(upstream);
    return pooled;
  }

  private open(upstream: Upstream): PooledSocket {
    const socket = createSocket(isIP(upstream.host.split('%')[0]!) === 6 ? 'udp6' : 'udp4');
    const pooled: PooledSocket = { socket, ready: Promise.resolve(false), waiting: new Map(), uses: 0, retired: false, destroyed: false };
    pooled.ready = new Promise((resolve) => {
      socket.once('connect', () => resolve(true));
      socket.on('error', () => {
        // Connect failed, or the upstream's ICMP error: nothing on this socket will be answered.
        resolve(false);
        pooled.retired = true;
        this.destroy(pooled);
      });
      socket.connect(upstream.port, upstream.host);
    });
    socket.on('message', (message) => {
      const header = responseHeader(message);
      if (header === null || !header.isResponse) return;
      const id = message.readUInt16BE(0);
      const waiter = pooled.waiting.get(id);
      if (waiter === undefined) return;
      const answer = Buffer.from(message);
      answer.writeUInt16BE(waiter.clientId, 0);
      this.settle(pooled, id, answer);
    });
    return pooled;
  }

  private settle(pooled: PooledSocket, id: number, answer: Buffer | null): void {
    const waiter = pooled.waiting.get(id);
    if (waiter === undefined) return;
    pooled.waiting.delete(id);
    clearTimeout(waiter.timer);
    waiter.resolve(answer);
    if (pooled.retired && pooled.waiting.size === 0) this.destroy(pooled);
  }

  /** Out of the pool now; closed once its last query is settled. */
  private retire(upstream: Upstream, pooled: PooledSocket): void {
    pooled.retired = true;
    const slots = this.pools.get(`${upstream.host}|${upstream.port}`);
    const index = slots?.indexOf(pooled) ?? -1;
    if (index >= 0) slots![index] = undefined;
  }

  private destroy(pooled: PooledSocket): void {
    if (pooled.destroyed) return;
    pooled.destroyed = true;
    pooled.retired = true;
    for (const id of [...pooled.waiting.keys()]) this.settle(pooled, id, null);
    try {
      pooled.socket.close();
    } catch {
      // Already closed.
    }
  }
}
