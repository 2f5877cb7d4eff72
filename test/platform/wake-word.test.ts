/**
 * The wake word between the I/O thread and the main thread
 * (src/platform/wake-word.ts): a real worker thread signals, the main
 * thread's listener hears every burst, a signal that lands while the
 * listener's callback runs is not lost, and stop() ends the calls. The
 * worker runs the compiled dist/ copy, so `npm run build` must have run.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { WakeListener, WakeSignal, createWakeWord } from '../../src/platform/wake-word.js';

const BUILT = fileURLToPath(new URL('../../dist/src/platform/wake-word.js', import.meta.url));

/** A worker that waits for a go word, then signals `times` times, waiting for the main thread's ack (word 1) after each. */
function signallingWorker(wake: SharedArrayBuffer, acks: SharedArrayBuffer, times: number): Worker {
  const code = `
    const { workerData } = require('node:worker_threads');
    import(workerData.module).then(({ WakeSignal }) => {
      const signal = new WakeSignal(workerData.wake);
      const acks = new Int32Array(workerData.acks);
      for (let i = 0; i < workerData.times; i++) {
        signal.wake();
        while (Atomics.wait(acks, 0, i, 5000) === 'not-equal' && Atomics.load(acks, 0) <= i);
      }
    });`;
  return new Worker(code, { eval: true, workerData: { module: pathToFileURL(BUILT).href, wake, acks, times } });
}

describe('wake word', () => {
  it('the build is there (the worker needs it)', () => {
    expect(existsSync(BUILT)).toBe(true);
  });

  it('the main thread hears every wake-up a worker thread sends', async () => {
    const times = 200;
    const wake = createWakeWord();
    const acks = new Int32Array(new SharedArrayBuffer(4));
    let heard = 0;
    const done = new Promise<void>((resolve) => {
      const listener = new WakeListener(wake, () => {
        heard++;
        Atomics.store(acks, 0, heard);
        Atomics.notify(acks, 0);
        if (heard === times) {
          listener.stop();
          resolve();
        }
      });
    });
    const worker = signallingWorker(wake, acks.buffer as SharedArrayBuffer, times);
    await done;
    await worker.terminate();
    expect(heard).toBe(times);
  });

  it('a wake-up that lands while the callback runs brings another call', async () => {
    const wake = createWakeWord();
    const signal = new WakeSignal(wake);
    const calls: number[] = [];
    await new Promise<void>((resolve) => {
      const listener = new WakeListener(wake, () => {
        calls.push(calls.length);
        // The first call signals again from inside: the listener must come back for it.
        if (calls.length === 1) signal.wake();
        else {
          listener.stop();
          resolve();
        }
      });
      signal.wake();
    });
    expect(calls).toEqual([0, 1]);
  });

  it('after stop() no wake-up reaches the callback', async () => {
    const wake = createWakeWord();
    const signal = new WakeSignal(wake);
    let calls = 0;
    const listener = new WakeListener(wake, () => calls++);
    listener.stop();
    signal.wake();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(calls).toBe(0);
  });
});
