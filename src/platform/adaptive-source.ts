/**
 * Packet sources whose reader follows the load. While traffic is light the
 * main thread polls the fds itself (main-poll-source.ts): a lone packet then
 * crosses no thread, which is what a ping's round trip is made of. When the
 * poll callbacks keep the main thread busy, the fds go to the I/O thread
 * (io-thread.ts), so reading overlaps with the crypto and the writes; when
 * the packets thin out again, they come back.
 *
 * A process's sources move together: the main thread's time is what is
 * measured, and it is shared by all of them. One reader per fd at any time:
 * the main thread stops polling before the I/O thread is given a source, and
 * polls again only once the I/O thread has let it go; each reader publishes
 * after what the other published, so packet order holds across a move.
 */
import { IoThread, type SourceHandlers, type SourceOptions } from './io-thread.js';
import type { SourceSpec } from './io-thread-protocol.js';
import { MainPollSource, type MainPollHandlers } from './main-poll-source.js';
import { RingDoorbell } from './packet-ring.js';
import { PlatformError } from './errors.js';

/** The main thread counts as busy when poll callbacks took this share of a window... */
const BUSY_SHARE = 0.5;
/** ...of this many milliseconds... */
const BUSY_WINDOW_MS = 20;
/** ...this many windows in a row: one slow callback (a handshake, a collection pause) fills one window at most. */
const BUSY_WINDOWS = 3;
/** On the I/O thread, fewer packets per second than this (all sources together) bring the sources back... */
const QUIET_PACKETS_PER_SECOND = 1000;
/** ...measured over windows of this many milliseconds... */
export const QUIET_WINDOW_MS = 250;
/**
 * ...in which the main thread's event loop was also busy less than this
 * share of the time: few packets that each cost much, or crypto workers'
 * results that keep it busy outside the drains, keep the sources where they are.
 */
const QUIET_SHARE = BUSY_SHARE / 2;
/** Quiet windows in a row that bring the sources back (a sender held up for one window by a busy scheduler is not a pause)... */
const QUIET_WINDOWS = 2;
/**
 * ...but sources that have to leave the main thread again within this many
 * milliseconds of coming back (the load looked light only because the I/O
 * thread carried it) need twice as many quiet windows in a row next time...
 */
const REGRET_MS = 1000;
/** ...up to this many. */
const MAX_QUIET_WINDOWS = 4;

export type ReaderPlace = 'main thread' | 'I/O thread';
/** Told of every move: where the sources are read now, and why they moved. */
export type ReaderMoveListener = (place: ReaderPlace, why: string) => void;

const moveListeners = new Set<ReaderMoveListener>();

/** Hear of every move of the process's packet reading (a daemon logs them); returns the way to stop. */
export function onReaderMoved(listener: ReaderMoveListener): () => void {
  moveListeners.add(listener);
  return () => moveListeners.delete(listener);
}

function tellMove(place: ReaderPlace, why: string): void {
  for (const listener of moveListeners) {
    try {
      listener(place, why);
    } catch {
      // A listener's failure is no reason to disturb the reading.
    }
  }
}

/** The process's adaptive sources and where they are read now. */
class Placement {
  readonly sources = new Set<AdaptiveSource>();
  place: ReaderPlace = 'main thread';
  /** Moves made so far, both ways (for tests and logs). */
  moves = 0;
  private moving = false;
  /** Set when an I/O thread died before it could take anything: the main thread keeps the sources for the process's life. */
  private ioThreadUnusable = false;
  private thread: IoThread | null = null;
  private windowStart = performance.now();
  private busyMs = 0;
  /** Busy windows in a row so far. */
  private busyWindows = 0;
  private quietTimer: NodeJS.Timeout | null = null;
  private lastCount = 0;
  private lastCheck = 0;
  /** Quiet windows in a row so far, and how many bring the sources back. */
  private quietWindows = 0;
  private quietWindowsNeeded = QUIET_WINDOWS;
  /** When the sources last came back to the main thread. */
  private returnedAt = -Infinity;
  /** The main thread's event-loop use at the last quiet check. */
  private loopUse = performance.eventLoopUtilization();

  /** A poll callback on the main thread took `milliseconds`. */
  handled(milliseconds: number): void {
    if (this.place !== 'main thread' || this.moving || this.ioThreadUnusable) return;
    this.busyMs += milliseconds;
    const now = performance.now();
    const elapsed = now - this.windowStart;
    if (elapsed < BUSY_WINDOW_MS) return;
    const busy = this.busyMs >= elapsed * BUSY_SHARE;
    this.startBusyWindow(now);
    this.busyWindows = busy ? this.busyWindows + 1 : 0;
    if (this.busyWindows < BUSY_WINDOWS) return;
    this.busyWindows = 0;
    void this.toIoThread();
  }

  private startBusyWindow(now: number): void {
    this.windowStart = now;
    this.busyMs = 0;
  }

  private stopQuietChecks(): void {
    if (this.quietTimer !== null) clearInterval(this.quietTimer);
    this.quietTimer = null;
  }

  private async toIoThread(): Promise<void> {
    this.moving = true;
    try {
      // A thread that died while it held no source is let go here; a new one is started.
      if (this.thread !== null && !this.thread.alive) this.thread = null;
      const thread = (this.thread ??= IoThread.hold());
      // The first time the thread starts up meanwhile; the main thread goes on reading until it polls.
      await thread.ready;
      if (this.thread !== thread || this.sources.size === 0) return;
      if (!thread.alive) {
        // It died starting up (not mid-read): one that cannot run here would only be started and lost at every busy spell.
        this.thread = null;
        this.ioThreadUnusable = true;
        const [first] = this.sources;
        first?.reportFailure(new PlatformError(`${thread.failure ?? 'the I/O thread stopped'}; the main thread goes on reading the packets`));
        return;
      }
      for (const source of this.sources) source.toIoThread(thread);
      this.quietWindowsNeeded = performance.now() - this.returnedAt < REGRET_MS ? Math.min(this.quietWindowsNeeded * 2, MAX_QUIET_WINDOWS) : QUIET_WINDOWS;
      this.quietWindows = 0;
      this.place = 'I/O thread';
      this.moves++;
      this.lastCount = this.publishedCount();
      this.lastCheck = performance.now();
      this.loopUse = performance.eventLoopUtilization();
      this.quietTimer = setInterval(() => this.checkQuiet(), QUIET_WINDOW_MS);
      this.quietTimer.unref();
      tellMove('I/O thread', `the poll callbacks kept the main thread busy ${BUSY_SHARE * 100} % or more in ${BUSY_WINDOWS} windows of ${BUSY_WINDOW_MS} ms in a row`);
    } catch {
      // The thread could not take the sources (it stopped or failed): they stay on the main thread.
      for (const source of this.sources) void source.toMainThread();
    } finally {
      this.moving = false;
    }
  }

  private publishedCount(): number {
    let count = 0;
    for (const source of this.sources) count += source.published;
    return count;
  }

  private checkQuiet(): void {
    if (this.place !== 'I/O thread' || this.moving) return;
    const now = performance.now();
    const count = this.publishedCount();
    const rate = (((count - this.lastCount) | 0) * 1000) / (now - this.lastCheck);
    const loopUse = performance.eventLoopUtilization();
    const loopShare = performance.eventLoopUtilization(loopUse, this.loopUse).utilization;
    this.lastCount = count;
    this.lastCheck = now;
    this.loopUse = loopUse;
    // Packets still waiting in a ring: the main thread is behind (a full ring publishes nothing, yet is anything but quiet).
    for (const source of this.sources) {
      if (source.waiting > 0) {
        this.quietWindows = 0;
        return;
      }
    }
    this.quietWindows = rate < QUIET_PACKETS_PER_SECOND && loopShare < QUIET_SHARE ? this.quietWindows + 1 : 0;
    if (this.quietWindows >= this.quietWindowsNeeded) {
      const why = `${this.quietWindows} quiet windows of ${QUIET_WINDOW_MS} ms in a row (the last: ${Math.round(rate)} packets/s, event loop ${Math.round(loopShare * 100)} % busy)`;
      void this.toMainThread(why);
    }
  }

  /** Every source back to the main thread, `why` told to the listeners (when the I/O thread was lost, it is let go). */
  async toMainThread(why: string, threadLost = false): Promise<void> {
    if (this.place !== 'I/O thread' || this.moving) return;
    this.moving = true;
    try {
      this.stopQuietChecks();
      await Promise.all([...this.sources].map((source) => source.toMainThread()));
      this.place = 'main thread';
      this.moves++;
      this.returnedAt = performance.now();
      if (threadLost) this.thread = null;
      this.startBusyWindow(performance.now());
      this.busyWindows = 0;
      tellMove('main thread', why);
    } finally {
      this.moving = false;
    }
  }

  /** A new source joins the others where they are read now. */
  add(source: AdaptiveSource): void {
    this.sources.add(source);
    if (this.place !== 'I/O thread' || this.moving || this.thread === null) return;
    try {
      source.toIoThread(this.thread);
    } catch {
      // The thread stopped meanwhile: this source stays on the main thread, the others follow at the next check.
    }
  }

  /** A source is gone; with the last one the held I/O thread is let go. */
  async remove(source: AdaptiveSource): Promise<void> {
    this.sources.delete(source);
    if (this.sources.size > 0) return;
    this.stopQuietChecks();
    this.place = 'main thread';
    const thread = this.thread;
    this.thread = null;
    await thread?.release();
  }
}

const placement = new Placement();

/** Where the adaptive sources are read now, and how often they moved (for logs and tests). */
export function adaptiveReaders(): { place: ReaderPlace; moves: number; sources: number } {
  return { place: placement.place, moves: placement.moves, sources: placement.sources.size };
}

export interface AdaptiveHandlers extends SourceHandlers {
  failed(error: unknown): void;
}

export class AdaptiveSource {
  private readonly mainPoll: MainPollSource;
  private readonly doorbell: RingDoorbell;
  /** The I/O thread and this source's id there, while it reads the source. */
  private onThread: { thread: IoThread; id: number } | null = null;
  /** A move back from the I/O thread under way (close waits for it). */
  private returning: Promise<void> | null = null;
  private closing: Promise<void> | null = null;

  constructor(
    private readonly options: SourceOptions,
    private readonly handlers: AdaptiveHandlers,
  ) {
    const pollHandlers: MainPollHandlers = {
      doorbell: () => handlers.doorbell(),
      closed: (reason) => handlers.closed(reason),
      failed: (error) => handlers.failed(error),
      handled: (milliseconds) => placement.handled(milliseconds),
    };
    this.mainPoll = new MainPollSource({ ...options, id: 0 } as SourceSpec, pollHandlers);
    this.doorbell = new RingDoorbell(options.ring);
    placement.add(this);
  }

  /** Packets published into this source's ring so far (wrapping). */
  get published(): number {
    return this.doorbell.published;
  }

  /** Packets in this source's ring that the main thread has not finished with. */
  get waiting(): number {
    return this.doorbell.waiting;
  }

  /** A failure of the process's packet reading, told through this source's owner. */
  reportFailure(error: unknown): void {
    this.handlers.failed(error);
  }

  /** Stop polling on the main thread and let the I/O thread read. */
  toIoThread(thread: IoThread): void {
    if (this.closing !== null || this.onThread !== null) return;
    this.mainPoll.suspend();
    try {
      const id = thread.add(this.options, {
        doorbell: () => this.handlers.doorbell(),
        closed: (reason) => this.handlers.closed(reason),
        threadLost: (reason) => {
          this.onThread = null;
          this.mainPoll.resume();
          this.handlers.failed(new PlatformError(`${reason}; the main thread reads the packets again`));
          void placement.toMainThread('the I/O thread was lost', true);
        },
      });
      this.onThread = { thread, id };
    } catch (error) {
      this.mainPoll.resume();
      throw error;
    }
  }

  /** Take the source back once the I/O thread has let go of it. */
  toMainThread(): Promise<void> {
    const onThread = this.onThread;
    if (onThread === null) return this.returning ?? Promise.resolve();
    this.onThread = null;
    this.returning = onThread.thread.remove(onThread.id).then(() => {
      this.returning = null;
      if (this.closing === null) this.mainPoll.resume();
    });
    return this.returning;
  }

  /** Stop reading; resolves once no reader touches the fds. */
  remove(): Promise<void> {
    this.closing ??= (async () => {
      const onThread = this.onThread;
      this.onThread = null;
      if (onThread !== null) await onThread.thread.remove(onThread.id);
      await this.returning;
      await this.mainPoll.close();
      await placement.remove(this);
    })();
    return this.closing;
  }
}
