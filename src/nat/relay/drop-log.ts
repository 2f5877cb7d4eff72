/**
 * Rate-limited logging of dropped datagrams: a flood of garbage must not
 * become a flood of log lines. At most `limit` lines per interval; the
 * datagrams dropped silently in between are counted and reported with the
 * next line that gets through.
 */
import type { Logger } from '../../device/index.js';
import { DROP_LOG_INTERVAL_MS, DROP_LOG_LIMIT } from './constants.js';

export class DropLog {
  private windowStart = 0;
  private linesInWindow = 0;
  private suppressed = 0;
  /** Every drop, logged or not (tests and diagnostics). */
  dropped = 0;

  constructor(
    private readonly log: Logger,
    private readonly prefix: string,
    private readonly limit = DROP_LOG_LIMIT,
    private readonly intervalMs = DROP_LOG_INTERVAL_MS,
  ) {}

  drop(reason: string): void {
    this.dropped++;
    const now = Date.now();
    if (now - this.windowStart >= this.intervalMs) {
      this.windowStart = now;
      this.linesInWindow = 0;
    }
    if (this.linesInWindow >= this.limit) {
      this.suppressed++;
      return;
    }
    this.linesInWindow++;
    const more = this.suppressed > 0 ? ` (${this.suppressed} more dropped without a log line)` : '';
    this.suppressed = 0;
    this.log.error(`${this.prefix}: dropped ${reason}${more}`);
  }
}
