/**
 * How the I/O thread wakes the main thread when packets are waiting: one
 * shared Int32 counter that the thread bumps and notifies (Atomics.notify),
 * and that the main thread waits on with Atomics.waitAsync. A wake-up then
 * costs a futex wake and a resolved promise, not a postMessage with its
 * serialized message, port queue and 'message' event: that hand-off sat on
 * every packet batch's path twice per tunnel crossing, so it was most of
 * the extra round-trip time a lone packet (a ping) saw.
 *
 * The word says only "look": the main thread then asks each source whether
 * its ring rang (its DOORBELL word), so one wake-up serves every source.
 */

type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
/** Atomics.waitAsync (ES2024; Node has it, the ES2022 library types do not). */
const waitAsync = (Atomics as unknown as { waitAsync(array: Int32Array, index: number, value: number): WaitAsyncResult }).waitAsync;

/** Index of the counter in the wake word's buffer. */
const WAKE_COUNT = 0;

export function createWakeWord(): SharedArrayBuffer {
  return new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
}

/** The I/O thread's side: wake the main thread (cheap when nobody waits). */
export class WakeSignal {
  private readonly word: Int32Array;

  constructor(buffer: SharedArrayBuffer) {
    this.word = new Int32Array(buffer);
  }

  wake(): void {
    Atomics.add(this.word, WAKE_COUNT, 1);
    Atomics.notify(this.word, WAKE_COUNT);
  }
}

/**
 * The main thread's side: calls `woken` after every wake-up, until stop().
 * A wake that lands while `woken` runs is not lost: the counter moved, so
 * the next wait returns at once and `woken` runs again.
 */
export class WakeListener {
  private readonly word: Int32Array;
  private seen: number;
  private stopped = false;

  constructor(
    buffer: SharedArrayBuffer,
    private readonly woken: () => void,
  ) {
    this.word = new Int32Array(buffer);
    this.seen = Atomics.load(this.word, WAKE_COUNT);
    this.wait();
  }

  private wait(): void {
    if (this.stopped) return;
    const result = waitAsync(this.word, WAKE_COUNT, this.seen);
    // "not-equal": the counter moved before we waited; look in the next turn, so a busy thread cannot starve the loop.
    if (result.async) void result.value.then(() => this.wakeUp());
    else setImmediate(() => this.wakeUp());
  }

  private wakeUp(): void {
    try {
      if (this.stopped) return;
      this.seen = Atomics.load(this.word, WAKE_COUNT);
      this.woken();
    } finally {
      this.wait();
    }
  }

  /** No more calls; the pending wait is released so nothing keeps it. */
  stop(): void {
    this.stopped = true;
    Atomics.notify(this.word, WAKE_COUNT);
  }
}
