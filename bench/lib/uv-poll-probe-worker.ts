/**
 * The threads of bench/uv-poll-probe.ts. `sender`: one timestamped datagram
 * every interval, to each receive path in turn; `blaster`: many datagrams,
 * never more than a window ahead of the reader; `poller`: today's receive
 * path, blocked in poll(2) on a socket, reading each datagram into shared
 * memory and waking the main thread through the wake word.
 */
import { workerData } from 'node:worker_threads';
import { loadLibc, loadNetlinkLibc } from '../../src/platform/index.js';
import { POLLFD_SIZE, POLLIN } from '../../src/platform/libc.js';
import { WakeSignal } from '../../src/platform/wake-word.js';
import { loopbackAddress, openLoopbackSocket } from './uv-poll-probe-socket.js';

/** Payload: the send time (process.hrtime, ns, the same clock on every thread), then a sequence number. */
export const PROBE_PAYLOAD_SIZE = 16;
/** poller: shared slot words (Int32): the sequence published last; the datagram's bytes follow. */
export const SLOT_SEQUENCE = 0;
export const SLOT_DATA_OFFSET = 8;
/** poller: how often it looks at its stop word while nothing arrives. */
const POLLER_TIMEOUT_MS = 100;

export type ProbeWorkerData =
  | { role: 'sender'; ports: number[]; rounds: number; intervalMs: number }
  | { role: 'blaster'; port: number; count: number; window: number; progress: SharedArrayBuffer }
  | { role: 'poller'; fd: number; wake: SharedArrayBuffer; slot: SharedArrayBuffer; stop: SharedArrayBuffer };

const libc = loadLibc();
const { sendto } = loadNetlinkLibc();

function send(fd: number, address: Uint8Array, payload: Uint8Array, sequence: number): void {
  const view = new DataView(payload.buffer);
  view.setBigInt64(0, process.hrtime.bigint(), true);
  view.setUint32(8, sequence, true);
  sendto(fd, payload, payload.length, 0, address, address.length);
}

function runSender(ports: number[], rounds: number, intervalMs: number): void {
  const { fd } = openLoopbackSocket(false);
  const addresses = ports.map(loopbackAddress);
  const payload = new Uint8Array(PROBE_PAYLOAD_SIZE);
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (let round = 0; round < rounds; round++) {
    for (const address of addresses) {
      Atomics.wait(sleeper, 0, 0, intervalMs);
      send(fd, address, payload, round);
    }
  }
  libc.close(fd);
}

function runBlaster(port: number, count: number, window: number, progress: SharedArrayBuffer): void {
  const { fd } = openLoopbackSocket(false);
  const address = loopbackAddress(port);
  const payload = new Uint8Array(PROBE_PAYLOAD_SIZE);
  const received = new Int32Array(progress);
  for (let sent = 0; sent < count; sent++) {
    for (;;) {
      const seen = Atomics.load(received, 0);
      if (sent - seen < window) break;
      Atomics.wait(received, 0, seen, 10);
    }
    send(fd, address, payload, sent);
  }
  libc.close(fd);
}

function runPoller(fd: number, wake: SharedArrayBuffer, slotBuffer: SharedArrayBuffer, stopBuffer: SharedArrayBuffer): void {
  const signal = new WakeSignal(wake);
  const slot = new Int32Array(slotBuffer);
  const data = new Uint8Array(slotBuffer, SLOT_DATA_OFFSET);
  const stop = new Int32Array(stopBuffer);
  const pollfd = new Uint8Array(POLLFD_SIZE);
  const view = new DataView(pollfd.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, POLLIN, true);
  const buffer = new Uint8Array(PROBE_PAYLOAD_SIZE);
  while (Atomics.load(stop, 0) === 0) {
    if (libc.poll(pollfd, 1, POLLER_TIMEOUT_MS) <= 0) continue;
    while (libc.read(fd, buffer, buffer.length) === PROBE_PAYLOAD_SIZE) {
      data.set(buffer);
      Atomics.add(slot, SLOT_SEQUENCE, 1);
      signal.wake();
    }
  }
}

// Only when started as a worker; the main side imports the constants above.
if (workerData !== null && typeof workerData === 'object' && 'role' in workerData) {
  const job = workerData as ProbeWorkerData;
  if (job.role === 'sender') runSender(job.ports, job.rounds, job.intervalMs);
  else if (job.role === 'blaster') runBlaster(job.port, job.count, job.window, job.progress);
  else runPoller(job.fd, job.wake, job.slot, job.stop);
}
