/**
 * Where a packet batch's time goes between a reader thread and the ring's
 * consumer, measured only when TSWG_HOP_TRACE=PATH is set (off, the rings
 * carry no trace memory and pay one null check per batch). Per batch, on
 * CLOCK_MONOTONIC (the same clock on every thread):
 *
 *   woken      the reader's poll(2) returned
 *   published  the reader rang the doorbell (its reads into the ring done)
 *   drained    the consumer began the batch (the main thread's wake-up)
 *   handled    every packet handled (sealed / opened)
 *   flushed    the batch's flush returned (sendmmsg)
 *   settled    the microtasks queued meanwhile ran (TUN writes joined by GRO)
 *
 * The consumer's process writes the hops' percentiles to PATH.<pid>.json
 * every second. A lone packet (a ping) is a batch of one, so these are its
 * hops; only batches that began from a wait (not a backlog) count.
 */
import { writeFileSync } from 'node:fs';

export const HOP_TRACE_ENV = 'TSWG_HOP_TRACE';
/** Samples kept per hop: the newest, so a run after a warm-up reports only itself. */
const SAMPLES_KEPT = 1_024;
const WRITE_INTERVAL_MS = 1_000;

/** Words of a ring's trace memory: what the reader writes for the consumer. */
const WOKEN = 0;
const PUBLISHED = 1;
const TRACE_WORDS = 2;

const HOPS = ['woken→published', 'published→drained', 'drained→handled', 'handled→flushed', 'flushed→settled', 'woken→settled'] as const;

export function nowNs(): number {
  const [seconds, nanoseconds] = process.hrtime();
  return seconds * 1e9 + nanoseconds;
}

/** Where the report goes: the prefix the traced rings were made with. */
let reportPrefix: string | null = null;

/** Trace memory for a new ring when tracing is on, else null. */
export function createHopTraceMemory(): SharedArrayBuffer | null {
  const prefix = process.env[HOP_TRACE_ENV];
  if (!prefix) return null;
  reportPrefix = prefix;
  return new SharedArrayBuffer(TRACE_WORDS * Float64Array.BYTES_PER_ELEMENT);
}

/** The reader's side: stamps its poll return and its doorbell. */
export class HopTraceWriter {
  private readonly words: Float64Array;

  constructor(memory: SharedArrayBuffer) {
    this.words = new Float64Array(memory);
  }

  woken(at: number): void {
    this.words[WOKEN] = at;
  }

  /** Written before the doorbell's atomic store, so the consumer sees it with the packets. */
  published(): void {
    this.words[PUBLISHED] = nowNs();
  }
}

class Samples {
  private readonly values = new Float64Array(SAMPLES_KEPT);
  private count = 0;

  add(value: number): void {
    this.values[this.count++ % SAMPLES_KEPT] = value;
  }

  summary(): { n: number; p10: number; p50: number; p90: number } {
    const kept = Array.from(this.values.subarray(0, Math.min(this.count, SAMPLES_KEPT))).sort((a, b) => a - b);
    const at = (q: number) => (kept.length === 0 ? 0 : Math.round(kept[Math.min(kept.length - 1, Math.floor(q * kept.length))]! / 100) / 10);
    return { n: this.count, p10: at(0.1), p50: at(0.5), p90: at(0.9) };
  }
}

interface RingTrace {
  label: string;
  hops: Map<string, Samples>;
  /** Batch sizes of the traced batches. */
  packets: Samples;
}

const rings = new Map<SharedArrayBuffer, RingTrace>();

let writer: NodeJS.Timeout | null = null;

function report(): void {
  const path = reportPrefix;
  if (path === null) return;
  const document: Record<string, unknown> = { pid: process.pid, unit: 'µs (packets: count ×1000)' };
  for (const ring of rings.values()) {
    const hops: Record<string, unknown> = { packets: ring.packets.summary() };
    for (const [name, samples] of ring.hops) hops[name] = samples.summary();
    document[ring.label] = hops;
  }
  try {
    writeFileSync(`${path}.${process.pid}.json`, `${JSON.stringify(document, null, 1)}\n`);
  } catch {
    // A trace that cannot be written is no reason to disturb the data path.
  }
}

/** Names a ring in the report (the I/O thread's owner knows what feeds it). */
export function labelHopTrace(memory: SharedArrayBuffer | null, label: string): void {
  if (memory === null) return;
  const trace = rings.get(memory);
  if (trace === undefined) return;
  const same = [...rings.values()].filter((ring) => ring.label.startsWith(label)).length;
  trace.label = `${label} ${same + 1}`;
}

/** The consumer's side: one batch at a time. */
export class HopTraceReader {
  private readonly words: Float64Array;
  private readonly trace: RingTrace;
  private drained = 0;
  private handled = 0;
  private flushed = 0;
  private lastPublished = 0;

  constructor(memory: SharedArrayBuffer) {
    this.words = new Float64Array(memory);
    this.trace = { label: `ring ${rings.size + 1}`, hops: new Map(HOPS.map((hop) => [hop, new Samples()])), packets: new Samples() };
    rings.set(memory, this.trace);
    writer ??= setInterval(report, WRITE_INTERVAL_MS).unref();
  }

  begin(): void {
    this.drained = nowNs();
  }

  endHandling(): void {
    this.handled = nowNs();
  }

  endFlush(): void {
    this.flushed = nowNs();
  }

  /** The batch is done: record it once the microtasks its handling queued have run. */
  end(packets: number): void {
    const published = this.words[PUBLISHED]!;
    const woken = this.words[WOKEN]!;
    // A batch drained again without a new doorbell (a backlog) has no hops of its own.
    if (published === this.lastPublished || published > this.drained) return;
    this.lastPublished = published;
    const { drained, handled, flushed } = this;
    queueMicrotask(() => {
      const settled = nowNs();
      const values = [published - woken, drained - published, handled - drained, flushed - handled, settled - flushed, settled - woken];
      HOPS.forEach((hop, i) => this.trace.hops.get(hop)!.add(values[i]!));
      this.trace.packets.add(packets * 1000);
    });
  }
}
