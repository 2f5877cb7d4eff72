/**
 * A packet source whose reader follows the load (src/platform/adaptive-source.ts),
 * on a real unix datagram socket pair read with read(2) as a TUN fd is: light
 * traffic stays on the main thread's own poll; a flood that keeps the main
 * thread busy moves the fd to the I/O thread and, once it stops, back again;
 * every datagram arrives exactly once and in order across the moves (a unix
 * datagram socket blocks its sender instead of dropping, so none may be
 * missing); an I/O thread that dies mid-flood hands the reading back to the
 * main thread, said once, and the stream goes on; removing a source
 * mid-flood leaves no handle, thread or fd.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import koffi from 'koffi';
import { afterEach, describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import { MainPollSource } from '../../src/platform/main-poll-source.js';
import { AdaptiveSource, QUIET_WINDOW_MS, adaptiveReaders, onReaderMoved, type ReaderPlace } from '../../src/platform/adaptive-source.js';
import { IoThread } from '../../src/platform/io-thread.js';
import { READ_BATCH } from '../../src/platform/source-reader.js';
import { loadLibc } from '../../src/platform/libc.js';
import { PacketRingConsumer, createPacketRingMemory, plainSlot } from '../../src/platform/packet-ring.js';
import { openUvPollHandles } from '../../src/platform/uv-poll.js';
import { requireFreshDist } from '../helpers/fresh-dist.js';

const libc = loadLibc();
const raw = koffi.load('libc.so.6');
const socketpair = raw.func('int socketpair(int domain, int type, int protocol, _Out_ int32_t *fds)') as (domain: number, type: number, protocol: number, fds: Int32Array) => number;
const fcntl = raw.func('fcntl', 'int', ['int', 'int', 'int']) as (fd: number, command: number, value: number) => number;
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;
const HEADROOM = 16;
const DATAGRAM_SIZE = 200;

const dist = new URL('../../dist/src/platform/', import.meta.url).pathname;

const builtPacketRing = new URL('../../dist/src/platform/packet-ring.js', import.meta.url).href;

const openFds = () => readdirSync('/proc/self/fd').length;

/** Whether any event loop of this process (the main thread's, a worker's) watches `fd`: the I/O thread uses poll(2) and registers nothing. */
function inAnEventLoop(fd: number): boolean {
  for (const entry of readdirSync('/proc/self/fd')) {
    let target = '';
    try {
      target = readlinkSync(`/proc/self/fd/${entry}`);
    } catch {
      continue;
    }
    if (target !== 'anon_inode:[eventpoll]') continue;
    if (new RegExp(`^tfd:\\s+${fd}\\s`, 'm').test(readFileSync(`/proc/self/fdinfo/${entry}`, 'utf8'))) return true;
  }
  return false;
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  for (let waited = 0; !condition(); waited += 5) {
    if (waited > limitMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Burn the main thread for `microseconds` (a handler with real work to do). */
function busy(microseconds: number): void {
  const end = performance.now() + microseconds / 1000;
  while (performance.now() < end);
}

/** A unix datagram pair: the read end non-blocking (as the sources' fds are), the write end blocking. */
function datagramPair(): [number, number] {
  const fds = new Int32Array(2);
  if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds) !== 0) throw new Error('socketpair failed');
  if (fcntl(fds[0]!, F_SETFL, O_NONBLOCK) !== 0) throw new Error('fcntl failed');
  return [fds[0]!, fds[1]!];
}

/** A process that writes `count` numbered datagrams to the fd as fast as the reader takes them. */
function flood(fd: number, count: number): { process: ChildProcess; done: Promise<number | null> } {
  const script = `
    const fs = require('node:fs');
    const datagram = Buffer.alloc(${DATAGRAM_SIZE});
    try {
      for (let i = 0; i < ${count}; i++) { datagram.writeUInt32LE(i, 0); fs.writeSync(3, datagram); }
    } catch (error) {
      // The reader closed its end (a test that removes its source mid-flood).
      if (error.code !== 'ECONNREFUSED') throw error;
    }`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'inherit', fd] });
  return { process: child, done: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

/** A process that writes `count` numbered datagrams to the fd, one every `gapUs` microseconds. */
function paced(fd: number, count: number, gapUs: number): { process: ChildProcess; done: Promise<number | null> } {
  const script = `
    const fs = require('node:fs');
    const datagram = Buffer.alloc(${DATAGRAM_SIZE});
    const start = process.hrtime.bigint();
    try {
      for (let i = 0; i < ${count}; i++) {
        while (process.hrtime.bigint() - start < BigInt(i) * ${gapUs}000n);
        datagram.writeUInt32LE(i, 0);
        fs.writeSync(3, datagram);
      }
    } catch (error) {
      if (error.code !== 'ECONNREFUSED') throw error;
    }`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'inherit', fd] });
  return { process: child, done: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

interface Fixture {
  readEnd: number;
  writeEnd: number;
  got: number[];
  closed: string[];
  failures: unknown[];
  send(sequence: number): void;
  close(): Promise<void>;
}

const open: Fixture[] = [];

/** `work`: microseconds of main-thread work per datagram, or per sequence number. */
function adaptiveFixture(work: number | ((sequence: number) => number)): Fixture {
  const workFor = typeof work === 'number' ? () => work : work;
  const [readEnd, writeEnd] = datagramPair();
  const memory = createPacketRingMemory({ headroom: HEADROOM, tailroom: 0 }, 0, 0, 64);
  const ring = new PacketRingConsumer(memory, -1, plainSlot);
  const got: number[] = [];
  const closed: string[] = [];
  const failures: unknown[] = [];
  const source = new AdaptiveSource(
    { kind: 'read', fd: readEnd, ring: memory, headerSize: 0 },
    {
      doorbell: () =>
        ring.drain(
          (slot, length) => {
            if (length !== DATAGRAM_SIZE) throw new Error(`a datagram of ${length} bytes`);
            const sequence = new DataView(slot.bytes.buffer, slot.bytes.byteOffset + HEADROOM, 4).getUint32(0, true);
            got.push(sequence);
            busy(workFor(sequence));
          },
          () => undefined,
        ),
      closed: (reason) => closed.push(reason),
      failed: (error) => failures.push(error),
    },
  );
  let done = false;
  const fixture: Fixture = {
    readEnd,
    writeEnd,
    got,
    closed,
    failures,
    send: (sequence) => {
      const datagram = new Uint8Array(DATAGRAM_SIZE);
      new DataView(datagram.buffer).setUint32(0, sequence, true);
      expect(libc.write(writeEnd, datagram, DATAGRAM_SIZE)).toBe(DATAGRAM_SIZE);
    },
    close: async () => {
      if (done) return;
      done = true;
      ring.stop();
      await source.remove();
      libc.close(readEnd);
      libc.close(writeEnd);
    },
  };
  open.push(fixture);
  return fixture;
}

const inOrder = (got: number[], count: number) => got.length === count && got.every((sequence, i) => sequence === i);

afterEach(async () => {
  for (const fixture of open.splice(0)) await fixture.close();
});

describe('a packet source read where the load calls for it', () => {
  it('light traffic stays on the main thread: nothing moves', async () => {
    const fixture = adaptiveFixture(0);
    const movesBefore = adaptiveReaders().moves;
    for (let i = 0; i < 40; i++) {
      fixture.send(i);
      await until(() => fixture.got.length === i + 1, `datagram ${i}`);
      await sleep(2);
    }
    expect(fixture.got).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(adaptiveReaders()).toMatchObject({ place: 'main thread', moves: movesBefore });
    expect(fixture.closed).toEqual([]);
    expect(fixture.failures).toEqual([]);
  });

  it('one slow packet among light traffic (a handshake, a collection pause) does not move the reading', async () => {
    const SLOW_US = 40_000;
    const fixture = adaptiveFixture((sequence) => (sequence % 10 === 5 ? SLOW_US : 0));
    const movesBefore = adaptiveReaders().moves;
    // Light packets a few ms apart, each tenth one slow: every slow callback lies inside a window the next packet closes.
    for (let i = 0; i < 30; i++) {
      fixture.send(i);
      await until(() => fixture.got.length === i + 1, `datagram ${i}`);
      await sleep(3);
    }
    expect(fixture.got).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(adaptiveReaders()).toMatchObject({ place: 'main thread', moves: movesBefore });
  });

  it('a flood that keeps the main thread busy moves reading to the I/O thread and back when it ends; every datagram once, in order', async () => {
    const COUNT = 40_000;
    const fixture = adaptiveFixture(20);
    const movesBefore = adaptiveReaders().moves;
    const told: [ReaderPlace, string][] = [];
    const stopListening = onReaderMoved((place, why) => told.push([place, why]));
    // A listener that throws disturbs nothing.
    const stopThrowing = onReaderMoved(() => {
      throw new Error('a broken listener');
    });
    const sender = flood(fixture.writeEnd, COUNT);
    let sawIoThread = false;
    await until(
      () => {
        sawIoThread ||= adaptiveReaders().place === 'I/O thread';
        return fixture.got.length === COUNT;
      },
      'every datagram of the flood',
      60_000,
    );
    expect(await sender.done).toBe(0);
    expect(sawIoThread, 'the I/O thread read during the flood').toBe(true);
    expect(inOrder(fixture.got, COUNT), `${fixture.got.length} datagrams in order`).toBe(true);
    // Quiet again: back to the main thread within a few windows.
    await until(() => adaptiveReaders().place === 'main thread' && adaptiveReaders().moves >= movesBefore + 2, 'the move back', QUIET_WINDOW_MS * 8);
    fixture.send(COUNT);
    await until(() => fixture.got.length === COUNT + 1, 'a datagram after the move back');
    expect(fixture.got.at(-1)).toBe(COUNT);
    expect(fixture.closed).toEqual([]);
    expect(fixture.failures).toEqual([]);
    stopListening();
    stopThrowing();
    // Each move was told once, with its reason (what a daemon logs).
    expect(told.map(([place]) => place)).toEqual(['I/O thread', 'main thread']);
    expect(told[0]![1]).toMatch(/^the poll callbacks kept the main thread busy 50 % or more in 3 windows of 20 ms in a row$/);
    expect(told[1]![1]).toMatch(/^\d+ quiet windows of 250 ms in a row \(the last: \d+ packets\/s, event loop \d+ % busy\)$/);
  });

  it('few packets that each keep the main thread long (a handshake flood): the reading moves once and stays, it does not go back and forth', async () => {
    // 400 datagrams a second, 1.5 ms of work each: 60 % of the main thread, at well under QUIET_PACKETS_PER_SECOND.
    const COUNT = 1_600;
    const fixture = adaptiveFixture(1_500);
    const movesBefore = adaptiveReaders().moves;
    const sender = paced(fixture.writeEnd, COUNT, 2_500);
    try {
      await until(() => fixture.got.length === COUNT, 'every datagram', 60_000);
    } finally {
      sender.process.kill('SIGKILL');
      await sender.done;
    }
    expect(inOrder(fixture.got, COUNT)).toBe(true);
    const moves = adaptiveReaders().moves - movesBefore;
    expect(moves, 'moves while the load held').toBeGreaterThanOrEqual(1);
    expect(moves, 'moves while the load held (one there, perhaps one back at the end)').toBeLessThanOrEqual(2);
  });

  it('removing a source while the I/O thread reads it mid-flood leaves no poll handle, thread or descriptor', async () => {
    const fdsBefore = openFds();
    const handlesBefore = openUvPollHandles();
    const fixture = adaptiveFixture(20);
    const sender = flood(fixture.writeEnd, 1_000_000);
    try {
      await until(() => adaptiveReaders().place === 'I/O thread', 'the move to the I/O thread', 20_000);
      await fixture.close();
      const after = fixture.got.length;
      await sleep(100);
      expect(fixture.got.length, 'no datagram handled after remove() resolved').toBe(after);
      expect(inOrder(fixture.got, fixture.got.length)).toBe(true);
    } finally {
      sender.process.kill('SIGKILL');
      await sender.done;
    }
    expect(adaptiveReaders()).toMatchObject({ place: 'main thread', sources: 0 });
    expect(openUvPollHandles()).toBe(handlesBefore);
    expect(openFds()).toBe(fdsBefore);
  });

  it('an I/O thread that dies mid-flood: the main thread reads again, the failure is reported once, the stream goes on in order', async () => {
    const COUNT = 60_000;
    const fixture = adaptiveFixture(20);
    const sender = flood(fixture.writeEnd, COUNT);
    await until(() => adaptiveReaders().place === 'I/O thread', 'the move to the I/O thread', 20_000);
    // The thread the sources are on (hold() hands out the process's one thread; released at once).
    const thread = IoThread.hold();
    await thread.release();
    await (thread as unknown as { worker: Worker }).worker.terminate();
    await until(() => fixture.failures.length > 0, 'the report of the lost thread');
    expect(String(fixture.failures[0])).toContain('the main thread reads the packets again');
    // The flood goes on: on the main thread, or on a new I/O thread once it is busy again.
    const seen = fixture.got.length;
    await until(() => fixture.got.length > seen + 1000, 'datagrams after the thread died', 20_000);
    sender.process.kill('SIGKILL');
    await sender.done;
    expect(fixture.failures).toHaveLength(1);
    expect(fixture.closed).toEqual([]);
    // A datagram the thread had read but not yet published when it died is lost; nothing is repeated or reordered.
    const got = fixture.got;
    expect(got.every((sequence, i) => i === 0 || sequence > got[i - 1]!), 'strictly increasing').toBe(true);
    expect(got.at(-1)! + 1 - got.length, 'datagrams lost with the thread').toBeLessThanOrEqual(READ_BATCH);
  });

  it('a source added while the others are on the I/O thread joins them there, and comes back with them', async () => {
    const busySource = adaptiveFixture(20);
    const sender = flood(busySource.writeEnd, 1_000_000);
    try {
      await until(() => adaptiveReaders().place === 'I/O thread', 'the move to the I/O thread', 20_000);
      expect(inAnEventLoop(busySource.readEnd), 'the busy source in an event loop').toBe(false);
      const late = adaptiveFixture(0);
      // libuv would register a main-thread handle with epoll on its next loop turn: give it several.
      await sleep(20);
      expect(adaptiveReaders().place).toBe('I/O thread');
      expect(inAnEventLoop(late.readEnd), 'the added source in an event loop').toBe(false);
      late.send(7);
      await until(() => late.got.length === 1, 'the added source\'s datagram');
      expect(late.got).toEqual([7]);
    } finally {
      sender.process.kill('SIGKILL');
      await sender.done;
    }
    await until(() => adaptiveReaders().place === 'main thread', 'the move back', QUIET_WINDOW_MS * 8);
    // libuv registers a started handle with epoll on its next loop turn.
    await until(() => open.every((fixture) => inAnEventLoop(fixture.readEnd)), 'both sources back in the main loop');
  });

  it('an I/O thread that cannot start here: said once, the main thread goes on reading everything, no thread started again and again', async () => {
    requireFreshDist(['platform/adaptive-source', 'platform/io-thread']);
    // Node hands --input-type on to worker threads, which refuse it: every I/O thread this process starts dies at once.
    const script = `
      const { AdaptiveSource, adaptiveReaders } = await import('${dist}adaptive-source.js');
      const { loadLibc, O_CLOEXEC, O_NONBLOCK } = await import('${dist}libc.js');
      const { PacketRingConsumer, createPacketRingMemory, plainSlot } = await import('${dist}packet-ring.js');
      const libc = loadLibc();
      const fds = new Int32Array(2);
      if (libc.pipe2(fds, O_CLOEXEC | O_NONBLOCK) !== 0) throw new Error('pipe2 failed');
      const memory = createPacketRingMemory({ headroom: 16, tailroom: 0 }, 0, 0, 64);
      const ring = new PacketRingConsumer(memory, -1, plainSlot);
      const failures = [];
      let read = 0;
      const busy = (us) => { const end = performance.now() + us / 1000; while (performance.now() < end); };
      const source = new AdaptiveSource({ kind: 'read', fd: fds[0], ring: memory, headerSize: 0 }, {
        doorbell: () => ring.drain((slot, length) => { read += length; busy(100); }, () => undefined),
        closed: (reason) => failures.push('closed: ' + reason),
        failed: (error) => failures.push(String(error)),
      });
      const chunk = new Uint8Array(1000);
      let written = 0;
      const end = performance.now() + 2000;
      await new Promise((resolve) => {
        const write = () => {
          for (let i = 0; i < 16; i++) { const n = libc.write(fds[1], chunk, chunk.length); if (n > 0) written += n; }
          if (performance.now() < end) setImmediate(write); else resolve();
        };
        write();
      });
      while (read < written) await new Promise((resolve) => setTimeout(resolve, 10));
      ring.stop();
      await source.remove();
      console.log(JSON.stringify({ failures, moves: adaptiveReaders().moves, read, written }));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TSWG_MAIN_POLL: '' } });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, output).toBe(0);
    const result = JSON.parse(output.trim().split('\n').at(-1)!) as { failures: string[]; moves: number; read: number; written: number };
    expect(result.written, 'bytes written').toBeGreaterThan(0);
    expect(result.read, 'every byte read').toBe(result.written);
    expect(result.moves).toBe(0);
    expect(result.failures, 'the failure, said once').toHaveLength(1);
    expect(result.failures[0]).toContain('the I/O thread');
    expect(result.failures[0]).toContain('the main thread goes on reading');
  });

  it('a reader thread that dies inside a read leaves the read lock behind: the main thread, resuming, takes the source back all the same', async () => {
    requireFreshDist(['platform/packet-ring']);
    const [readEnd, writeEnd] = datagramPair();
    const memory = createPacketRingMemory({ headroom: HEADROOM, tailroom: 0 }, 0, 0, 64);
    const ring = new PacketRingConsumer(memory, -1, plainSlot);
    const got: number[] = [];
    const source = new MainPollSource(
      { kind: 'read', fd: readEnd, ring: memory, headerSize: 0, id: 0 },
      {
        doorbell: () => ring.drain((slot) => got.push(new DataView(slot.bytes.buffer, slot.bytes.byteOffset + HEADROOM, 4).getUint32(0, true)), () => undefined),
        closed: () => undefined,
        failed: () => undefined,
      },
    );
    try {
      source.suspend();
      // Another reader takes the source's read lock as the I/O thread does before each read, and its thread is terminated there.
      const reader = new Worker(
        `const { workerData, parentPort } = require('node:worker_threads');
         import(workerData.module).then(({ PacketRingProducer }) => {
           if (!new PacketRingProducer(workerData.memory, () => undefined).lockReads()) throw new Error('no lock');
           parentPort.postMessage('locked');
           for (;;);
         });`,
        { eval: true, workerData: { module: builtPacketRing, memory } },
      );
      await new Promise((resolve, reject) => {
        reader.once('message', resolve);
        reader.once('error', reject);
      });
      await reader.terminate();
      source.resume();
      const datagram = new Uint8Array(DATAGRAM_SIZE);
      new DataView(datagram.buffer).setUint32(0, 42, true);
      expect(libc.write(writeEnd, datagram, DATAGRAM_SIZE)).toBe(DATAGRAM_SIZE);
      await until(() => got.length === 1, 'the datagram after the dead reader', 2_000);
      expect(got).toEqual([42]);
    } finally {
      ring.stop();
      await source.close();
      libc.close(readEnd);
      libc.close(writeEnd);
    }
  });
});
