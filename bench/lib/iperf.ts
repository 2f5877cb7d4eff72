/**
 * iperf3 and ping through a tunnel, run as namespace processes (registered
 * with the netns cleanup registry, so an interrupted run leaves none), with
 * their JSON / text output reduced to the figures the end-to-end table shows.
 */
import { startIn, waitUntil, execIn, type NamespaceProcess } from '../../scripts/lib/netns.js';
import { BENCH_PING_REPLY_WAIT_SECONDS, IPERF3_OMIT_SECONDS, IPERF3_PORT, IPERF3_SERVER_START_SECONDS } from '../constants.js';
import { iperf3TimeLimitMs, pingTimeLimitMs } from './time-limits.js';

export interface Iperf3Test {
  protocol: 'tcp' | 'udp';
  /** Parallel streams (-P). */
  streams: number;
  /** true: the server (right side) sends (-R). */
  reverse: boolean;
  /** UDP payload bytes (-l); unused for TCP. */
  udpLength?: number;
  /** TCP: a target rate in Mbit/s (-b), to load without saturating the machine; absent = as fast as it goes. */
  tcpMbit?: number;
  /** false: no per-second reports (-i 0), so a long test's JSON stays small (captured output is bounded). */
  intervals?: boolean;
}

export interface Iperf3Result {
  /** Receiver's goodput. */
  mbitPerSecond: number;
  /** UDP: datagrams the receiver got per second, and the share lost; null for TCP. */
  receivedPacketsPerSecond: number | null;
  lossPercent: number | null;
  /** UDP: datagrams the sender handed to its socket; null for TCP. */
  sentPackets: number | null;
}

/** A persistent iperf3 server on `address` in `namespace`; restart() after a client failed mid-test. */
export class Iperf3Server {
  private process: NamespaceProcess | null = null;

  constructor(
    private readonly namespace: string,
    private readonly address: string,
  ) {}

  async start(): Promise<void> {
    this.process = startIn(this.namespace, 'iperf3', ['-s', '-B', this.address, '-p', String(IPERF3_PORT)], { name: `iperf3 server ${this.namespace}` });
    await waitUntil(() => this.listening() || !this.process!.running(), `iperf3 server on ${this.address} in ${this.namespace}`, IPERF3_SERVER_START_SECONDS * 1000, 50);
    if (!this.process.running()) throw new Error(`iperf3 server in ${this.namespace} exited:\n${this.process.output()}`);
  }

  async restart(): Promise<void> {
    await this.process?.stop(500);
    await this.start();
  }

  private listening(): boolean {
    return execIn(this.namespace, 'ss', ['-Hltn', `sport = :${IPERF3_PORT}`]).trim() !== '';
  }
}

interface Iperf3Sum {
  bits_per_second?: number;
  bytes?: number;
  packets?: number;
  seconds?: number;
}

interface Iperf3Json {
  error?: string;
  end?: { sum_sent?: Iperf3Sum; sum_received?: Iperf3Sum };
}

function parseJson(output: string, what: string): Iperf3Json {
  const start = output.indexOf('{');
  const end = output.lastIndexOf('}');
  if (start < 0 || end < start) throw new Error(`${what}: no JSON in iperf3's output:\n${output.slice(-2000)}`);
  return JSON.parse(output.slice(start, end + 1)) as Iperf3Json;
}

/** Run one iperf3 client test from `namespace` to `server`; throws with iperf3's own message on failure. */
export async function runIperf3(namespace: string, server: string, test: Iperf3Test, seconds: number): Promise<Iperf3Result> {
  const args = ['-c', server, '-p', String(IPERF3_PORT), '-t', String(seconds), '-J', '-P', String(test.streams)];
  if (test.reverse) args.push('-R');
  if (test.intervals === false) args.push('-i', '0');
  // UDP loss is counted from the whole test's totals, so only TCP leaves out its first second.
  if (test.protocol === 'udp') args.push('-u', '-b', '0', '-l', String(test.udpLength));
  else args.push('-O', String(IPERF3_OMIT_SECONDS), ...(test.tcpMbit === undefined ? [] : ['-b', `${test.tcpMbit}M`]));
  const what = `iperf3 ${args.join(' ')}`;
  const client = startIn(namespace, 'iperf3', args, { name: 'iperf3 client' });
  const status = await client.waitForExit(iperf3TimeLimitMs(seconds)).catch(async (error: unknown) => {
    await client.stop(500);
    throw new Error(`${what} did not finish: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
  });
  const json = parseJson(client.output(), what);
  if (json.error !== undefined || status.code !== 0) throw new Error(`${what} failed: ${json.error ?? `exit status ${status.code}`}`);
  const sent = json.end?.sum_sent;
  const received = json.end?.sum_received;
  if (received?.bits_per_second === undefined || received.bytes === undefined || received.seconds === undefined) {
    throw new Error(`${what}: no end.sum_received in the JSON`);
  }
  if (test.protocol === 'tcp') return { mbitPerSecond: received.bits_per_second / 1e6, receivedPacketsPerSecond: null, lossPercent: null, sentPackets: null };
  // UDP: iperf3's own lost_packets counts only up to the highest sequence number the receiver saw
  // (in -R mode it misses the tail), so count datagrams by bytes received against datagrams sent.
  if (sent?.packets === undefined || sent.packets === 0) throw new Error(`${what}: no end.sum_sent.packets in the JSON`);
  const receivedPackets = received.bytes / test.udpLength!;
  return {
    mbitPerSecond: received.bits_per_second / 1e6,
    receivedPacketsPerSecond: receivedPackets / received.seconds,
    lossPercent: Math.max(0, 100 * (1 - receivedPackets / sent.packets)),
    sentPackets: sent.packets,
  };
}

export interface PingResult {
  rttsMs: number[];
  sent: number;
}

/**
 * `ping -c count -i interval` from `namespace` (null: here); RTTs of the
 * replies (a lost reply is simply missing). A run still going after its time
 * limit (default: time-limits.ts, from count and interval) is stopped and
 * rejected in one line, so the caller counts it as a failed sample.
 */
export async function runPing(namespace: string | null, target: string, count: number, intervalSeconds: number, timeLimitMs = pingTimeLimitMs(count, intervalSeconds)): Promise<PingResult> {
  const args = ['-n', '-c', String(count), '-i', String(intervalSeconds), '-W', String(BENCH_PING_REPLY_WAIT_SECONDS), target];
  const ping = startIn(namespace, 'ping', args, { name: 'ping' });
  await ping.waitForExit(timeLimitMs).catch(async () => {
    await ping.stop(500);
    const replies = ping.output().match(/time=/g)?.length ?? 0;
    throw new Error(`ping ${args.join(' ')} did not finish within ${(timeLimitMs / 1000).toFixed(1)} s (${replies}/${count} replies by then)`);
  });
  const rttsMs = [...ping.output().matchAll(/time=([\d.]+) ms/g)].map((match) => Number(match[1]));
  return { rttsMs, sent: count };
}
