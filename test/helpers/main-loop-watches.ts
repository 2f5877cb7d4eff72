/**
 * Which of a tswg daemon's packet sources its main thread's event loop polls
 * now, read from /proc/PID/fdinfo: Node's own loop is the only epoll instance
 * the daemon has; the I/O thread waits with poll(2) and registers nothing there.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import type { WgNode } from '../../scripts/lib/topology.js';

/** What the daemon's epoll sets hold: the TUN fd, and how many of its UDP sockets. */
export function mainLoopWatches(node: WgNode): { tun: boolean; udp: number } {
  const pid = node.process.pid;
  const fds = readdirSync(`/proc/${pid}/fd`).map(Number);
  const target = (fd: number) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '';
    }
  };
  const tunFds = fds.filter((fd) => target(fd) === '/dev/net/tun');
  if (tunFds.length !== 1) throw new Error(`expected one /dev/net/tun fd in process ${pid}, found ${tunFds.length}`);
  const sockets = new Set(fds.filter((fd) => target(fd).startsWith('socket:')));
  // The process's own view of its namespace's sockets: no command to start, so a sampler can call this often.
  const udpInodes = new Set(['udp', 'udp6'].flatMap((table) => readFileSync(`/proc/${pid}/net/${table}`, 'utf8').split('\n').slice(1).map((line) => line.trim().split(/\s+/)[9]).filter((inode): inode is string => inode !== undefined)));
  const watched = new Set<number>();
  for (const fd of fds) {
    if (target(fd) !== 'anon_inode:[eventpoll]') continue;
    for (const match of readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').matchAll(/^tfd:\s+(\d+)\s/gm)) watched.add(Number(match[1]));
  }
  const udp = [...watched].filter((fd) => sockets.has(fd) && udpInodes.has(/socket:\[(\d+)\]/.exec(target(fd))?.[1] ?? '')).length;
  return { tun: watched.has(tunFds[0]!), udp };
}
