/** What the TUN reader thread (linux-reader.ts) and its parent (linux.ts) share. */

export interface ReaderData {
  tunFd: number;
  wakeFd: number;
  /** Int32 slots shared with the parent: see IN_FLIGHT and STOP. */
  control: SharedArrayBuffer;
}

/** control[IN_FLIGHT]: batches posted and not yet handled by the parent. */
export const IN_FLIGHT = 0;
/** control[STOP]: non-zero once the parent wants the reader gone. */
export const STOP = 1;
/**
 * Batches the parent may have queued before the reader stops reading. Then the
 * kernel's TUN queue fills and drops, like wireguard-go's bounded queues,
 * instead of packets piling up in memory here.
 */
export const MAX_BATCHES_IN_FLIGHT = 16;
