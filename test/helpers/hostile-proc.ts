/**
 * /proc readers for the hostile-input and soak tests: UDP counters of a
 * process's network namespace, resident memory, open file descriptors, and a
 * tally of a daemon's log lines as they stream (not limited to the last
 * 256 KiB that NamespaceProcess.output() keeps).
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { processGone } from '../../scripts/lib/netns.js';

export interface UdpCounters {
  inDatagrams: number;
  inErrors: number;
  rcvbufErrors: number;
  noPorts: number;
}

/**
 * UDP counters of the network namespace `pid` lives in (/proc/PID/net is
 * per namespace). InDatagrams counts datagrams the application has *read*
 * (udp_recvmsg), RcvbufErrors those dropped because its buffer was full.
 */
export function udpCounters(pid: number, family: 4 | 6): UdpCounters {
  if (family === 4) {
    const lines = readFileSync(`/proc/${pid}/net/snmp`, 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('Udp: '));
    const [header, values] = lines;
    if (header === undefined || values === undefined) throw new Error(`no Udp: lines in /proc/${pid}/net/snmp`);
    const names = header.split(/\s+/).slice(1);
    const numbers = values.split(/\s+/).slice(1).map(Number);
    const get = (name: string): number => {
      const index = names.indexOf(name);
      if (index < 0) throw new Error(`/proc/${pid}/net/snmp has no Udp ${name}`);
      return numbers[index]!;
    };
    return { inDatagrams: get('InDatagrams'), inErrors: get('InErrors'), rcvbufErrors: get('RcvbufErrors'), noPorts: get('NoPorts') };
  }
  const map = new Map<string, number>();
  for (const line of readFileSync(`/proc/${pid}/net/snmp6`, 'utf8').split('\n')) {
    const [name, value] = line.trim().split(/\s+/);
    if (name !== undefined && value !== undefined) map.set(name, Number(value));
  }
  const get = (name: string): number => {
    const value = map.get(name);
    if (value === undefined) throw new Error(`/proc/${pid}/net/snmp6 has no ${name}`);
    return value;
  };
  return { inDatagrams: get('Udp6InDatagrams'), inErrors: get('Udp6InErrors'), rcvbufErrors: get('Udp6RcvbufErrors'), noPorts: get('Udp6NoPorts') };
}

export interface UdpSocketState {
  /** Bytes the socket's receive queue holds (sk_rmem_alloc, truesize). */
  rxQueue: number;
  /** Datagrams dropped for this socket since it was created. */
  drops: number;
}

/**
 * The receive queue and drop count of the UDP socket bound to `port` in the
 * network namespace of `pid` (/proc/PID/net/udp or udp6); summed over all
 * sockets on that port. Null when there is none.
 */
export function udpSocketState(pid: number, family: 4 | 6, port: number): UdpSocketState | null {
  const text = readFileSync(`/proc/${pid}/net/${family === 4 ? 'udp' : 'udp6'}`, 'utf8');
  const portHex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let sockets = 0;
  let rxQueue = 0;
  let drops = 0;
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 13 || !fields[1]!.endsWith(portHex)) continue;
    sockets++;
    rxQueue += parseInt(fields[4]!.split(':')[1]!, 16);
    drops += Number(fields.at(-1));
  }
  return sockets === 0 ? null : { rxQueue, drops };
}

/** VmRSS of `pid` in KiB. */
export function rssKiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

/** Number of open file descriptors of `pid`. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** True while `pid` exists and is not a zombie. */
export function processAlive(pid: number): boolean {
  return !processGone(pid);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of nothing');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Least-squares slope of `values` against `times` (units of values per unit of time). */
export function slope(times: readonly number[], values: readonly number[]): number {
  const n = times.length;
  const mt = times.reduce((a, b) => a + b, 0) / n;
  const mv = values.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (times[i]! - mt) * (values[i]! - mv);
    den += (times[i]! - mt) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/**
 * Counts the lines of a stream (a daemon's stderr) that match each pattern,
 * as they arrive; also keeps every line that matches `keep` (errors, stack traces).
 */
export class LogTally {
  readonly counts = new Map<string, number>();
  readonly kept: string[] = [];
  lines = 0;
  private partial = '';

  constructor(
    stream: Readable,
    private readonly patterns: Record<string, RegExp>,
    private readonly keep: RegExp = /ERROR|Error:|\bat .*\.js:\d+/,
  ) {
    for (const name of Object.keys(patterns)) this.counts.set(name, 0);
    stream.on('data', (chunk: Buffer | string) => this.feed(chunk.toString()));
  }

  count(name: string): number {
    return this.counts.get(name) ?? 0;
  }

  /** Zero all counters (kept lines stay). */
  reset(): void {
    for (const name of this.counts.keys()) this.counts.set(name, 0);
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  private feed(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      this.lines++;
      for (const [name, pattern] of Object.entries(this.patterns)) {
        if (pattern.test(line)) this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
      }
      if (this.keep.test(line) && this.kept.length < 200) this.kept.push(line);
    }
  }
}
