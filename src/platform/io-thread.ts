/**
 * The owner's side of the I/O thread (io-worker.ts): one per process,
 * started with its first packet source (or when held) and stopped with its
 * last source once nobody holds it, so an idle process can exit. A source is a fd (or UDP sockets) and the packet ring
 * its packets go to; the owner hears a doorbell when packets are waiting
 * (through the wake word, wake-word.ts) and `closed` when the source failed
 * for good. remove() resolves once the thread no longer touches the fds, so
 * they may be closed then.
 */
import { Worker } from 'node:worker_threads';
import { PlatformError } from './errors.js';
import { COMMANDS_SENT, type Command, type IoWorkerData, type Report, type SourceSpec } from './io-thread-protocol.js';
import { O_CLOEXEC, O_NONBLOCK, lastErrno, loadLibc } from './libc.js';
import { RingDoorbell, type PacketRingMemory } from './packet-ring.js';
import { WakeListener, createWakeWord } from './wake-word.js';
import { labelHopTrace } from './hop-trace.js';
import { IO_THREAD_RESOURCE_LIMITS, workerScriptUrl } from './worker-script.js';

export interface SourceHandlers {
  /** Packets are waiting in the source's ring. */
  doorbell(): void;
  /** The source is gone for good (its device deleted, its socket failed); `reason` says how. */
  closed(reason: string): void;
  /** The thread itself failed while reading the source (the source is fine); without this, `closed` hears it. */
  threadLost?(reason: string): void;
}

/** A source as its owner describes it (the thread assigns ids). */
export type SourceOptions = { kind: 'read'; fd: number; ring: PacketRingMemory; headerSize: number } | { kind: 'recvmmsg'; fds: number[]; ring: PacketRingMemory; counters: SharedArrayBuffer; coalescing: boolean };

export class IoThread {
  private static current: IoThread | null = null;

  private readonly worker: Worker;
  private readonly wakeFds = new Int32Array(2);
  private readonly control = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  private readonly handlers = new Map<number, SourceHandlers>();
  private readonly doorbells = new Map<number, RingDoorbell>();
  private readonly wake: WakeListener;
  private readonly removals = new Map<number, () => void>();
  private readonly exited: Promise<void>;
  private stopping: Promise<void> | null = null;
  private nextId = 1;
  /** hold() calls not yet released: while any, the thread stays even with no source. */
  private holds = 0;
  private failedWith: string | null = null;
  /** Resolves once the thread polls (its modules loaded), or has failed. */
  readonly ready: Promise<void>;
  private markReady: () => void = () => undefined;

  /** Add a source to the process's I/O thread (starting it if needed). Returns the source's id. */
  static add(options: SourceOptions, handlers: SourceHandlers): { thread: IoThread; id: number } {
    labelHopTrace(options.ring.trace, options.kind === 'read' ? 'read' : 'recvmmsg');
    const thread = IoThread.current;
    if (thread !== null) return { thread, id: thread.add(options, handlers) };
    const started = new IoThread(options, handlers);
    IoThread.current = started;
    return { thread: started, id: 1 };
  }

  /**
   * Keep the process's I/O thread running (starting it if needed) even while
   * it has no source, until release(): for owners that hand sources to it
   * and take them back, so each hand-over does not start a thread anew.
   */
  static hold(): IoThread {
    const thread = IoThread.current ?? new IoThread(null, null);
    IoThread.current = thread;
    thread.holds++;
    return thread;
  }

  /** The end of one hold(): with no hold and no source left, the thread stops. */
  release(): Promise<void> {
    if (this.holds > 0) this.holds--;
    return this.holds === 0 && this.handlers.size === 0 ? this.stop() : Promise.resolve();
  }

  private constructor(first: SourceOptions | null, handlers: SourceHandlers | null) {
    const libc = loadLibc();
    if (libc.pipe2(this.wakeFds, O_CLOEXEC | O_NONBLOCK) !== 0) throw new PlatformError(`cannot create a pipe for the I/O thread: ${lastErrno().code}`);
    const sources: SourceSpec[] = [];
    if (first !== null && handlers !== null) {
      const id = this.nextId++;
      this.handlers.set(id, handlers);
      this.doorbells.set(id, new RingDoorbell(first.ring));
      sources.push({ ...first, id } as SourceSpec);
    }
    const wake = createWakeWord();
    const workerData: IoWorkerData = { wakeFd: this.wakeFds[0]!, control: this.control.buffer as SharedArrayBuffer, wake, sources };
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    this.worker = new Worker(workerScriptUrl(import.meta.url, './io-worker.js'), { workerData, resourceLimits: IO_THREAD_RESOURCE_LIMITS });
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.on('message', (message: Report) => this.receive(message));
    this.worker.on('error', (error) => this.fail(`the I/O thread failed: ${error.message}`));
    this.worker.once('exit', () => this.fail('the I/O thread exited'));
    this.wake = new WakeListener(wake, () => this.ringDoorbells());
  }

  /** A wake-up: every source whose ring rang hears its doorbell. */
  private ringDoorbells(): void {
    for (const [id, doorbell] of this.doorbells) if (doorbell.rung) this.handlers.get(id)?.doorbell();
  }

  private forget(id: number): void {
    this.handlers.delete(id);
    this.doorbells.delete(id);
  }

  /** Why the thread failed or exited (null while it runs). */
  get failure(): string | null {
    return this.failedWith;
  }

  /** False once the thread has stopped or failed: it takes no more sources. */
  get alive(): boolean {
    return this.stopping === null;
  }

  /** Hand one more source to this thread; throws once the thread has stopped or failed. */
  add(options: SourceOptions, handlers: SourceHandlers): number {
    if (!this.alive) throw new PlatformError('the I/O thread has stopped');
    const id = this.nextId++;
    this.handlers.set(id, handlers);
    this.doorbells.set(id, new RingDoorbell(options.ring));
    this.send({ add: { ...options, id } as SourceSpec });
    return id;
  }

  /** Stop reading a source; resolves when the thread no longer touches its fds (the last one stops the thread unless it is held). */
  async remove(id: number): Promise<void> {
    const known = this.handlers.has(id);
    this.forget(id);
    const last = this.handlers.size === 0 && this.holds === 0;
    // The last source needs no removal of its own: the thread's exit lets go of every fd.
    if (known && !last && this.stopping === null) {
      await new Promise<void>((resolve) => {
        this.removals.set(id, resolve);
        this.send({ remove: id });
      });
    }
    if (this.handlers.size === 0 && this.holds === 0) await this.stop();
  }

  /** End the thread (so an idle process can exit); resolves once it is gone. */
  private stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (IoThread.current === this) IoThread.current = null;
      this.wake.stop();
      this.send({ stop: true });
      await this.exited;
      for (const fd of this.wakeFds) loadLibc().close(fd);
    })();
    return this.stopping;
  }

  private send(command: Command): void {
    Atomics.add(this.control, COMMANDS_SENT, 1);
    this.worker.postMessage(command);
    loadLibc().write(this.wakeFds[1]!, Uint8Array.of(1), 1);
  }

  private receive(message: Report): void {
    if ('ready' in message) this.markReady();
    else if ('closed' in message) {
      const handlers = this.handlers.get(message.closed);
      this.forget(message.closed);
      if (this.handlers.size === 0 && this.holds === 0) void this.stop();
      handlers?.closed(message.reason);
    } else {
      this.removals.get(message.removed)?.();
      this.removals.delete(message.removed);
    }
  }

  /** The thread is gone: every source hears of it, every pending removal is done. */
  private fail(reason: string): void {
    this.failedWith ??= reason;
    if (IoThread.current === this) IoThread.current = null;
    this.markReady();
    this.wake.stop();
    if (this.stopping === null) {
      this.stopping = Promise.resolve();
      for (const fd of this.wakeFds) loadLibc().close(fd);
    }
    for (const resolve of this.removals.values()) resolve();
    this.removals.clear();
    const handlers = [...this.handlers.values()];
    this.handlers.clear();
    this.doorbells.clear();
    for (const handler of handlers) (handler.threadLost ?? handler.closed).call(handler, reason);
  }
}
