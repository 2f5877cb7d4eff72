/**
 * Can the main thread wait on a raw descriptor itself, in its own libuv loop
 * (uv_poll through koffi), instead of an I/O thread blocked in poll(2) that
 * wakes it through a shared word? An experiment: nothing in src/ uses it.
 *
 *   npm run build && node --expose-gc dist/bench/uv-poll-probe.js [--samples N] [--events N]
 *
 * 1. behaviour: the callback runs on the main thread with nothing else
 *    keeping the loop busy; when microtasks and nextTicks queued inside it
 *    run; and, each in its own child process, an exception thrown in the
 *    callback, the fd closed while polled, two pollers on one fd, exit with
 *    a started handle.
 * 2. release: --events datagrams through one handle, memory and koffi's
 *    callback slots before and after; then handles opened and closed.
 * 3. wake latency, send → JS with the datagram in hand, four paths taking
 *    turns: uv_poll through koffi, koffi's own uv_poll wrapper
 *    (koffi.node.poll), today's I/O thread (poll(2), wake word,
 *    Atomics.waitAsync), and Node's dgram 'message' as the floor.
 */
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isMainThread, Worker } from 'node:worker_threads';
import koffi from 'koffi';
import { loadLibc, loadNetlinkLibc, O_CLOEXEC, O_NONBLOCK } from '../src/platform/index.js';
import { createWakeWord, WakeListener } from '../src/platform/wake-word.js';
import {
  UV_POLL_PROBE_EVENTS,
  UV_POLL_PROBE_HANDLE_CYCLES,
  UV_POLL_PROBE_INTERVAL_MS,
  UV_POLL_PROBE_SAMPLES,
  UV_POLL_PROBE_WARMUP,
  UV_POLL_PROBE_WINDOW,
} from './constants.js';
import { parseBenchArgs } from './lib/command-line.js';
import { percentile } from './lib/stats.js';
import { UvPoll, UvPollError } from './lib/uv-poll.js';
import { loopbackAddress, openLoopbackSocket } from './lib/uv-poll-probe-socket.js';
import { PROBE_PAYLOAD_SIZE, type ProbeWorkerData, SLOT_DATA_OFFSET, SLOT_SEQUENCE } from './lib/uv-poll-probe-worker.js';

const libc = loadLibc();
const WORKER_URL = new URL('./lib/uv-poll-probe-worker.js', import.meta.url);
/** How long a child case may run before it is reported as hanging. */
const CASE_TIMEOUT_MS = 5_000;
/** Gap between the datagrams of the behaviour checks: long enough that nothing else wakes the loop in between. */
const CHECK_GAP_MS = 50;

function startWorker(data: ProbeWorkerData): Promise<void> {
  const worker = new Worker(WORKER_URL, { workerData: data });
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('exit', () => resolve());
  });
}

const nowNs = (): bigint => process.hrtime.bigint();
const sentAt = (datagram: Uint8Array): bigint => new DataView(datagram.buffer, datagram.byteOffset).getBigInt64(0, true);
const microseconds = (from: bigint, to: bigint): number => Number(to - from) / 1_000;

/** Reads every waiting datagram of a non-blocking socket. */
function drain(fd: number, buffer: Uint8Array, each: (datagram: Uint8Array) => void): void {
  while (libc.read(fd, buffer, buffer.length) === PROBE_PAYLOAD_SIZE) each(buffer);
}

// ---- 1. behaviour ----

async function checkBehaviour(): Promise<void> {
  console.log('1. behaviour');
  const socket = openLoopbackSocket(true);
  const buffer = new Uint8Array(PROBE_PAYLOAD_SIZE);
  const lines: string[] = [];
  let calls = 0;
  const poll = new UvPoll(socket.fd, () => {
    const entered = nowNs();
    const call = ++calls;
    let latency = 0;
    drain(socket.fd, buffer, (datagram) => (latency = microseconds(sentAt(datagram), entered)));
    const resources = process.getActiveResourcesInfo().filter((name) => name !== 'MessagePort' && name !== 'Worker');
    lines.push(`   callback ${call}: main thread ${isMainThread}, ${latency.toFixed(0)} µs after the send, other active resources [${resources.join(', ')}]`);
    queueMicrotask(() => lines.push(`   callback ${call}: its microtask ran ${microseconds(entered, nowNs()).toFixed(0)} µs later`));
    process.nextTick(() => lines.push(`   callback ${call}: its nextTick ran ${microseconds(entered, nowNs()).toFixed(0)} µs later`));
    setImmediate(() => lines.push(`   callback ${call}: its setImmediate ran ${microseconds(entered, nowNs()).toFixed(0)} µs later`));
  });
  poll.start();
  await startWorker({ role: 'sender', ports: [socket.port], rounds: 3, intervalMs: CHECK_GAP_MS });
  await new Promise((resolve) => setTimeout(resolve, CHECK_GAP_MS));
  await poll.close();
  libc.close(socket.fd);
  for (const line of lines) console.log(line);

  for (const [name, what] of Object.entries(CASES)) {
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--case', name], { encoding: 'utf8', timeout: CASE_TIMEOUT_MS });
    const output = `${child.stdout}${child.stderr}`.trim().split('\n').filter((line) => line.trim() !== '');
    const ending = child.error !== undefined ? `still running after ${CASE_TIMEOUT_MS} ms, killed` : child.signal !== null ? `killed by ${child.signal}` : `exit ${child.status}`;
    console.log(`   case ${name} (${what}): ${ending}`);
    for (const line of output.slice(0, 8)) console.log(`     | ${line}`);
  }
}

/** Each runs alone in a child process, as it may crash or hang it. */
const CASES: Record<string, string> = {
  throw: 'the callback throws on its first call',
  'fd-closed': 'the fd is closed while polled, its number reused by a new socket',
  'two-pollers': 'a second uv_poll_t on the same fd, and one on a dgram socket Node owns',
  pipe: 'a pipe instead of a socket: uv_poll on its read end, one byte written',
  microtasks: 'the callback queues a microtask and a nextTick, and nothing else runs',
  'throw-spin': 'the callback throws once, then datagrams stay unread',
  'exit-started': 'process.exit() with a started handle',
  'left-started': 'the script ends with a started handle',
};

async function sendTo(port: number, count: number): Promise<void> {
  await startWorker({ role: 'sender', ports: [port], rounds: count, intervalMs: CHECK_GAP_MS });
}

/** Whether a pending exception surfaces in the next, unrelated koffi call; then close the handle. */
async function reportNextKoffiCallAndClose(libc: { close(fd: number): number }, poll: { close(): Promise<void> }): Promise<void> {
  try {
    libc.close(-1);
    console.log('next koffi call returned normally');
  } catch (error) {
    console.log(`next koffi call threw: ${(error as Error).message}`);
  }
  await poll.close();
  console.log('closed');
}

async function runCase(name: string, port: string | undefined): Promise<void> {
  const socket = openLoopbackSocket(true);
  const buffer = new Uint8Array(PROBE_PAYLOAD_SIZE);
  if (name === 'throw') {
    process.on('uncaughtException', (error) => console.log(`uncaughtException: ${error.message}`));
    let calls = 0;
    const poll = new UvPoll(socket.fd, () => {
      drain(socket.fd, buffer, () => undefined);
      calls++;
      if (calls === 1) throw new Error('thrown in the poll callback');
    });
    poll.start();
    await sendTo(socket.port, 3);
    console.log(`calls after 3 datagrams: ${calls}`);
    await reportNextKoffiCallAndClose(libc, poll);
  } else if (name === 'pipe') {
    const ends = new Int32Array(2);
    if (libc.pipe2(ends, O_NONBLOCK | O_CLOEXEC) !== 0) throw new Error('pipe2() failed');
    const [readEnd, writeEnd] = [ends[0]!, ends[1]!];
    let written = 0n;
    const poll = new UvPoll(readEnd, () => {
      const entered = nowNs();
      const bytes = libc.read(readEnd, buffer, buffer.length);
      console.log(`callback on the main thread: ${isMainThread}, read ${bytes} byte(s), ${microseconds(written, entered).toFixed(0)} µs after the write (same thread: the rest of its turn first)`);
    });
    poll.start();
    written = nowNs();
    libc.write(writeEnd, new Uint8Array([1]), 1);
    await new Promise((resolve) => setTimeout(resolve, CHECK_GAP_MS));
    await poll.close();
    libc.close(readEnd);
    libc.close(writeEnd);
    console.log('closed');
  } else if (name === 'microtasks') {
    let calls = 0;
    const lines: string[] = [];
    const note = (call: number, what: string, entered: bigint): void => {
      lines.push(`callback ${call}: its ${what} ran ${microseconds(entered, nowNs()).toFixed(0)} µs after it returned, ${calls === call ? 'before' : 'after'} the next callback`);
    };
    const poll = new UvPoll(socket.fd, () => {
      const call = ++calls;
      drain(socket.fd, buffer, () => undefined);
      queueMicrotask(() => note(call, 'microtask', returned));
      process.nextTick(() => note(call, 'nextTick', returned));
      const returned = nowNs();
    });
    poll.start();
    // The sender is another process, so that no worker of this one wakes its loop in between.
    const sender = spawn(process.execPath, [fileURLToPath(import.meta.url), '--case', 'send', '--port', String(socket.port)], { stdio: 'ignore' });
    await new Promise((resolve) => sender.once('exit', resolve));
    await poll.close();
    for (const line of lines) console.log(line);
    console.log('closed');
  } else if (name === 'send') {
    const sender = openLoopbackSocket(false);
    const payload = new Uint8Array(PROBE_PAYLOAD_SIZE);
    const address = loopbackAddress(Number(port));
    for (let sent = 0; sent < 3; sent++) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, CHECK_GAP_MS);
      loadNetlinkLibc().sendto(sender.fd, payload, payload.length, 0, address, address.length);
    }
  } else if (name === 'throw-spin') {
    let calls = 0;
    const poll = new UvPoll(socket.fd, () => {
      calls++;
      throw new Error('thrown in the poll callback');
    });
    poll.start();
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    await sendTo(socket.port, 1);
    // A timer, not a koffi call, so the pending exception stays where it is.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const cpu = process.cpuUsage(cpuBefore);
    console.log(`JS callbacks: ${calls}; CPU over ${(performance.now() - started).toFixed(0)} ms of wall time: ${((cpu.user + cpu.system) / 1_000).toFixed(0)} ms`);
    await reportNextKoffiCallAndClose(libc, poll);
  } else if (name === 'fd-closed') {
    let calls = 0;
    const poll = new UvPoll(socket.fd, (status) => {
      calls++;
      if (calls <= 3) console.log(`callback status ${status}`);
      drain(socket.fd, buffer, () => undefined);
    });
    poll.start();
    libc.close(socket.fd);
    const reused = openLoopbackSocket(true);
    console.log(`closed fd ${socket.fd}; the new socket got fd ${reused.fd}`);
    await sendTo(reused.port, 2);
    console.log(`callbacks for the new socket's datagrams: ${calls}; waiting on it: ${libc.read(reused.fd, buffer, buffer.length) > 0 ? 'yes (unseen)' : 'no'}`);
    await poll.close();
    console.log('closed');
  } else if (name === 'two-pollers') {
    const first = new UvPoll(socket.fd, () => drain(socket.fd, buffer, () => undefined));
    first.start();
    try {
      new UvPoll(socket.fd, () => undefined).start();
      console.log('second uv_poll_init on the same fd: accepted');
    } catch (error) {
      console.log(`second uv_poll_init on the same fd: ${error instanceof UvPollError ? error.message : String(error)}`);
    }
    const owned = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => owned.bind(0, '127.0.0.1', resolve));
    const ownedFd = (owned as unknown as { _handle: { fd: number } })._handle.fd;
    try {
      new UvPoll(ownedFd, () => undefined).start();
      console.log(`uv_poll_init on dgram's fd ${ownedFd}: accepted`);
    } catch (error) {
      console.log(`uv_poll_init on dgram's fd ${ownedFd}: ${error instanceof UvPollError ? error.message : String(error)}`);
    }
    owned.close();
    await first.close();
    console.log('closed');
  } else if (name === 'exit-started') {
    new UvPoll(socket.fd, () => undefined).start();
    console.log('exiting');
    process.exit(0);
  } else if (name === 'left-started') {
    new UvPoll(socket.fd, () => undefined).start();
    console.log('script done; the handle is still started');
  }
}

// ---- 2. release ----

const megabytes = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
function memory(): string {
  (globalThis as { gc?: () => void }).gc?.();
  const usage = process.memoryUsage();
  return `rss ${megabytes(usage.rss)} MiB, heap ${megabytes(usage.heapUsed)} MiB, koffi callbacks ${koffi.stats().callbacks}`;
}

async function checkRelease(events: number): Promise<void> {
  console.log(`2. release (${(globalThis as { gc?: unknown }).gc === undefined ? 'no --expose-gc: heap figures include garbage' : 'after gc'})`);
  const socket = openLoopbackSocket(true);
  const buffer = new Uint8Array(PROBE_PAYLOAD_SIZE);
  const progress = new SharedArrayBuffer(4);
  const received = new Int32Array(progress);
  const checkpoint = Math.min(10_000, events);
  let calls = 0;
  let atCheckpoint = '';
  const poll = new UvPoll(socket.fd, () => {
    calls++;
    drain(socket.fd, buffer, () => {
      if (Atomics.add(received, 0, 1) + 1 === checkpoint) atCheckpoint = memory();
    });
    Atomics.notify(received, 0);
  });
  poll.start();
  console.log(`   before:            ${memory()}`);
  const started = performance.now();
  await startWorker({ role: 'blaster', port: socket.port, count: events, window: UV_POLL_PROBE_WINDOW, progress });
  while (Atomics.load(received, 0) < events) await new Promise((resolve) => setImmediate(resolve));
  const seconds = (performance.now() - started) / 1_000;
  console.log(`   at ${checkpoint} datagrams: ${atCheckpoint}`);
  console.log(`   at ${events} datagrams: ${memory()} (${calls} callbacks, ${(events / seconds).toFixed(0)} datagrams/s)`);
  await poll.close();
  libc.close(socket.fd);
  console.log(`   closed:            ${memory()}`);
  for (let cycle = 0; cycle < UV_POLL_PROBE_HANDLE_CYCLES; cycle++) {
    const cycled = openLoopbackSocket(false);
    const handle = new UvPoll(cycled.fd, () => undefined);
    handle.start();
    await handle.close();
    libc.close(cycled.fd);
  }
  console.log(`   ${UV_POLL_PROBE_HANDLE_CYCLES} handles opened, started, closed: ${memory()}`);
}

// ---- 3. wake latency ----

interface Path {
  name: string;
  port: number;
  samples: number[];
  close(): Promise<void>;
}

function record(path: { samples: number[] }, datagram: Uint8Array, at: bigint): void {
  path.samples.push(microseconds(sentAt(datagram), at));
}

function uvPollPath(): Path {
  const socket = openLoopbackSocket(true);
  const buffer = new Uint8Array(PROBE_PAYLOAD_SIZE);
  const path: Path = { name: 'uv_poll (koffi.register)', port: socket.port, samples: [], close: async () => undefined };
  const poll = new UvPoll(socket.fd, () => drain(socket.fd, buffer, (datagram) => record(path, datagram, nowNs())));
  poll.start();
  path.close = async () => {
    await poll.close();
    libc.close(socket.fd);
  };
  return path;
}

function koffiPollPath(): Path {
  const socket = openLoopbackSocket(true);
  const buffer = new Uint8Array(PROBE_PAYLOAD_SIZE);
  const path: Path = { name: 'koffi.node.poll', port: socket.port, samples: [], close: async () => undefined };
  const handle = koffi.node.poll(socket.fd, () => drain(socket.fd, buffer, (datagram) => record(path, datagram, nowNs())));
  path.close = async () => {
    handle.close();
    await new Promise((resolve) => setImmediate(resolve));
    libc.close(socket.fd);
  };
  return path;
}

function ioThreadPath(): Path {
  const socket = openLoopbackSocket(true);
  const wake = createWakeWord();
  const slotBuffer = new SharedArrayBuffer(SLOT_DATA_OFFSET + PROBE_PAYLOAD_SIZE);
  const stopBuffer = new SharedArrayBuffer(4);
  const slot = new Int32Array(slotBuffer);
  const data = new Uint8Array(slotBuffer, SLOT_DATA_OFFSET);
  const copy = new Uint8Array(PROBE_PAYLOAD_SIZE);
  const path: Path = { name: 'I/O thread: poll(2) + wake word', port: socket.port, samples: [], close: async () => undefined };
  let seen = 0;
  const listener = new WakeListener(wake, () => {
    const at = nowNs();
    const sequence = Atomics.load(slot, SLOT_SEQUENCE);
    if (sequence === seen) return;
    seen = sequence;
    copy.set(data);
    record(path, copy, at);
  });
  const thread = startWorker({ role: 'poller', fd: socket.fd, wake, slot: slotBuffer, stop: stopBuffer });
  path.close = async () => {
    Atomics.store(new Int32Array(stopBuffer), 0, 1);
    await thread;
    listener.stop();
    libc.close(socket.fd);
  };
  return path;
}

async function dgramPath(): Promise<Path> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const path: Path = {
    name: "dgram 'message'",
    port: socket.address().port,
    samples: [],
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (message: Buffer) => record(path, new Uint8Array(message), nowNs()));
  return path;
}

async function measureLatency(samples: number): Promise<void> {
  const load = loadavg().map((value) => value.toFixed(2));
  console.log(`3. wake latency, send → JS with the datagram (${samples} samples each after ${UV_POLL_PROBE_WARMUP} warm-up, one datagram every ${UV_POLL_PROBE_INTERVAL_MS} ms, the paths in turn; load average ${load.join(' ')})`);
  const paths = [uvPollPath(), koffiPollPath(), ioThreadPath(), await dgramPath()];
  await startWorker({ role: 'sender', ports: paths.map((path) => path.port), rounds: samples + UV_POLL_PROBE_WARMUP, intervalMs: UV_POLL_PROBE_INTERVAL_MS });
  await new Promise((resolve) => setTimeout(resolve, UV_POLL_PROBE_INTERVAL_MS * 2));
  for (const path of paths) await path.close();
  for (const path of paths) {
    const measured = path.samples.slice(UV_POLL_PROBE_WARMUP);
    const cells = [10, 50, 90, 99].map((p) => `p${p} ${(percentile(measured, p) ?? NaN).toFixed(0).padStart(5)}`);
    console.log(`   ${path.name.padEnd(34)} n ${String(measured.length).padStart(5)}  ${cells.join('  ')} µs`);
  }
  console.log(`   load average after: ${loadavg().map((value) => value.toFixed(2)).join(' ')}`);
}

async function main(): Promise<void> {
  const { values } = parseBenchArgs({
    measures: "whether the main thread can wait on a descriptor itself (uv_poll through koffi): behaviour, release, wake latency (run with --expose-gc)",
    options: {
      case: { type: 'string', value: 'NAME', description: 'run one behaviour case in this process (the probe starts itself so)' },
      port: { type: 'string', value: 'PORT', description: 'the port the send case sends to' },
      samples: { type: 'string', default: String(UV_POLL_PROBE_SAMPLES), value: 'N', description: 'wake-latency samples per receive path' },
      events: { type: 'string', default: String(UV_POLL_PROBE_EVENTS), value: 'N', description: 'datagrams through one handle in the release check' },
      only: { type: 'string', value: 'PART', description: 'run one part: behaviour, release or latency', shownDefault: 'all three' },
    },
  });
  if (values.case !== undefined) return runCase(values.case, values.port);
  const only = values.only;
  if (only === undefined || only === 'behaviour') await checkBehaviour();
  if (only === undefined || only === 'release') await checkRelease(Number(values.events));
  if (only === undefined || only === 'latency') await measureLatency(Number(values.samples));
}

await main();
