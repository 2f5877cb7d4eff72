/**
 * The packet reader following the load while crypto workers do the sealing
 * and opening (TSWG_CRYPTO_WORKERS=2): their results come back as messages,
 * outside the poll callbacks whose time decides the moves, so this is where
 * a reader that stays put, or one that moves back and forth, would show.
 * Two tswg daemons in namespaces: pings, an iperf3 TCP run each way (which
 * thread polls the busy side's fds is sampled meanwhile), pings again, and
 * once idle the main thread polls every fd again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, requireCommands, requireRoot } from '../../scripts/lib/netns.js';
import { createPair, ping, type Pair, type WgNode } from '../../scripts/lib/topology.js';
import { destroyPair, runIperf } from '../helpers/device-interop.js';
import { mainLoopWatches } from '../helpers/main-loop-watches.js';

const IPERF_SECONDS = 4;
const SAMPLE_MS = 100;
/** How long after the run the main thread must be polling every fd again (the quiet windows, with a loaded machine's slack). */
const BACK_WITHIN_MS = 5_000;

/** Which thread reads `node`'s TUN fd and UDP sockets now: 'm' the main thread's loop, 'i' not (the I/O thread). */
function placeOf(node: WgNode): string {
  const watched = mainLoopWatches(node);
  return `${watched.tun ? 'm' : 'i'}${watched.udp === 2 ? 'm' : watched.udp === 0 ? 'i' : '?'}`;
}

/** Changes of place in a series of samples (one change is one move). */
function changes(samples: string[]): number {
  let count = 0;
  for (let i = 1; i < samples.length; i++) if (samples[i] !== samples[i - 1]) count++;
  return count;
}

async function polledByMainAgain(node: WgNode): Promise<void> {
  for (let waited = 0; placeOf(node) !== 'mm'; waited += SAMPLE_MS) {
    if (waited > BACK_WITHIN_MS) throw new Error(`${node.interfaceName}: the main loop does not poll every fd again ${BACK_WITHIN_MS} ms after the run (${placeOf(node)})`);
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
  }
}

describe('two tswg daemons, the reader following the load, TSWG_CRYPTO_WORKERS=2', () => {
  let pair: Pair | undefined;
  const setUp = (): Pair => {
    if (pair === undefined) throw new Error('the pair was not set up (see the beforeAll failure)');
    return pair;
  };

  beforeAll(async () => {
    requireRoot('test/tun/adaptive-crypto-workers.test.ts (two tswg daemons in namespaces)');
    requireCommands('wg', 'ip', 'iperf3', 'ping');
    pair = await createPair({ left: 'tswg', right: 'tswg', env: { TSWG_MAIN_POLL: '', TSWG_CRYPTO_WORKERS: '2', LOG_LEVEL: 'verbose' } });
    ping(pair.a, pair.b.inner4, 2);
  });
  afterAll(async () => {
    if (pair !== undefined) await destroyPair(pair);
    cleanup();
  });

  it('idle: the crypto workers run, the main thread polls every fd, and pings pass both ways', () => {
    const { a, b } = setUp();
    for (const node of [a, b]) expect(node.process.output(), node.interfaceName).toContain('packet crypto on 2 worker thread(s)');
    expect(placeOf(a)).toBe('mm');
    expect(placeOf(b)).toBe('mm');
    ping(a, b.inner4, 5);
    ping(b, a.inner6, 5);
  });

  for (const direction of ['a → b over IPv4', 'b → a over IPv6'] as const) {
    it(`iperf3 TCP ${direction}: data moves, the busy side's reading moves at most a few times, and comes back once idle`, async () => {
      const p = setUp();
      const reverse = direction.startsWith('b');
      const [sender, receiver] = reverse ? [p.b, p.a] : [p.a, p.b];
      const samples = { sender: [] as string[], receiver: [] as string[] };
      const sampler = setInterval(() => {
        samples.sender.push(placeOf(sender));
        samples.receiver.push(placeOf(receiver));
      }, SAMPLE_MS);
      let run;
      try {
        run = await runIperf(p.b, p.a, reverse ? p.b.inner6 : p.b.inner4, ['-t', String(IPERF_SECONDS), ...(reverse ? ['-R'] : [])]);
      } finally {
        clearInterval(sampler);
      }
      const bitsPerSecond = run.report.end.sum_received?.bits_per_second ?? 0;
      const report = `${(bitsPerSecond / 1e6).toFixed(0)} Mbit/s; sender ${samples.sender.join(' ')}; receiver ${samples.receiver.join(' ')}`;
      console.log(`TSWG_CRYPTO_WORKERS=2, iperf3 ${direction}: ${report}`);
      expect(run.report.error, `iperf3 ${direction}`).toBeUndefined();
      expect(bitsPerSecond, `throughput (${report})`).toBeGreaterThan(0);
      // Ten a second when the machine is quiet; a loaded one delays the sampler's timer.
      expect(samples.sender.length, 'samples taken during the run').toBeGreaterThanOrEqual(IPERF_SECONDS * 3);
      expect(samples.sender.some((place) => place !== 'mm') || samples.receiver.some((place) => place !== 'mm'), `a busy side's fds left its main loop (${report})`).toBe(true);
      // A move costs a hand-over each way; under a steady load it should happen once, not every quiet window.
      const perSecond = (changes(samples.sender) + changes(samples.receiver)) / IPERF_SECONDS;
      expect(perSecond, `changes of place per second, both sides together (${report})`).toBeLessThanOrEqual(1);
      await polledByMainAgain(sender);
      await polledByMainAgain(receiver);
      // A side whose reading moved said so in its verbose log, both ways, with the reason.
      for (const [node, places] of [[sender, samples.sender], [receiver, samples.receiver]] as const) {
        if (places.every((place) => place === 'mm')) continue;
        const output = node.process.output();
        expect(output, node.interfaceName).toMatch(/packet reading moved to the I\/O thread: the poll callbacks kept the main thread busy/);
        expect(output, node.interfaceName).toMatch(/packet reading moved to the main thread: \d+ quiet windows/);
      }
      ping(p.a, p.b.inner4, 3);
      ping(p.b, p.a.inner6, 3);
    });
  }
});
