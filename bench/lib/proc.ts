/**
 * What /proc says about a process (Linux): CPU seconds and memory of a
 * WireGuard daemon, for the end-to-end and scale benchmarks. CPU time is
 * summed over the process and its descendants, so a helper process (should
 * an implementation ever start one) is not missed; threads (tswg's TUN reader
 * worker, Go's runtime threads) are inside the process figures already.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

const CLOCK_TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** The fields of /proc/PID/stat after the command name (field 3 is index 0). */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** utime + stime of one process in seconds (0 when it is gone). */
function ownCpuSeconds(pid: number): number {
  const fields = statFields(pid);
  if (fields === null) return 0;
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** Direct children of pid (from every task's children list). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return children;
  }
  for (const task of tasks) {
    try {
      const list = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (list !== '') children.push(...list.split(' ').map(Number));
    } catch {
      // The task ended meanwhile.
    }
  }
  return children;
}

/** CPU seconds (user + system) used so far by pid and its live descendants. */
export function cpuSeconds(pid: number): number {
  let total = 0;
  const pending = [pid];
  while (pending.length > 0) {
    const next = pending.pop()!;
    total += ownCpuSeconds(next);
    pending.push(...childrenOf(next));
  }
  return total;
}

export interface MemoryFigures {
  /** Resident set now, bytes. */
  rss: number;
  /** Peak resident set since start (or since the last resetPeakRss), bytes. */
  hwm: number;
}

/** VmRSS and VmHWM of a process; throws naming the pid when it is gone. */
export function memory(pid: number): MemoryFigures {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    throw new Error(`process ${pid} is gone: cannot read its /proc/${pid}/status`);
  }
  const kib = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (match === null) throw new Error(`/proc/${pid}/status has no ${field} line`);
    return Number(match[1]) * 1024;
  };
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}

export const MIB = 1024 * 1024;
