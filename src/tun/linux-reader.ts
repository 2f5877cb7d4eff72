/**
 * The TUN read loop, in a worker thread of its own: it blocks in poll(2) on
 * the TUN fd and a wake-up pipe, reads every packet that is ready with
 * read(2) and posts them to the main thread in batches. Reading in the libuv
 * pool instead would leave a thread blocked in read(2) that nothing can
 * interrupt, and Node cannot exit while a pool thread is busy.
 *
 * Messages to the parent: { packets: Uint8Array[] } and, once, { closed: reason }.
 * The parent acknowledges each batch in the shared control array and stops
 * the reader by setting STOP and writing a byte to the wake-up pipe.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { IN_FLIGHT, MAX_BATCHES_IN_FLIGHT, STOP, type ReaderData } from './linux-reader-protocol.js';
import { EAGAIN, EINTR, POLLERR, POLLHUP, POLLIN, POLLNVAL, lastErrno, loadLibc } from '../platform/libc.js';

const BACKPRESSURE_WAIT_MS = 100;

/** Packets read per wake-up before posting them (bounds latency and message size). */
const MAX_BATCH = 64;
const READ_BUFFER_SIZE = 65_535;
const POLLFD_SIZE = 8;

function run({ tunFd, wakeFd, control: shared }: ReaderData): string {
  const libc = loadLibc();
  const control = new Int32Array(shared);
  const post = (packets: Uint8Array[]) => {
    Atomics.add(control, IN_FLIGHT, 1);
    parentPort!.postMessage({ packets }, packets.map((p) => p.buffer as ArrayBuffer));
  };
  const pollfds = new Uint8Array(2 * POLLFD_SIZE);
  const view = new DataView(pollfds.buffer);
  view.setInt32(0, tunFd, true);
  view.setInt16(4, POLLIN, true);
  view.setInt32(POLLFD_SIZE, wakeFd, true);
  view.setInt16(POLLFD_SIZE + 4, POLLIN, true);
  const buffer = new Uint8Array(READ_BUFFER_SIZE);
  for (;;) {
    // Backpressure: wait for the parent to catch up before reading more.
    for (let inFlight = Atomics.load(control, IN_FLIGHT); inFlight >= MAX_BATCHES_IN_FLIGHT; inFlight = Atomics.load(control, IN_FLIGHT)) {
      if (Atomics.load(control, STOP) !== 0) return 'stopped';
      Atomics.wait(control, IN_FLIGHT, inFlight, BACKPRESSURE_WAIT_MS);
    }
    view.setInt16(6, 0, true);
    view.setInt16(POLLFD_SIZE + 6, 0, true);
    if (libc.poll(pollfds, 2, -1) < 0) {
      if (lastErrno().errno === EINTR) continue;
      return `poll failed: ${lastErrno().code}`;
    }
    if (view.getInt16(POLLFD_SIZE + 6, true) !== 0) return 'stopped';
    const events = view.getInt16(6, true);
    if ((events & (POLLERR | POLLHUP | POLLNVAL)) !== 0 && (events & POLLIN) === 0) return 'the interface is gone';
    const packets: Uint8Array[] = [];
    while (packets.length < MAX_BATCH) {
      const length = libc.read(tunFd, buffer, READ_BUFFER_SIZE);
      if (length > 0) {
        packets.push(buffer.slice(0, length));
        continue;
      }
      if (length < 0) {
        const { errno, code } = lastErrno();
        if (errno === EAGAIN || errno === EINTR) break;
        if (packets.length > 0) post(packets);
        return `the interface is gone (read: ${code})`;
      }
      break;
    }
    if (packets.length > 0) post(packets);
  }
}

parentPort!.postMessage({ closed: run(workerData as ReaderData) });
