/**
 * A 60-second soak of the tswg daemon: tswg ↔ wireguard-go (scripts/lib/topology.ts)
 * with continuous traffic both ways (1 ms ping floods of 1,200-byte
 * packets from each side), `wg show` every 2 s, and tswg's resident memory sampled
 * every 2 s from /proc/PID/status.
 *
 * Memory must stay flat: the median RSS of the last 10 samples (42–60 s)
 * may exceed the median of samples 5–15 (10–30 s, after warm-up) by at most
 * min(40 MB, 50%). Medians ignore single GC spikes (V8's old space grows by
 * ~10 MB before a major GC gives it back: a sawtooth, observed over 3 minutes);
 * the windows' centres are ~30 s apart, in which tswg handles
 * ~4,000 packets/s ≈ 120,000 packets, so a
 * leak of ~0.4 KB per packet (or ~1.3 MB/s of anything) fails the test. The
 * least-squares slope after warm-up is reported as well.
 *
 * A second test floods the tunnel from A's side (iperf3 -b 0) and checks that
 * memory stays bounded when tswg cannot keep up: the TUN reader stops reading
 * and the kernel's queue drops, as wireguard-go's bounded queues do.
 *
 * Needs root; fails (never skips) without it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cleanup, leftovers, requireCommands, requireRoot, startIn, waitUntil } from '../../scripts/lib/netns.js';
import { createPair, ping, type Pair } from '../../scripts/lib/topology.js';
import { median, processAlive, rssKiB, slope } from '../helpers/hostile-proc.js';

const SOAK_SECONDS = 60;
const SAMPLE_MS = 2000;
const PAYLOAD = 1200;
const MB = 1024;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let pair: Pair | undefined;

describe('soak: tswg ↔ wireguard-go under continuous traffic', () => {
  beforeAll(async () => {
    requireRoot('the soak test');
    requireCommands('ip', 'wg', 'wireguard-go', 'ping', 'iperf3');
    pair = await createPair({ left: 'tswg', right: 'wireguard-go' });
    ping(pair.a, pair.b.inner4, 2);
    ping(pair.b, pair.a.inner4, 2);
  });

  afterAll(async () => {
    const pids = [pair?.a.process.pid, pair?.b.process.pid];
    try {
      await pair?.a.process.stop();
      await pair?.b.process.stop();
    } finally {
      cleanup();
    }
    expect(leftovers(), 'namespaces/links left behind').toEqual([]);
    for (const pid of pids) if (pid !== undefined) expect(processAlive(pid), `process ${pid} still exists`).toBe(false);
  });

  test(`${SOAK_SECONDS} s of traffic: tswg's memory stays flat and the tunnel keeps working`, async () => {
    if (pair === undefined) throw new Error('the pair was not set up (see the beforeAll failure)');
    const { a, b } = pair;
    const pid = a.process.pid;

    // Ping floods both ways (1,200-byte payloads every 1 ms, so ~4,000 packets/s through tswg):
    // ping is a sturdier load generator than iperf3 over a minute, and counts every reply.
    const floods = [
      startIn(a.namespace, 'ping', ['-n', '-q', '-i', '0.001', '-s', String(PAYLOAD), '-w', String(SOAK_SECONDS), b.inner4], { name: 'ping A→B' }),
      startIn(b.namespace, 'ping', ['-n', '-q', '-i', '0.001', '-s', String(PAYLOAD), '-w', String(SOAK_SECONDS), a.inner4], { name: 'ping B→A' }),
    ];

    const samples: { t: number; rssKiB: number }[] = [];
    const started = performance.now();
    let wgShows = 0;
    for (let i = 1; i <= SOAK_SECONDS / (SAMPLE_MS / 1000); i++) {
      const wait = started + i * SAMPLE_MS - performance.now();
      if (wait > 0) await sleep(wait);
      expect(processAlive(pid), `tswg died after ${i * 2} s:\n${a.process.output()}`).toBe(true);
      samples.push({ t: (performance.now() - started) / 1000, rssKiB: rssKiB(pid) });
      const show = a.wg('show', a.interfaceName);
      expect(show).toContain(b.keys.publicKey);
      wgShows++;
    }

    const counts = [];
    for (const flood of floods) {
      const exit = await flood.waitForExit(15_000);
      expect(exit.code === 0 || exit.code === 1, `${flood.name}:\n${flood.output()}`).toBe(true);
      const stats = /(\d+) packets transmitted, (\d+) received/.exec(flood.output());
      counts.push({ name: flood.name, transmitted: Number(stats?.[1] ?? 0), received: Number(stats?.[2] ?? 0) });
    }
    const packets = counts.reduce((sum, c) => sum + 2 * c.received, 0);

    const rss = samples.map((s) => s.rssKiB);
    const warm = median(rss.slice(4, 15));
    const late = median(rss.slice(-10));
    const allowed = Math.min(40 * MB, 0.5 * warm);
    const afterWarmUp = samples.slice(4);
    const mbPerMinute = (slope(afterWarmUp.map((s) => s.t), afterWarmUp.map((s) => s.rssKiB)) * 60) / MB;
    console.log(
      `soak: RSS samples (MB, every 2 s): ${rss.map((k) => (k / MB).toFixed(1)).join(' ')}\n` +
        `warm-up median (samples 5-15) ${(warm / MB).toFixed(1)} MB, last-10 median ${(late / MB).toFixed(1)} MB, ` +
        `growth ${((late - warm) / MB).toFixed(1)} MB (allowed ${(allowed / MB).toFixed(1)} MB), slope after warm-up ${mbPerMinute.toFixed(2)} MB/min, max ${(Math.max(...rss) / MB).toFixed(1)} MB\n` +
        `traffic: ${counts.map((c) => `${c.name} ${c.received}/${c.transmitted}`).join(', ')}; ` +
        `~${packets} packets through tswg (${(packets / SOAK_SECONDS).toFixed(0)}/s); ${wgShows} wg show calls`,
    );

    // The traffic really flowed, all the way through: most echoes came back, in both directions.
    for (const c of counts) {
      expect(c.transmitted, `${c.name} sent`).toBeGreaterThan(SOAK_SECONDS * 500);
      expect(c.received, `${c.name} replies`).toBeGreaterThan(c.transmitted / 2);
    }

    // Flat memory.
    expect(samples.length).toBe(SOAK_SECONDS / 2);
    expect(late - warm, `RSS grew from ${warm} KiB to ${late} KiB`).toBeLessThanOrEqual(allowed);

    // Still alive, still carrying traffic.
    expect(a.process.running(), `tswg died:\n${a.process.output()}`).toBe(true);
    ping(a, b.inner4, 3);
    ping(b, a.inner4, 3);
    ping(b, a.inner6, 3);
    expect(a.process.output(), "errors in tswg's log").not.toMatch(/ERROR/);
  }, 120_000);

  test('traffic into the tunnel faster than tswg can encrypt: memory stays bounded (packets are dropped, not queued)', async () => {
    if (pair === undefined) throw new Error('the pair was not set up (see the beforeAll failure)');
    const { a, b } = pair;
    const pid = a.process.pid;
    const FLOOD_SECONDS = 6;
    const before = rssKiB(pid);
    const server = startIn(b.namespace, 'iperf3', ['-s', '-1', '--forceflush', '-B', b.inner4, '-p', '5202'], { name: 'iperf3 server (flood)' });
    await waitUntil(() => /Server listening/.test(server.output()) || !server.running(), 'the iperf3 server', 10_000);
    // Unlimited UDP from A's kernel into tswg's TUN device, towards wireguard-go.
    const client = startIn(a.namespace, 'iperf3', ['-c', b.inner4, '-p', '5202', '-u', '-b', '0', '-l', '1400', '-t', String(FLOOD_SECONDS + 30), '-i', '0'], {
      name: 'iperf3 client (flood)',
    });
    const pinger = startIn(b.namespace, 'ping', ['-n', '-i', '0.2', '-W', '30', '-w', String(FLOOD_SECONDS + 2), a.inner4], { name: 'ping during the TUN flood' });
    let peak = before;
    const started = performance.now();
    while (performance.now() - started < FLOOD_SECONDS * 1000) {
      await sleep(500);
      peak = Math.max(peak, rssKiB(pid));
    }
    await client.stop();
    await pinger.waitForExit(40_000).catch(() => pinger.stop());
    await server.stop();
    // The backlog drains; then the tunnel works again.
    const drainStart = performance.now();
    await waitUntil(
      () => {
        try {
          a.exec('ping', ['-c', '1', '-W', '1', b.inner4]);
          return true;
        } catch {
          return false;
        }
      },
      'the tunnel to carry a ping again after the flood',
      60_000,
      200,
    );
    const drained = (performance.now() - drainStart) / 1000;
    const pingSummary = /(\d+) packets transmitted, (\d+) received/.exec(pinger.output());
    console.log(
      `TUN flood (${FLOOD_SECONDS} s of iperf3 -u -b 0 from A): tswg RSS ${(before / MB).toFixed(1)} MB before, peak ${(peak / MB).toFixed(1)} MB; ` +
        `ping B→A (every 0.2 s, during the flood and 2 s after): ${pingSummary?.[2] ?? '?'} of ${pingSummary?.[1] ?? '?'} answered; ` +
        `the tunnel carried a ping again ${drained.toFixed(1)} s after the flood stopped`,
    );
    expect(a.process.running()).toBe(true);
    expect(peak - before, `RSS grew from ${before} KiB to ${peak} KiB in ${FLOOD_SECONDS} s`).toBeLessThanOrEqual(40 * MB);
  }, 120_000);
});
