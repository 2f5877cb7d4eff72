/**
 * Run the queued process.nextTick callbacks and microtasks now. A libuv
 * callback made through koffi runs outside Node's callback scope, so what it
 * queues (a TUN driver's end-of-turn writes and the read of what they
 * caused) would wait for later in the loop turn: tens to hundreds of µs on
 * a lone packet's way. Node does exactly this when one of its own callbacks
 * returns; its tick processor is not public API, so without it nothing runs
 * early and the work waits for its ordinary turn.
 */
const tickProcessor = (process as unknown as { _tickCallback?: () => void })._tickCallback;

export function settleNow(): void {
  if (typeof tickProcessor === 'function') tickProcessor.call(process);
}
