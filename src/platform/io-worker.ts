/**
 * The I/O thread: one worker that blocks in poll(2) on every packet source
 * the process has (the TUN fd, the UDP sockets) and a wake-up pipe, and reads
 * what is ready straight into each source's shared packet ring
 * (packet-ring.ts) — read(2) for TUN, recvmmsg(2) for UDP (udp-receiver.ts) — ringing one
 * doorbell per batch (wake-word.ts). One thread for all of them: a V8 isolate per reader
 * would cost ~9 MB each, and the work per packet here is a syscall.
 *
 * A source whose ring is full is left out of the poll set (its kernel queue
 * fills and drops) and looked at again every RING_FULL_POLL_MS, so one slow
 * consumer never blocks the others. Commands (add / remove a source, stop)
 * arrive as messages; the owner writes to the wake-up pipe after posting one.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { EINTR } from './errno.js';
import { POLLERR, POLLFD_SIZE, POLLHUP, POLLIN, POLLNVAL, lastErrno, loadLibc } from './libc.js';
import { COMMANDS_SENT, type Command, type IoWorkerData, type Report, type SourceSpec } from './io-thread-protocol.js';
import { RING_FULL_POLL_MS, openSourceReader, type SourceReader } from './source-reader.js';
import { WakeSignal } from './wake-word.js';
import { HOP_TRACE_ENV, nowNs } from './hop-trace.js';

const WAKE_BUFFER_SIZE = 64;

const libc = loadLibc();
const report = (message: Report) => parentPort!.postMessage(message);
const wakeSignal = new WakeSignal((workerData as IoWorkerData).wake);
/** Hop timing (hop-trace.ts): only when the rings carry trace memory. */
const tracing = Boolean(process.env[HOP_TRACE_ENV]);

interface Source extends SourceReader {
  spec: SourceSpec;
}

function openSource(spec: SourceSpec): Source {
  return { spec, ...openSourceReader(spec, () => wakeSignal.wake(), false) };
}

async function run({ wakeFd, control: controlBuffer, sources: initial }: IoWorkerData): Promise<void> {
  const control = new Int32Array(controlBuffer);
  const sources = new Map<number, Source>(initial.map((spec) => [spec.id, openSource(spec)]));
  let commandsHandled = 0;
  let stopping = false;
  parentPort!.on('message', (command: Command) => {
    commandsHandled++;
    if ('add' in command) sources.set(command.add.id, openSource(command.add));
    else if ('remove' in command) {
      sources.delete(command.remove);
      report({ removed: command.remove });
    } else stopping = true;
  });
  report({ ready: true });
  const wakeBuffer = new Uint8Array(WAKE_BUFFER_SIZE);
  let pollfds = new Uint8Array(0);
  let view = new DataView(pollfds.buffer);
  // Entry i + 1 of pollfds is polledFds[i] of polledSources[i]; entry 0 is the wake-up pipe.
  const polledSources: Source[] = [];
  const polledFds: number[] = [];
  const setEntry = (i: number, fd: number) => {
    view.setInt32(i * POLLFD_SIZE, fd, true);
    view.setInt16(i * POLLFD_SIZE + 4, POLLIN, true);
    view.setInt16(i * POLLFD_SIZE + 6, 0, true);
  };
  const drop = (source: Source, reason: string) => {
    sources.delete(source.spec.id);
    report({ closed: source.spec.id, reason });
  };

  while (!stopping) {
    polledSources.length = 0;
    polledFds.length = 0;
    let anyFull = false;
    for (const source of sources.values()) {
      if (source.producer.free < source.room) {
        anyFull = true;
        source.producer.ringDoorbell();
        continue;
      }
      for (const fd of source.fds) {
        polledSources.push(source);
        polledFds.push(fd);
      }
    }
    const count = polledFds.length + 1;
    if (pollfds.length < count * POLLFD_SIZE) {
      pollfds = new Uint8Array(count * 2 * POLLFD_SIZE);
      view = new DataView(pollfds.buffer);
    }
    setEntry(0, wakeFd);
    for (let i = 0; i < polledFds.length; i++) setEntry(i + 1, polledFds[i]!);
    if (libc.poll(pollfds, count, anyFull ? RING_FULL_POLL_MS : -1) < 0) {
      const { errno, code } = lastErrno();
      if (errno === EINTR) continue;
      for (const source of [...sources.values()]) drop(source, `poll failed: ${code}`);
      return;
    }
    if (view.getInt16(6, true) !== 0) {
      while (libc.read(wakeFd, wakeBuffer, WAKE_BUFFER_SIZE) > 0);
      // Let the commands' messages arrive (the event loop runs between these turns).
      while (commandsHandled !== Atomics.load(control, COMMANDS_SENT)) await new Promise((resolve) => setImmediate(resolve));
      continue;
    }
    const polledAt = tracing ? nowNs() : 0;
    for (let i = 0; i < polledFds.length; i++) {
      const events = view.getInt16((i + 1) * POLLFD_SIZE + 6, true);
      if (events === 0) continue;
      const source = polledSources[i]!;
      const fd = polledFds[i]!;
      if (!sources.has(source.spec.id)) continue;
      // A TUN fd reports its interface's deletion this way; a UDP socket's POLLERR is a queued ICMP error, read below.
      if (source.spec.kind === 'read' && (events & POLLIN) === 0 && (events & (POLLERR | POLLHUP | POLLNVAL)) !== 0) {
        drop(source, 'the interface is gone');
        continue;
      }
      source.producer.trace?.woken(polledAt);
      const failure = source.read(fd);
      if (failure !== null) drop(source, failure);
    }
  }
}

// Once stopped, leave: the message listener would keep the thread alive.
void run(workerData as IoWorkerData).then(() => process.exit(0));
