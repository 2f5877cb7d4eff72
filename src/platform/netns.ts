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
 *  2. A short-lived worker_threads Worker (its own OS thread) calls
 *     setns(fd, CLONE_NEWNET) through koffi and creates the NETLINK_ROUTE
 *     socket there. A netlink socket belongs to the namespace it was created
 *     in for life, and file descriptors are process-wide, so the main thread
 *     then drives that socket itself (synchronously, see netlink/socket.ts):
 *     the callback's `ns` is an Rtnetlink over it, with every helper of
 *     ./netlink as a method.
 *  3. /proc/sys/net/... resolves by the namespace of the thread that opens
 *     the file, so ns.readSysctl / ns.setSysctl are posted to that worker,
 *     which does synchronous file I/O on its own (namespaced) thread.
 *  4. When the callback settles (or throws) the socket is closed, the worker
 *     ends — its thread, the only one that entered the namespace, exits with
 *     it — and a namespace fd opened in step 1 is closed.
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
  if (setns(workerData.nsFd, workerData.CLONE_NEWNET) !== 0) {
    parentPort.postMessage({ type: 'error', stage: 'setns(ns_fd)', errno: koffi.errno() });
    return;
  }
  const fd = workerData.openSocket ? socket(workerData.AF_NETLINK, workerData.SOCK_TYPE, workerData.NETLINK_ROUTE) : -1;
  if (workerData.openSocket && fd < 0) {
    parentPort.postMessage({ type: 'error', stage: 'socket(AF_NETLINK) in the namespace', errno: koffi.errno() });
    return;
  }
  parentPort.on('message', (request) => {
    try {
      if (request.op === 'read') {
        parentPort.postMessage({ id: request.id, ok: true, value: fs.readFileSync(request.path, 'utf8') });
      } else {
        fs.writeFileSync(request.path, request.value);
        parentPort.postMessage({ id: request.id, ok: true, value: '' });
      }
    } catch (error) {
      parentPort.postMessage({ id: request.id, ok: false, code: (error && error.code) || 'EIO', message: String(error && error.message) });
    }
  });
  parentPort.postMessage({ type: 'ready', socketFd: fd });
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
  code?: string;
  message?: string;
  stage?: string;
  errno?: number;
  socketFd?: number;
}

/** The worker thread that lives inside the namespace for the length of one withNetns call. */
class NamespaceThread {
  private readonly pending = new Map<number, { resolve: (value: string) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  private nextId = 1;
  private failure: Error | null = null;

  private constructor(
    private readonly worker: Worker,
    private readonly label: string,
    private readonly timeoutMs: number,
  ) {
    worker.on('message', (reply: WorkerReply) => this.onReply(reply));
    const fail = (error: Error): void => {
      this.failure = error;
      for (const [id, entry] of this.pending) {
        clearTimeout(entry.timer);
        entry.reject(error);
        this.pending.delete(id);
      }
    };
    worker.on('error', (error) => fail(new NetlinkError(`namespace worker for ${label} failed: ${error.message}`, 0, 'namespace worker')));
    worker.on('exit', () => fail(new NetlinkError(`namespace worker for ${label} has exited`, 0, 'namespace worker')));
  }

  /** Start the worker, enter the namespace, and (optionally) create a netlink socket there; returns its fd or -1. */
  static start(nsFd: number, label: string, timeoutMs: number, openSocket: boolean): Promise<{ thread: NamespaceThread; socketFd: number }> {
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: {
          koffiPath: resolveKoffi(),
          nsFd,
          openSocket,
          CLONE_NEWNET,
          AF_NETLINK,
          SOCK_TYPE: SOCK_RAW | SOCK_CLOEXEC,
          NETLINK_ROUTE,
        },
      });
    } catch (error) {
      return Promise.reject(new NetlinkError(`cannot start the namespace worker for ${label}: ${(error as Error).message}`, 0, 'namespace worker'));
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (error: Error | null, socketFd = -1): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        worker.off('error', onError);
        worker.off('exit', onExit);
        if (error !== null) {
          // A socket the worker made after we gave up on it (timeout) must not leak.
          worker.on('message', (late: WorkerReply) => {
            if (late.type === 'ready' && late.socketFd !== undefined && late.socketFd >= 0) loadLibc().close(late.socketFd);
          });
          worker.on('error', () => undefined);
          void worker.terminate();
          reject(error);
        } else {
          worker.off('message', onMessage);
          resolve({ thread: new NamespaceThread(worker, label, timeoutMs), socketFd });
        }
      };
      const onMessage = (reply: WorkerReply): void => {
        if (reply.type === 'ready') return finish(null, reply.socketFd ?? -1);
        if (reply.type === 'error') {
          const errno = reply.errno ?? 0;
          const code = errno !== 0 ? errnoName(errno) : 'EIO';
          const reason = reply.message ?? code;
          finish(new NetlinkError(`${reply.stage ?? 'namespace worker'} failed for ${label}: ${reason}`, errno, reply.stage ?? 'namespace worker', code));
        }
      };
      const onError = (error: Error): void => finish(new NetlinkError(`namespace worker for ${label} failed: ${error.message}`, 0, 'namespace worker'));
      const onExit = (): void => finish(new NetlinkError(`namespace worker for ${label} exited before entering the namespace`, 0, 'namespace worker'));
      const timer = setTimeout(
        () => finish(new NetlinkError(`namespace worker for ${label} did not start within ${timeoutMs} ms`, 110, 'namespace worker', 'ETIMEDOUT')),
        timeoutMs,
      );
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
  }

  private onReply(reply: WorkerReply): void {
    if (reply.id === undefined) return;
    const entry = this.pending.get(reply.id);
    if (entry === undefined) return;
    this.pending.delete(reply.id);
    clearTimeout(entry.timer);
    if (reply.ok === true) entry.resolve(reply.value ?? '');
    else entry.reject(Object.assign(new Error(reply.message ?? 'file operation failed'), { code: reply.code ?? 'EIO' }));
  }

  /** Read or write a file on the namespaced thread. */
  call(op: 'read' | 'write', path: string, value = ''): Promise<string> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(Object.assign(new Error(`no answer from the namespace worker of ${this.label} within ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.worker.postMessage({ id, op, path, value });
    });
  }

  async stop(): Promise<void> {
    await this.worker.terminate();
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
  let thread: NamespaceThread | null = null;
  let context: NetnsContext | null = null;
  try {
    const started = await NamespaceThread.start(nsFd, label, options.workerTimeoutMs ?? 10_000, true);
    thread = started.thread;
    const socket = NetlinkSocket.adopt(started.socketFd, options);
    context = new NetnsContext(socket, thread, nsFd, label);
    return await fn(context);
  } finally {
    context?.deactivate();
    if (thread !== null) await thread.stop();
    if (givenFd === null) closeSync(nsFd);
  }
}

/** withNetns on a namespace fd the caller owns (it stays open). */
export function withNetnsFd<T>(nsFd: number, fn: (ns: NetnsContext) => Promise<T> | T, options?: WithNetnsOptions): Promise<T> {
  return withNetns({ fd: nsFd }, fn, options);
}
