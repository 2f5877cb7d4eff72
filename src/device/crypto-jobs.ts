/**
 * The job table the main thread and the crypto workers share: one AEAD each
 * (seal or open in place, in a slot of a registered shared memory region),
 * claimed a few at a time. Both sides run jobs with the same code (claimAndRun), so
 * a job is sealed identically wherever it runs.
 *
 * Positions grow without end (wrapping Int32) and map onto the table modulo
 * its power-of-two capacity. The main thread publishes a batch by writing
 * its jobs and then raising LIMIT; whoever moves NEXT past a position by
 * compare-and-swap owns it, and takes it for good by moving its STATE from
 * READY to CLAIMED + its own id. A job whose owner stalls (a worker died) is
 * abandoned by the main thread, which moves its STATE to ABANDONED; the late
 * owner then loses the final compare-and-swap and leaves DONE alone, so DONE
 * counts every job exactly once.
 *
 * The key of each job is a copy made for that batch and wiped when the batch
 * is done: no session key stays in shared memory between batches.
 */
import { KEY_SIZE } from '../noise/constants.js';
import type { Primitives } from '../noise/primitives.js';
import type { TransportSlot } from '../noise/transport-slot.js';

/** Int32 words in a 64-byte cache line: words that different threads write live a line apart. */
const LINE_WORDS = 16;
/** control[LIMIT]: the end of the published jobs (a position). */
export const LIMIT = 0;
/** control[NEXT]: the next position to claim. */
const NEXT = LINE_WORDS;
/** control[DONE]: positions finished (or abandoned). */
export const DONE = 2 * LINE_WORDS;
/** control[STOP]: non-zero once the workers should leave. */
export const STOP = 3 * LINE_WORDS;
const CONTROL_WORDS = 4 * LINE_WORDS;
/** Positions one claim takes at most: fewer contended compare-and-swaps per job. */
const CLAIM_CHUNK = 4;

/** Per-job words. */
const STATE = 0;
const KIND = 1;
const REGION = 2;
const OFFSET = 3;
const SLOT_BYTES = 4;
const PLAINTEXT_LENGTH = 5;
/** One job per cache line, so threads running neighbouring jobs do not share one. */
const JOB_WORDS = LINE_WORDS;

export const JOB_SEAL = 1;
export const JOB_OPEN = 2;
export type JobKind = typeof JOB_SEAL | typeof JOB_OPEN;

/** Job states. CLAIMED + the claimer's id (the main thread is 0). */
export const READY = 1;
export const SUCCEEDED = 2;
/** An open whose tag did not verify. */
export const FORGED = 3;
/** Its claimer stalled; the main thread gave up on it. */
export const ABANDONED = 4;
/** The claimer could not run it (its slot's memory unknown there). */
const FAILED = 5;
export const CLAIMED = 16;

const NONCE_SIZE = 12;
const NONCE_COUNTER_OFFSET = 4;
/** The transport header's counter field: slot.bytes[8, 16). */
const HEADER_COUNTER_OFFSET = 8;

/** The shared memory of one table; given to each worker. */
export interface CryptoJobMemory {
  control: SharedArrayBuffer;
  jobs: SharedArrayBuffer;
  keys: SharedArrayBuffer;
  capacity: number;
}

export function createCryptoJobMemory(capacity: number): CryptoJobMemory {
  if (capacity < 1 || (capacity & (capacity - 1)) !== 0) throw new RangeError(`a crypto job table needs a power-of-two capacity, got ${capacity}`);
  return {
    control: new SharedArrayBuffer(CONTROL_WORDS * Int32Array.BYTES_PER_ELEMENT),
    jobs: new SharedArrayBuffer(capacity * JOB_WORDS * Int32Array.BYTES_PER_ELEMENT),
    keys: new SharedArrayBuffer(capacity * KEY_SIZE),
    capacity,
  };
}

export class CryptoJobTable {
  readonly control: Int32Array;
  private readonly jobs: Int32Array;
  private readonly keyBytes: Uint8Array;
  private readonly keyViews: Uint8Array[];
  readonly capacity: number;
  private readonly mask: number;
  /** This thread's nonce scratch. */
  private readonly nonce = new Uint8Array(NONCE_SIZE);

  constructor(memory: CryptoJobMemory) {
    this.control = new Int32Array(memory.control);
    this.jobs = new Int32Array(memory.jobs);
    this.keyBytes = new Uint8Array(memory.keys);
    this.capacity = memory.capacity;
    this.mask = memory.capacity - 1;
    this.keyViews = Array.from({ length: memory.capacity }, (_, i) => this.keyBytes.subarray(i * KEY_SIZE, (i + 1) * KEY_SIZE));
  }

  /** The key of the job at `position` (fill it before publishing). */
  key(position: number): Uint8Array {
    return this.keyViews[position & this.mask]!;
  }

  /** Write a job (not yet published: LIMIT still lies at or before it). */
  write(position: number, kind: JobKind, region: number, offset: number, size: number, plaintextLength: number): void {
    const at = (position & this.mask) * JOB_WORDS;
    const jobs = this.jobs;
    jobs[at + KIND] = kind;
    jobs[at + REGION] = region;
    jobs[at + OFFSET] = offset;
    jobs[at + SLOT_BYTES] = size;
    jobs[at + PLAINTEXT_LENGTH] = plaintextLength;
    Atomics.store(jobs, at + STATE, READY);
  }

  state(position: number): number {
    return Atomics.load(this.jobs, (position & this.mask) * JOB_WORDS + STATE);
  }

  /** Move a job from `from` to `to`; true when it was in `from`. */
  transition(position: number, from: number, to: number): boolean {
    return Atomics.compareExchange(this.jobs, (position & this.mask) * JOB_WORDS + STATE, from, to) === from;
  }

  /** The region, offset and size of a job's slot (read apart: a worker allocates nothing per job). */
  region(position: number): number {
    return this.jobs[(position & this.mask) * JOB_WORDS + REGION]!;
  }

  offset(position: number): number {
    return this.jobs[(position & this.mask) * JOB_WORDS + OFFSET]!;
  }

  slotSize(position: number): number {
    return this.jobs[(position & this.mask) * JOB_WORDS + SLOT_BYTES]!;
  }

  /** Zero the keys of positions [from, to). */
  wipeKeys(from: number, to: number): void {
    for (let position = from; position !== to; position = (position + 1) | 0) this.keyViews[position & this.mask]!.fill(0);
  }

  /**
   * Claim and run jobs until none is left below LIMIT. `slotAt` finds a
   * job's slot (null: its memory is unknown here). Returns jobs run.
   */
  claimAndRun(claimer: number, primitives: Primitives, slotAt: (position: number) => TransportSlot | null): number {
    const control = this.control;
    let ran = 0;
    for (;;) {
      const first = Atomics.load(control, NEXT);
      const available = (Atomics.load(control, LIMIT) - first) | 0;
      if (available <= 0) return ran;
      const end = (first + Math.min(available, CLAIM_CHUNK)) | 0;
      if (Atomics.compareExchange(control, NEXT, first, end) !== first) continue;
      let finished = 0;
      for (let position = first; position !== end; position = (position + 1) | 0) {
        if (!this.transition(position, READY, CLAIMED + claimer)) continue; // abandoned meanwhile
        const slot = slotAt(position);
        const outcome = slot === null ? FAILED : this.run(position, slot, primitives);
        ran++;
        // Abandoned while it ran: the main thread has counted it.
        if (this.transition(position, CLAIMED + claimer, outcome)) finished++;
      }
      if (finished > 0 && ((Atomics.add(control, DONE, finished) + finished - Atomics.load(control, LIMIT)) | 0) === 0) Atomics.notify(control, DONE);
    }
  }

  /**
   * Run the jobs [from, to) on this thread alone (a batch too small to share):
   * NEXT moves past them before LIMIT does, so no worker can claim one.
   */
  runHere(from: number, to: number, claimer: number, primitives: Primitives, slotAt: (position: number) => TransportSlot | null): void {
    const control = this.control;
    Atomics.store(control, NEXT, to);
    Atomics.store(control, LIMIT, to);
    for (let position = from; position !== to; position = (position + 1) | 0) {
      this.transition(position, READY, CLAIMED + claimer);
      const slot = slotAt(position);
      this.transition(position, CLAIMED + claimer, slot === null ? FAILED : this.run(position, slot, primitives));
    }
    Atomics.add(control, DONE, (to - from) | 0);
  }

  /**
   * Run here the jobs of [from, to) still READY: a claimer died after it
   * moved NEXT past them and before it took them. Each is counted in DONE
   * by whoever moves it out of READY, so a live worker that comes to one
   * later skips it. Returns jobs run.
   */
  runStranded(from: number, to: number, claimer: number, primitives: Primitives, slotAt: (position: number) => TransportSlot | null): number {
    let finished = 0;
    for (let position = from; position !== to; position = (position + 1) | 0) {
      if (!this.transition(position, READY, CLAIMED + claimer)) continue;
      const slot = slotAt(position);
      if (this.transition(position, CLAIMED + claimer, slot === null ? FAILED : this.run(position, slot, primitives))) finished++;
    }
    if (finished > 0) Atomics.add(this.control, DONE, finished);
    return finished;
  }

  /** The AEAD of one job, in place; the nonce is the counter already in the slot's header. */
  private run(position: number, slot: TransportSlot, primitives: Primitives): number {
    const at = (position & this.mask) * JOB_WORDS;
    const length = this.jobs[at + PLAINTEXT_LENGTH]!;
    const nonce = this.nonce;
    const bytes = slot.bytes;
    for (let i = 0; i < 8; i++) nonce[NONCE_COUNTER_OFFSET + i] = bytes[HEADER_COUNTER_OFFSET + i]!;
    const key = this.keyViews[position & this.mask]!;
    try {
      if (this.jobs[at + KIND] === JOB_SEAL) {
        primitives.aeadSealInPlace(key, nonce, slot.sealed(length), slot.plaintext(length));
        return SUCCEEDED;
      }
      return primitives.aeadOpenInPlace(key, nonce, slot.sealed(length), slot.plaintext(length)) ? SUCCEEDED : FORGED;
    } catch {
      return FAILED;
    }
  }
}
