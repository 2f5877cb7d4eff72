/**
 * Who reads the packet sources (src/platform/packet-reading.ts): what
 * TSWG_MAIN_POLL's values mean, and that off the main thread the I/O thread
 * reads whatever it says (a libuv poll handle lives on the main loop only).
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { MAIN_POLL_ENV, packetReadingFromEnvironment } from '../../src/platform/packet-reading.js';
import { requireFreshDist } from '../helpers/fresh-dist.js';

describe('who reads the packet sources', () => {
  it('TSWG_MAIN_POLL: unset or empty follows the load, 1 the main thread, 0 the I/O thread, anything else is refused', () => {
    expect(packetReadingFromEnvironment(undefined)).toBe('adaptive');
    expect(packetReadingFromEnvironment('')).toBe('adaptive');
    expect(packetReadingFromEnvironment(' 1 ')).toBe('main thread');
    expect(packetReadingFromEnvironment('0')).toBe('I/O thread');
    for (const value of ['yes', '2', 'true', '-1']) expect(packetReadingFromEnvironment(value), value).toBeNull();
  });

  it('in a worker thread the I/O thread reads, even with TSWG_MAIN_POLL=1', async () => {
    requireFreshDist(['platform/packet-reading']);
    const url = new URL('../../dist/src/platform/packet-reading.js', import.meta.url).href;
    const script = `import(${JSON.stringify(url)}).then((m) => require('node:worker_threads').parentPort.postMessage(m.packetReading()))`;
    const worker = new Worker(script, { eval: true, env: { ...process.env, [MAIN_POLL_ENV]: '1' } });
    const answer = await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(answer).toBe('I/O thread');
  });
});
