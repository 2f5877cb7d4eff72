/**
 * Packet AEAD on worker threads, fork-join per batch (wireguard-go's model
 * with the main thread as the sequencer): the main thread takes each
 * packet's counter and writes its header in order (Tunnel.beginSealTransport
 * / beginOpenTransport), queues the AEAD here as a job on the packet's ring
 * slot, and at the end of the batch run() wakes the workers, seals or opens
 * alongside them, and returns once every job is done. The caller then walks
 * the batch in its original order (crypto-batch.ts): packets leave, or reach
 * the replay window and the TUN device, exactly in the order they came.
 *
 * Slots must live in SharedArrayBuffers (the packet rings do); each buffer
 * is registered with the workers the first time a job names it. A worker
 * that stalls on a job past the stall timeout is terminated, its jobs are
 * abandoned (dropped, counted in `lost`), and every worker that exits is
 * replaced, with a log line. The timeout is far beyond any AEAD: a worker
 * frozen past it that thaws before its termination lands could still write
 * into the slot of its abandoned job. A worker whose thread is gone is not
 * waited for: its jobs are dropped as soon as /proc no longer lists the
 * thread, and those it had taken but not started run on this thread.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { defaultPrimitives, type Primitives, type TransportSlot } from '../noise/index.js';
import { workerScriptUrl } from '../platform/index.js';
import {
  CRYPTO_JOB_CAPACITY,
  CRYPTO_MIN_SHARED_BATCH,
  CRYPTO_WORKERS_ENV,
  CRYPTO_WORKERS_DEFAULT_MAX,
  CRYPTO_WORKERS_MIN_CORES,
  CRYPTO_WORKERS_RESERVED_CORES,
  MAX_CRYPTO_WORKERS,
  CRYPTO_MAIN_SPIN_CHECKS,
  CRYPTO_STALL_TIMEOUT_MS,
  CRYPTO_DEAD_WORKER_CHECK_MS,
  CRYPTO_WORKER_START_ATTEMPTS,
  CRYPTO_WORKER_RESOURCE_LIMITS,
  CRYPTO_WORKER_SPIN_CHECKS,
} from './constants.js';
import { ABANDONED, CLAIMED, CryptoJobTable, DONE, LIMIT, READY, STOP, createCryptoJobMemory, type CryptoJobMemory, type JobKind } from './crypto-jobs.js';
import type { CryptoWorkerData, RegionMessage } from './crypto-worker.js';
import type { Logger } from './logger.js';

export interface CryptoPoolOptions {
  workers: number;
  log: Logger;
  /** The main thread's AEAD; the workers use the default backend (TSWG_CRYPTO reaches them too). */
  primitives?: Primitives;
  /** 0: a job still running when this thread has none left to claim counts as stalled. */
  stallTimeoutMs?: number;
  /** Looks for the next batch before a worker sleeps; 0 sleeps at once. */
  workerSpinChecks?: number;
  /** Looks at the batch's progress before this thread sleeps on it (and the stall timeout starts). */
  mainSpinChecks?: number;
}

interface CryptoWorkerHandle {
  worker: Worker;
  port: MessagePort;
  online: boolean;
  /** Settles when the worker's loop runs, or it exits first. */
  started: Promise<void>;
  /** The worker's kernel thread id, once it runs (0 before, or when /proc could not tell it). */
  thread: Int32Array;
}

export class CryptoPool {
  /** Jobs a worker stalled on, dropped. */
  lost = 0;
  /** Workers that exited (or were terminated as stalled) and were replaced. */
  replaced = 0;
  /** Batches handed to the workers (smaller ones, or any with no worker running, stay on this thread). */
  sharedBatches = 0;

  private readonly log: Logger;
  private readonly primitives: Primitives;
  private readonly stallTimeoutMs: number;
  private readonly workerSpinChecks: number;
  private readonly mainSpinChecks: number;
  private readonly memory: CryptoJobMemory;
  private readonly table: CryptoJobTable;
  private readonly workers = new Map<number, CryptoWorkerHandle>();
  private readonly regions = new Map<ArrayBufferLike, number>();
  private readonly regionList: RegionMessage[] = [];
  private readonly batchSlots: (TransportSlot | null)[];
  private readonly slotOfPosition = (position: number): TransportSlot | null => this.batchSlots[(position - this.batchStart) | 0] ?? null;
  private batchStart = 0;
  private count = 0;
  private nextWorkerId = 1;
  /** Workers in a row that exited before they came online. */
  private startFailures = 0;
  private closed = false;

  constructor(options: CryptoPoolOptions) {
    this.log = options.log;
    this.primitives = options.primitives ?? defaultPrimitives;
    this.stallTimeoutMs = options.stallTimeoutMs ?? CRYPTO_STALL_TIMEOUT_MS;
    this.workerSpinChecks = options.workerSpinChecks ?? CRYPTO_WORKER_SPIN_CHECKS;
    this.mainSpinChecks = options.mainSpinChecks ?? CRYPTO_MAIN_SPIN_CHECKS;
    this.memory = createCryptoJobMemory(CRYPTO_JOB_CAPACITY);
    this.table = new CryptoJobTable(this.memory);
    this.batchSlots = new Array<TransportSlot | null>(CRYPTO_JOB_CAPACITY).fill(null);
    for (let i = 0; i < options.workers; i++) this.spawn();
  }

  /** Workers running now. */
  get size(): number {
    return this.workers.size;
  }

  /** Resolves once every worker started so far runs its loop (until then this thread does their share). */
  async ready(): Promise<void> {
    await Promise.all([...this.workers.values()].map((handle) => handle.started));
  }

  /** The running workers. */
  get threads(): Worker[] {
    return [...this.workers.values()].map((handle) => handle.worker);
  }

  /** Jobs queued in this batch. */
  get pending(): number {
    return this.count;
  }

  /** No room for another job: run() the batch first. */
  get full(): boolean {
    return this.count === this.table.capacity;
  }

  /** Can a job work on this slot? Only slots in shared memory can. */
  carries(slot: TransportSlot): boolean {
    return slot.bytes.buffer instanceof SharedArrayBuffer;
  }

  /** Where the next job's key goes: fill it (Tunnel.begin…Transport) before add(). */
  nextKey(): Uint8Array {
    return this.table.key((this.batchStart + this.count) | 0);
  }

  /** Queue the AEAD of slot.plaintext(plaintextLength) (see carries(), full). Returns its index in the batch. */
  add(kind: JobKind, slot: TransportSlot, plaintextLength: number): number {
    const bytes = slot.bytes;
    const index = this.count++;
    this.table.write((this.batchStart + index) | 0, kind, this.regionOf(bytes.buffer as SharedArrayBuffer), bytes.byteOffset, bytes.byteLength, plaintextLength);
    this.batchSlots[index] = slot;
    return index;
  }

  /**
   * Run every queued job, the workers and this thread together; returns when
   * all are done or abandoned. Then outcome(i) says how job i ended, and
   * endBatch() must follow.
   */
  run(): void {
    if (this.count === 0) return;
    const control = this.table.control;
    const limit = (this.batchStart + this.count) | 0;
    if (this.count < CRYPTO_MIN_SHARED_BATCH || this.workers.size === 0) {
      this.table.runHere(this.batchStart, limit, 0, this.primitives, this.slotOfPosition);
      return;
    }
    this.sharedBatches++;
    Atomics.store(control, LIMIT, limit);
    Atomics.notify(control, LIMIT);
    this.table.claimAndRun(0, this.primitives, this.slotOfPosition);
    let done = Atomics.load(control, DONE);
    for (let spins = this.mainSpinChecks; done !== limit && spins > 0; spins--) done = Atomics.load(control, DONE);
    if (done === limit) return;
    const deadline = performance.now() + this.stallTimeoutMs;
    for (;;) {
      const left = this.stallTimeoutMs <= 0 ? 0 : deadline - performance.now();
      if (left <= 0) {
        this.abandonStalled(limit);
        return;
      }
      Atomics.wait(control, DONE, done, Math.min(left, CRYPTO_DEAD_WORKER_CHECK_MS));
      done = Atomics.load(control, DONE);
      if (done === limit) return;
      if (this.abandonDead(limit)) {
        done = Atomics.load(control, DONE);
        if (done === limit) return;
      }
    }
  }

  /** How job `index` of the batch ended: SUCCEEDED, FORGED, ABANDONED or FAILED (crypto-jobs.ts). */
  outcome(index: number): number {
    return this.table.state((this.batchStart + index) | 0);
  }

  /** Forget the batch: wipe its keys, free its places. */
  endBatch(): void {
    const end = (this.batchStart + this.count) | 0;
    this.table.wipeKeys(this.batchStart, end);
    this.batchSlots.fill(null, 0, this.count);
    this.batchStart = end;
    this.count = 0;
  }

  /** Stop every worker; the pool runs nothing afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.table.control, STOP, 1);
    Atomics.notify(this.table.control, LIMIT);
    const handles = [...this.workers.values()];
    this.workers.clear();
    this.table.wipeKeys(0, this.table.capacity);
    await Promise.all(handles.map((handle) => handle.worker.terminate()));
  }

  private regionOf(buffer: SharedArrayBuffer): number {
    const known = this.regions.get(buffer);
    if (known !== undefined) return known;
    const region = this.regionList.length;
    const message: RegionMessage = { region, buffer };
    this.regions.set(buffer, region);
    this.regionList.push(message);
    for (const handle of this.workers.values()) handle.port.postMessage(message);
    return region;
  }

  /**
   * Drop the jobs held by workers whose threads are gone (they can write
   * nothing any more) and run here the jobs they had taken but not started.
   * True when a dead worker was found.
   */
  private abandonDead(limit: number): boolean {
    const dead = new Set<number>();
    const alive = new Set<number>();
    let abandoned = 0;
    for (let position = this.batchStart; position !== limit; position = (position + 1) | 0) {
      const state = this.table.state(position);
      if (state <= CLAIMED) continue;
      const id = state - CLAIMED;
      if (alive.has(id)) continue;
      if (!dead.has(id)) {
        if (this.threadRuns(id)) {
          alive.add(id);
          continue;
        }
        dead.add(id);
      }
      if (this.table.transition(position, state, ABANDONED)) abandoned++;
    }
    if (dead.size === 0) return false;
    Atomics.add(this.table.control, DONE, abandoned);
    this.lost += abandoned;
    this.table.runStranded(this.batchStart, limit, 0, this.primitives, this.slotOfPosition);
    this.log.error(`crypto: ${abandoned} packet(s) dropped: worker(s) ${[...dead].join(', ')} died holding them`);
    return true;
  }

  /** Does worker `id`'s thread still exist? Yes while unknown: the stall timeout decides then. */
  private threadRuns(id: number): boolean {
    const handle = this.workers.get(id);
    // Its exit was seen already: it holds nothing it could still finish.
    if (handle === undefined) return false;
    const thread = Atomics.load(handle.thread, 0);
    return thread === 0 || existsSync(`/proc/self/task/${thread}`);
  }

  /** Give up on the batch's unfinished jobs; terminate the workers that hold them. */
  private abandonStalled(limit: number): void {
    const stalled = new Set<number>();
    let abandoned = 0;
    for (let position = this.batchStart; position !== limit; position = (position + 1) | 0) {
      const state = this.table.state(position);
      if (state !== READY && state < CLAIMED) continue;
      if (!this.table.transition(position, state, ABANDONED)) continue;
      abandoned++;
      if (state > CLAIMED) stalled.add(state - CLAIMED);
    }
    Atomics.add(this.table.control, DONE, abandoned);
    this.lost += abandoned;
    this.log.error(`crypto: ${abandoned} packet(s) dropped: worker(s) ${[...stalled].join(', ') || '?'} stalled for ${this.stallTimeoutMs} ms`);
    for (const id of stalled) void this.workers.get(id)?.worker.terminate();
  }

  private spawn(): void {
    const id = this.nextWorkerId++;
    const { port1, port2 } = new MessageChannel();
    const thread = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
    const workerData: CryptoWorkerData = { id, memory: this.memory, regions: this.regionList, port: port2, spinChecks: this.workerSpinChecks, thread };
    const worker = new Worker(workerScriptUrl(import.meta.url, './crypto-worker.js'), {
      workerData,
      transferList: [port2],
      resourceLimits: CRYPTO_WORKER_RESOURCE_LIMITS,
    });
    // The worker says so on its port once its loop runs (its modules can take a while to load).
    const started = new Promise<void>((resolve) => {
      port1.once('message', () => resolve());
      worker.once('exit', () => resolve());
    });
    const handle: CryptoWorkerHandle = { worker, port: port1, online: false, started, thread: new Int32Array(thread) };
    this.workers.set(id, handle);
    void started.then(() => {
      // A pool must not keep an otherwise idle process alive (ready() waits for the start).
      worker.unref();
      port1.unref();
      if (!this.workers.has(id)) return;
      handle.online = true;
      this.startFailures = 0;
    });
    worker.on('error', (error) => this.log.error(`crypto worker ${id} failed: ${error.message}`));
    worker.once('exit', (code) => {
      port1.close();
      if (this.workers.get(id) !== handle) return;
      this.workers.delete(id);
      if (this.closed) return;
      if (!handle.online && ++this.startFailures >= CRYPTO_WORKER_START_ATTEMPTS) {
        // Workers die before they start: more would fail the same way; this thread carries their share.
        this.log.error(`crypto worker ${id} could not start (exit code ${code}), ${this.startFailures} in a row; ${this.workers.size} worker(s) left`);
        return;
      }
      this.replaced++;
      this.log.error(`crypto worker ${id} exited (code ${code}); starting another`);
      this.spawn();
    });
  }
}

/**
 * The worker count when none is configured: none below
 * CRYPTO_WORKERS_MIN_CORES cores, else every core but the main thread's and
 * the I/O thread's, up to CRYPTO_WORKERS_DEFAULT_MAX.
 */
export function defaultCryptoWorkers(cores: number = availableParallelism()): number {
  if (cores < CRYPTO_WORKERS_MIN_CORES) return 0;
  return Math.min(cores - CRYPTO_WORKERS_RESERVED_CORES, CRYPTO_WORKERS_DEFAULT_MAX);
}

/**
 * The worker count TSWG_CRYPTO_WORKERS asks for: a whole number from 0 to
 * MAX_CRYPTO_WORKERS. Anything else is logged and the default serves.
 */
export function cryptoWorkersFromEnvironment(log: Logger, value: string | undefined = process.env[CRYPTO_WORKERS_ENV], cores: number = availableParallelism()): number {
  const fallback = defaultCryptoWorkers(cores);
  if (value === undefined || value.trim() === '') return fallback;
  const text = value.trim();
  const workers = Number(text);
  if (!/^\d+$/.test(text) || workers > MAX_CRYPTO_WORKERS) {
    log.error(`${CRYPTO_WORKERS_ENV}=${value}: not a worker count from 0 to ${MAX_CRYPTO_WORKERS}; using ${fallback}`);
    return fallback;
  }
  return workers;
}
