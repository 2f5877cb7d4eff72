/**
 * A packet source the main thread polls itself (TSWG_MAIN_POLL=1): a libuv
 * poll handle per fd (uv-poll.ts) on the main thread's own loop; when one is
 * readable the callback reads a batch into the source's ring with the same
 * reader the I/O thread uses (source-reader.ts) and runs the owner's drain at
 * once. A lone packet then crosses no thread: no I/O-thread wake-up and no
 * main-thread wake-up between the kernel and its handler.
 *
 * One batch per callback, so the loop stays fair; level-triggered polling
 * calls again next turn when more waits. A full ring stops the handles for
 * RING_FULL_POLL_MS (the kernel queue fills and drops, as with the I/O thread).
 */
import { labelHopTrace, nowNs } from './hop-trace.js';
import type { SourceSpec } from './io-thread-protocol.js';
import { RingDoorbell } from './packet-ring.js';
import { RING_FULL_POLL_MS, openSourceReader, type SourceReader } from './source-reader.js';
import { UvPoll, UV_DISCONNECT, UV_READABLE } from './uv-poll.js';
import { settleNow } from './settle-now.js';
import { errorMessage } from './error-message.js';

export interface MainPollHandlers {
  /** Packets are waiting in the source's ring (called from the poll callback itself). */
  doorbell(): void;
  /** The source is gone for good; `reason` says how. */
  closed(reason: string): void;
  /** A handler threw inside a poll callback: caught here, counted, the source keeps running. */
  failed(error: unknown): void;
  /** After each callback: how long it kept the main thread (ms) and the packets it read. */
  handled?(milliseconds: number, packets: number): void;
}

/** Callback errors caught over the process's life (a handler threw), for logs and tests. */
let callbackErrors = 0;
export function mainPollCallbackErrors(): number {
  return callbackErrors;
}

export class MainPollSource {
  private readonly reader: SourceReader;
  private readonly doorbell: RingDoorbell;
  private readonly polls: UvPoll[] = [];
  private readonly tracing: boolean;
  private resumeTimer: NodeJS.Timeout | null = null;
  /** Another reader has the fds for now (suspend / resume). */
  private suspended = false;
  private done = false;
  private closing: Promise<void> | null = null;

  constructor(
    private readonly spec: SourceSpec,
    private readonly handlers: MainPollHandlers,
  ) {
    labelHopTrace(spec.ring.trace, spec.kind === 'read' ? 'read' : 'recvmmsg');
    this.tracing = spec.ring.trace !== null;
    // The consumer is on this thread: the doorbell word alone says "drain", no wake-up needed.
    this.reader = openSourceReader(spec, () => undefined, true);
    this.doorbell = new RingDoorbell(spec.ring);
    try {
      for (const fd of this.reader.fds) {
        const poll = new UvPoll(
          fd,
          (status, events) => this.ready(poll, status, events),
          (error) => this.failed(error),
        );
        this.polls.push(poll);
        poll.start();
      }
    } catch (error) {
      void this.close();
      throw error;
    }
  }

  private failed(error: unknown): void {
    callbackErrors++;
    this.handlers.failed(error);
  }

  private ready(poll: UvPoll, status: number, events: number): void {
    if (this.done) return;
    const isTun = this.spec.kind === 'read';
    if (status < 0 || ((events & UV_READABLE) === 0 && (events & UV_DISCONNECT) !== 0)) {
      // A TUN fd reports its interface's deletion this way; a UDP socket's error is a queued ICMP error, read below.
      if (isTun) return this.end(`the interface is gone (poll status ${status})`);
      // libuv stopped the handle on the error: watch again once the read below has taken the error.
      if (!poll.started) setImmediate(() => this.restart(poll));
    }
    if (this.reader.producer.free < this.reader.room) return this.pauseWhileFull();
    const started = performance.now();
    const before = this.doorbell.published;
    this.reader.producer.trace?.woken(this.tracing ? nowNs() : 0);
    const failure = this.reader.read(poll.fd);
    const packets = (this.doorbell.published - before) | 0;
    if (this.doorbell.rung) {
      this.handlers.doorbell();
      // What the drain queued (a TUN write, the read of its answer) runs before the callback returns.
      settleNow();
    }
    if (failure !== null) return this.end(failure);
    this.handlers.handled?.(performance.now() - started, packets);
  }

  /** Stop reading the fds (another reader takes them); packets already in the ring stay there. */
  suspend(): void {
    this.suspended = true;
    if (this.resumeTimer !== null) clearTimeout(this.resumeTimer);
    this.resumeTimer = null;
    for (const poll of this.polls) poll.stop();
  }

  /** Read the fds again, after the other reader has stopped: publish after what it published, drain what it left. */
  resume(): void {
    if (this.done || !this.suspended) return;
    this.suspended = false;
    this.reader.producer.resume();
    for (const poll of this.polls) this.restart(poll);
    if (this.doorbell.rung) this.handlers.doorbell();
  }

  private restart(poll: UvPoll): void {
    if (this.done || this.suspended || poll.started || this.resumeTimer !== null) return;
    try {
      poll.start();
    } catch (error) {
      this.end(`cannot watch fd ${poll.fd} again: ${errorMessage(error)}`);
    }
  }

  /** The ring has no room: let the kernel queue hold the packets, drain what is there, look again soon. */
  private pauseWhileFull(): void {
    for (const poll of this.polls) poll.stop();
    this.handlers.doorbell();
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = null;
      if (this.done || this.suspended) return;
      if (this.reader.producer.free < this.reader.room) return this.pauseWhileFull();
      for (const poll of this.polls) this.restart(poll);
    }, RING_FULL_POLL_MS);
  }

  private end(reason: string): void {
    if (this.done) return;
    void this.close();
    this.handlers.closed(reason);
  }

  /** Stop polling; resolves once no handle refers to the fds any more (then they may be closed). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.done = true;
      if (this.resumeTimer !== null) clearTimeout(this.resumeTimer);
      this.resumeTimer = null;
      await Promise.all(this.polls.map((poll) => poll.close()));
    })();
    return this.closing;
  }
}
