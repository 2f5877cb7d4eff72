/**
 * "Containers" for tests, demos and benchmarks: a real process in a network
 * namespace of its own (`unshare --net sleep`), started inside a node's
 * namespace, and commands run in its namespace through nsenter.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { run, startIn, waitUntil, type ExecOptions, type NamespaceProcess } from './netns.js';

/** How long a test container lives at most (it is stopped by the cleanup registry long before). */
const CONTAINER_LIFETIME_SECS = 3600;

function namespaceOf(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return null;
  }
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Start a container process inside `namespace` (a node's) and wait until it has its own network namespace. */
export async function startContainer(namespace: string | null, name = 'container'): Promise<NamespaceProcess> {
  const proc = startIn(namespace, 'unshare', ['--net', 'sleep', String(CONTAINER_LIFETIME_SECS)], { name });
  // unshare creates the namespace, then execs sleep: once the process is sleep, it is in its own namespace.
  await waitUntil(() => commandOf(proc.pid) === 'sleep' || !proc.running(), `${name} (pid ${proc.pid}) to enter its own network namespace`, 5000, 10);
  if (!proc.running() || namespaceOf(proc.pid) === null) throw new Error(`${name} exited early: ${proc.output()}`);
  return proc;
}

/** Run a command in a container's network namespace. */
export function execInContainer(pid: number, command: string, args: readonly string[] = [], options: ExecOptions = {}): string {
  return run('nsenter', ['-t', String(pid), '-n', command, ...args], options);
}

/** Ping `target` from inside a container, retried while handshakes happen. */
export async function pingFromContainer(pid: number, target: string, timeoutMs = 15_000): Promise<void> {
  let last = '';
  await waitUntil(
    () => {
      try {
        execInContainer(pid, 'ping', ['-c', '1', '-W', '1', '-n', target], { timeoutMs: 3000 });
        return true;
      } catch (error) {
        last = (error as Error).message;
        return false;
      }
    },
    `ping from container ${pid} → ${target} (last: ${last})`,
    timeoutMs,
    200,
  );
}

/** The links of a container's namespace as `ip -j` shows them. */
export function containerLinks(pid: number): Array<{ ifname: string; mtu: number; operstate: string }> {
  return JSON.parse(execInContainer(pid, 'ip', ['-j', 'link', 'show']) || '[]') as Array<{ ifname: string; mtu: number; operstate: string }>;
}

/** Addresses of one container interface ("10.200.64.2/26"). */
export function containerAddresses(pid: number, ifname: string): string[] {
  const entries = JSON.parse(execInContainer(pid, 'ip', ['-j', 'addr', 'show', 'dev', ifname]) || '[]') as Array<{ addr_info?: Array<{ local: string; prefixlen: number; scope: string }> }>;
  return (entries[0]?.addr_info ?? []).filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`);
}
