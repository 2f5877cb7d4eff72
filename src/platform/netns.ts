/**
 * withNetns: do RTNETLINK and sysctl work inside another network namespace
 * without ever moving the process's own threads into it.
 *
 *   await withNetns(pid | { pid } | { fd } | { path }, async (ns) => {
 *     await ns.setLinkUpByName('eth0');
 *     await ns.addAddressToLinkByName('eth0', '10.0.0.2', 24);
 *     await ns.addDefaultRouteViaDev('eth0', false);
 *     await ns.setIpv6Forwarding('eth0', true);
 *     return ns.readSysctl('net.ipv4.ip_forward');
 *   });
 *
 * How (setns(2) changes the namespace of the calling *thread* only):
 *  1. The namespace is pinned first: a pid's /proc/<pid>/ns/net (or a path
 *     such as /run/netns/<name>) is opened once and kept open until the
 *     callback settles, because reopening it fails with ENOENT once the
 *     container's init has exited, while the namespace itself lives on.
 *     A caller's `{ fd }` is borrowed and left open.
 *  2. One long-lived worker_threads Worker (its own OS thread, shared by
 *     every call) enters the namespace with setns(fd, CLONE_NEWNET) through
 *     koffi, creates the NETLINK_ROUTE socket there, and setns's back to its
 *     own namespace; if it cannot come back it ends itself, and a new one is
 *     started for the next call. A netlink socket belongs to the namespace it
 *     was created in for life, and file descriptors are process-wide, so the
 *     main thread then drives that socket itself (synchronously, see
 *     netlink/socket.ts): the callback's `ns` is an Rtnetlink over it, with
 *     every helper of ./netlink as a method.
 *  3. /proc/sys/net/... resolves by the namespace of the thread that opens
 *     the file, so ns.readSysctl / ns.setSysctl are posted to that worker,
 *     which enters the namespace for the one file operation and comes back.
 *  4. When the callback settles (or throws) the socket is closed and a
 *     namespace fd opened in step 1 is closed. The worker stays (unref'd),
 *     since starting a thread and loading koffi costs tens of milliseconds.
 *
 * The worker's code is an inline CommonJS source (Worker `eval: true`), not a
 * file: that way it is the same under vitest (which runs src/*.ts) and from
 * dist/, with no build step or file-path games. It loads koffi from the path
 * the main thread resolved.
 *
 * `ns` must not be used after the callback has settled (its calls fail with
 * EBADF). Errors: IoError when the namespace file cannot be opened; a
 * NetlinkError "setns(ns_fd) failed" (EINVAL: not a network namespace fd,
 * EPERM: no CAP_SYS_ADMIN) when the worker cannot enter it; whatever the
 * callback throws, unchanged.
 */
import { closeSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { IoError, NetlinkError, PlatformError } from './errors.js';
import { Rtnetlink } from './netlink/rtnetlink.js';
import { NetlinkSocket, type NetlinkSocketOptions } from './netlink/socket.js';
import { errnoName } from './netlink/errno.js';
import { AF_NETLINK, CLONE_NEWNET, NETLINK_ROUTE, SOCK_CLOEXEC, SOCK_RAW, loadLibc } from './libc.js';
import { checkSysctlWrite, ipv6ForwardingPath, sysctlPath } from './sysctl.js';

/** A process id, or an explicit pid, an open namespace fd (borrowed), or a namespace file path. */
export type NetnsTarget = number | { pid: number } | { fd: number } | { path: string };

export interface WithNetnsOptions extends NetlinkSocketOptions {
  /** How long the worker may take to enter the namespace and answer a sysctl call (default 10 s). */
  workerTimeoutMs?: number;
}

const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
function main() {
  let koffi;
  try {
    koffi = require(workerData.koffiPath);
  } catch (error) {
    parentPort.postMessage({ type: 'error', stage: 'load koffi', errno: 0, message: String(error && error.message) });
    return;
  }
  const lib = koffi.load('libc.so.6');
  const setns = lib.func('int setns(int fd, int nstype)');
  const socket = lib.func('int socket(int domain, int type, int protocol)');
  // This thread's own namespace (the process's), to come back to after each request.
  const home = fs.openSync('/proc/thread-self/ns/net', 'r');
  parentPort.on('message', (request) => {
    if (setns(request.nsFd, workerData.CLONE_NEWNET) !== 0) {
      parentPort.postMessage({ id: request.id, ok: false, stage: 'setns(ns_fd)', errno: koffi.errno() });
      return;
    }
    let reply;
    try {
      if (request.op === 'socket') {
        const fd = socket(workerData.AF_NETLINK, workerData.SOCK_TYPE, workerData.NETLINK_ROUTE);
        reply = fd < 0 ? { id: request.id, ok: false, stage: 'socket(AF_NETLINK) in the namespace', errno: koffi.errno() } : { id: request.id, ok: true, fd };
      } else if (request.op === 'read') {
        reply = { id: request.id, ok: true, value: fs.readFileSync(request.path, 'utf8') };
      } else {
        fs.writeFileSync(request.path, request.value);
        reply = { id: request.id, ok: true, value: '' };
      }
    } catch (error) {
      reply = { id: request.id, ok: false, code: (error && error.code) || 'EIO', message: String(error && error.message) };
    }
    if (setns(home, workerData.CLONE_NEWNET) !== 0) {
      // A thread stuck in a foreign namespace must not serve another request: end it (a new one starts on demand).
      parentPort.postMessage({ id: request.id, ok: false, stage: 'setns back to the node namespace', errno: koffi.errno() });
      process.exit(1);
    }
    parentPort.postMessage(reply);
  });
  parentPort.postMessage({ type: 'ready' });
}
main();
`;

let koffiPath: string | null = null;

function resolveKoffi(): string {
  if (koffiPath === null) koffiPath = createRequire(import.meta.url).resolve('koffi');
  return koffiPath;
}

interface WorkerReply {
  id?: number;
  type?: 'ready' | 'error';
  ok?: boolean;
  value?: string;
  fd?: number;
  code?: string;
  message?: string;
  stage?: string;
  errno?: number;
}

type BrokerRequest = { op: 'socket'; nsFd: number } | { op: 'read'; nsFd: number; path: string } | { op: 'write'; nsFd: number; path: string; value: string };

/**
 * The one thread that enters other network namespaces: for each request it
 * calls setns into the given namespace fd, creates a netlink socket or reads
 * or writes a /proc/sys file there, and setns back to its own namespace.
 * Starting a thread (and loading koffi in it) costs tens of milliseconds, so
 * one is kept (unref'd: it never holds the process open) and restarted on
 * demand if it dies or stops answering.
 */
class NamespaceBroker {
  private static current: Promise<NamespaceBroker> | null = null;
  private readonly pending = new Map<number, { resolve: (reply: WorkerReply) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  private nextId = 1;
  private dead = false;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (reply: WorkerReply) => this.onReply(reply));
    worker.on('error', (error) => this.die(new NetlinkError(`namespace worker failed: ${error.message}`, 0, 'namespace worker')));
    worker.on('exit', () => this.die(new NetlinkError('namespace worker has exited', 0, 'namespace worker')));
    // Listeners re-reference the thread; only now can it stop holding the process open.
    worker.unref();
  }

  /** The running broker, started (or restarted) when needed. */
  static get(timeoutMs: number): Promise<NamespaceBroker> {
    if (NamespaceBroker.current === null) {
      const started = NamespaceBroker.start(timeoutMs);
      NamespaceBroker.current = started;
      started.catch(() => {
        if (NamespaceBroker.current === started) NamespaceBroker.current = null;
      });
    }
    return NamespaceBroker.current;
  }

  private static start(timeoutMs: number): Promise<NamespaceBroker> {
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { koffiPath: resolveKoffi(), CLONE_NEWNET, AF_NETLINK, SOCK_TYPE: SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE },
      });
    } catch (error) {
      return Promise.reject(new NetlinkError(`cannot start the namespace worker: ${(error as Error).message}`, 0, 'namespace worker'));
    }
    return new Promise((resolve, reject) => {
      const finish = (error: Error | null): void => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        if (error === null) {
          resolve(new NamespaceBroker(worker));
          return;
        }
        worker.on('error', () => undefined);
        void worker.terminate();
        reject(error);
      };
      const onMessage = (reply: WorkerReply): void => {
        if (reply.type === 'ready') finish(null);
        else if (reply.type === 'error') finish(new NetlinkError(`${reply.stage ?? 'namespace worker'} failed: ${reply.message ?? 'unknown error'}`, reply.errno ?? 0, reply.stage ?? 'namespace worker'));
      };
      const onError = (error: Error): void => finish(new NetlinkError(`namespace worker failed: ${error.message}`, 0, 'namespace worker'));
      const onExit = (): void => finish(new NetlinkError('namespace worker exited before it was ready', 0, 'namespace worker'));
      const timer = setTimeout(() => finish(new NetlinkError(`namespace worker did not start within ${timeoutMs} ms`, 110, 'namespace worker', 'ETIMEDOUT')), timeoutMs);
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
  }

  private die(error: Error): void {
    if (this.dead) return;
    this.dead = true;
    const self = NamespaceBroker.current;
    void self?.then((broker) => {
      if (broker === this && NamespaceBroker.current === self) NamespaceBroker.current = null;
    });
    for (const [id, entry] of this.pending) {
      clearTimeout(entry.timer);
      entry.reject(error);
      this.pending.delete(id);
    }
  }

  private onReply(reply: WorkerReply): void {
    if (reply.id === undefined) return;
    const entry = this.pending.get(reply.id);
    if (entry === undefined) {
      // A socket made for a request we gave up on (timeout) must not leak.
      if (reply.ok === true && reply.fd !== undefined && reply.fd >= 0) loadLibc().close(reply.fd);
      return;
    }
    this.pending.delete(reply.id);
    clearTimeout(entry.timer);
    entry.resolve(reply);
  }

  request(message: BrokerRequest, timeoutMs: number, label: string): Promise<WorkerReply> {
    if (this.dead) return Promise.reject(new NetlinkError(`namespace worker for ${label} has exited`, 0, 'namespace worker'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        // A thread that does not answer may be stuck inside a namespace: replace it.
        this.die(new NetlinkError(`namespace worker stopped answering`, 110, 'namespace worker', 'ETIMEDOUT'));
        void this.worker.terminate();
        reject(Object.assign(new Error(`no answer from the namespace worker of ${label} within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.worker.postMessage({ id, ...message });
    });
  }
}

/** The namespace-bound half of a withNetns call: its socket and its sysctl file operations. */
class NamespaceThread {
  constructor(
    private readonly nsFd: number,
    private readonly label: string,
    private readonly timeoutMs: number,
  ) {}

  /** A NETLINK_ROUTE socket created inside the namespace. */
  async openSocket(): Promise<number> {
    const broker = await NamespaceBroker.get(this.timeoutMs);
    const reply = await broker.request({ op: 'socket', nsFd: this.nsFd }, this.timeoutMs, this.label);
    if (reply.ok === true && reply.fd !== undefined) return reply.fd;
    const errno = reply.errno ?? 0;
    const code = errno !== 0 ? errnoName(errno) : 'EIO';
    throw new NetlinkError(`${reply.stage ?? 'namespace worker'} failed for ${this.label}: ${reply.message ?? code}`, errno, reply.stage ?? 'namespace worker', code);
  }

  /** Read or write a file from inside the namespace. */
  async call(op: 'read' | 'write', path: string, value = ''): Promise<string> {
    const broker = await NamespaceBroker.get(this.timeoutMs);
    const message: BrokerRequest = op === 'read' ? { op, nsFd: this.nsFd, path } : { op, nsFd: this.nsFd, path, value };
    const reply = await broker.request(message, this.timeoutMs, this.label);
    if (reply.ok === true) return reply.value ?? '';
    if (reply.stage !== undefined) {
      const errno = reply.errno ?? 0;
      throw Object.assign(new Error(`${reply.stage} failed: ${errno !== 0 ? errnoName(errno) : 'EIO'}`), { code: errno !== 0 ? errnoName(errno) : 'EIO' });
    }
    throw Object.assign(new Error(reply.message ?? 'file operation failed'), { code: reply.code ?? 'EIO' });
  }
}

function ioError(verb: 'read' | 'write', key: string, path: string, label: string, error: unknown): IoError {
  const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
  return new IoError(`cannot ${verb} sysctl ${key} (${path}) in ${label}: ${(error as Error).message}`, code);
}

/**
 * The callback's view of the namespace: every RTNETLINK helper as a method
 * (they act on links, addresses and routes inside the namespace), plus
 * sysctls read and written from inside it.
 */
export class NetnsContext extends Rtnetlink {
  private active = true;

  /** @internal Built by withNetns. */
  constructor(
    socket: NetlinkSocket,
    private readonly thread: NamespaceThread,
    /** The pinned namespace fd (valid while the callback runs). */
    readonly nsFd: number,
    label: string,
  ) {
    super(socket, { namespaceLabel: label });
  }

  private check(operation: string): void {
    if (!this.active) throw new PlatformError(`${operation}: the withNetns context of ${this.namespaceLabel} is no longer active`, 'EBADF');
  }

  /** A sysctl of the namespace, trimmed. IoError when it cannot be read. */
  async readSysctl(key: string): Promise<string> {
    this.check(`read sysctl ${key}`);
    const path = sysctlPath(key);
    try {
      return (await this.thread.call('read', path)).trim();
    } catch (error) {
      throw ioError('read', key, path, this.namespaceLabel, error);
    }
  }

  /** Write a sysctl of the namespace. net.ipv6.conf.all.forwarding is refused (see sysctl.ts). */
  async setSysctl(key: string, value: string): Promise<void> {
    this.check(`write sysctl ${key}`);
    const path = sysctlPath(key);
    checkSysctlWrite(path);
    try {
      await this.thread.call('write', path, value);
    } catch (error) {
      throw ioError('write', key, path, this.namespaceLabel, error);
    }
  }

  /** net.ipv6.conf.<ifname>.forwarding = 1 / 0 inside the namespace (per interface, never `all`). */
  async setIpv6Forwarding(ifname: string, on: boolean): Promise<void> {
    this.check(`set IPv6 forwarding on ${ifname}`);
    const path = ipv6ForwardingPath(ifname);
    try {
      await this.thread.call('write', path, on ? '1' : '0');
    } catch (error) {
      throw ioError('write', `net.ipv6.conf.${ifname}.forwarding`, path, this.namespaceLabel, error);
    }
  }

  /** @internal */
  deactivate(): void {
    this.active = false;
    this.close();
  }
}

function describeTarget(target: NetnsTarget): { path: string | null; fd: number | null; label: string } {
  const pid = typeof target === 'number' ? target : 'pid' in target ? target.pid : null;
  if (pid !== null && (!Number.isInteger(pid) || pid <= 0)) {
    throw new IoError(`cannot open /proc/${String(pid)}/ns/net: ${String(pid)} is not a process id`, 'EINVAL');
  }
  if (typeof target === 'number') return { path: `/proc/${target}/ns/net`, fd: null, label: `network namespace of pid ${target}` };
  if ('pid' in target) return { path: `/proc/${target.pid}/ns/net`, fd: null, label: `network namespace of pid ${target.pid}` };
  if ('fd' in target) return { path: null, fd: target.fd, label: `network namespace fd ${target.fd}` };
  return { path: target.path, fd: null, label: `network namespace ${target.path}` };
}

function openNamespace(path: string, label: string): number {
  try {
    return openSync(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
    throw new IoError(`cannot open ${path} (${label}): ${(error as Error).message}`, code);
  }
}

/**
 * Run `fn` with an NetnsContext bound to the network namespace `target`
 * (a pid, `{ pid }`, `{ fd }` or `{ path }`); resolves to what `fn` returns.
 */
export async function withNetns<T>(target: NetnsTarget, fn: (ns: NetnsContext) => Promise<T> | T, options: WithNetnsOptions = {}): Promise<T> {
  const { path, fd: givenFd, label } = describeTarget(target);
  if (givenFd !== null && (!Number.isInteger(givenFd) || givenFd < 0)) {
    throw new NetlinkError(`setns(ns_fd) failed for ${label}: not a file descriptor`, 22, 'setns(ns_fd)', 'EINVAL');
  }
  const nsFd = givenFd ?? openNamespace(path!, label);
  let context: NetnsContext | null = null;
  try {
    const thread = new NamespaceThread(nsFd, label, options.workerTimeoutMs ?? 10_000);
    const socket = NetlinkSocket.adopt(await thread.openSocket(), options);
    context = new NetnsContext(socket, thread, nsFd, label);
    return await fn(context);
  } finally {
    context?.deactivate();
    if (givenFd === null) closeSync(nsFd);
  }
}

/** withNetns on a namespace fd the caller owns (it stays open). */
export function withNetnsFd<T>(nsFd: number, fn: (ns: NetnsContext) => Promise<T> | T, options?: WithNetnsOptions): Promise<T> {
  return withNetns({ fd: nsFd }, fn, options);
}
