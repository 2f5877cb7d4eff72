/**
 * Hop timing between a ring's reader and its consumer (src/platform/hop-trace.ts):
 * off unless TSWG_HOP_TRACE is set; on, every batch that began from a doorbell
 * is timed and the percentiles land in PREFIX.<pid>.json.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { HOP_TRACE_ENV, labelHopTrace, nowNs } from '../../src/platform/hop-trace.js';
import { PacketRingConsumer, PacketRingProducer, createPacketRingMemory, plainSlot } from '../../src/platform/packet-ring.js';

const directory = mkdtempSync(join(tmpdir(), 'hop-trace-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

describe('hop trace', () => {
  it('off by default: rings carry no trace memory', () => {
    vi.stubEnv(HOP_TRACE_ENV, '');
    expect(createPacketRingMemory({ headroom: 0, tailroom: 0 }).trace).toBeNull();
    vi.unstubAllEnvs();
  });

  it('on: each batch from a doorbell is timed hop by hop, backlog turns are not, and the report is written', async () => {
    const prefix = join(directory, 'trace');
    vi.stubEnv(HOP_TRACE_ENV, prefix);
    const memory = createPacketRingMemory({ headroom: 0, tailroom: 0 }, 0, 0, 8);
    vi.unstubAllEnvs();
    expect(memory.trace).not.toBeNull();
    const producer = new PacketRingProducer(memory, () => undefined);
    const consumer = new PacketRingConsumer(memory, -1, plainSlot);
    // The I/O thread's owner names the ring once the consumer has it.
    labelHopTrace(memory.trace, 'read');
    const busy = (microseconds: number) => {
      const until = nowNs() + microseconds * 1000;
      while (nowNs() < until);
    };
    for (let batch = 0; batch < 3; batch++) {
      producer.trace!.woken(nowNs());
      busy(200);
      producer.publish(10);
      producer.publish(10);
      producer.ringDoorbell();
      busy(300);
      consumer.drain(
        () => busy(100),
        () => busy(400),
      );
      // A drain with no new doorbell (nothing published) adds no sample.
      consumer.drain(
        () => undefined,
        () => undefined,
      );
      await Promise.resolve();
    }
    const file = `${prefix}.${process.pid}.json`;
    await vi.waitFor(() => expect(() => readFileSync(file)).not.toThrow(), { timeout: 3_000 });
    const report = JSON.parse(readFileSync(file, 'utf8')) as Record<string, Record<string, { n: number; p50: number }>>;
    const ring = report['read 1']!;
    expect(ring.packets).toMatchObject({ n: 3, p50: 2 });
    // Each hop took at least what the busy loops spent in it (µs), and less than the whole batch.
    expect(ring['woken→published']!.p50).toBeGreaterThanOrEqual(200);
    expect(ring['published→drained']!.p50).toBeGreaterThanOrEqual(300);
    expect(ring['drained→handled']!.p50).toBeGreaterThanOrEqual(200);
    expect(ring['handled→flushed']!.p50).toBeGreaterThanOrEqual(400);
    expect(ring['woken→settled']!.p50).toBeGreaterThanOrEqual(1100);
    expect(ring['woken→settled']!.n).toBe(3);
  });
});
