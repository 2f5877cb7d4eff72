/**
 * The main thread polling a packet source itself (src/platform/uv-poll.ts,
 * main-poll-source.ts): libuv's poll handle through koffi on a real pipe,
 * packets read into a real ring by the same reader the I/O thread uses and
 * drained from inside the callback, in order; a handler that throws is
 * caught and counted and the source keeps running; closing releases every
 * handle, callback slot and descriptor over many open/close cycles.
 */
import { closeSync, openSync, readdirSync } from 'node:fs';
import koffi from 'koffi';
import { describe, expect, it } from 'vitest';
import { O_CLOEXEC, O_NONBLOCK, loadLibc } from '../../src/platform/libc.js';
import { MainPollSource, mainPollCallbackErrors } from '../../src/platform/main-poll-source.js';
import { PacketRingConsumer, createPacketRingMemory, plainSlot } from '../../src/platform/packet-ring.js';
import { selfTestUvPoll } from '../../src/platform/uv-poll-self-test.js';
import { UvPoll, openUvPollHandles } from '../../src/platform/uv-poll.js';

const libc = loadLibc();
const CYCLES = 300;

function pipe(): [number, number] {
  const fds = new Int32Array(2);
  if (libc.pipe2(fds, O_CLOEXEC | O_NONBLOCK) !== 0) throw new Error('pipe2 failed');
  return [fds[0]!, fds[1]!];
}

const openFds = () => readdirSync('/proc/self/fd').length;
const turn = () => new Promise((resolve) => setTimeout(resolve, 5));

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 5) {
    if (waited > 5000) throw new Error(`timed out waiting for ${what}`);
    await turn();
  }
}

/** A source on a pipe's read end (read(2), as a TUN fd is read) whose packets go to `packet`. */
function pipeSource(packet: (bytes: Uint8Array) => void, failed: (error: unknown) => void = () => undefined) {
  const [readEnd, writeEnd] = pipe();
  const memory = createPacketRingMemory({ headroom: 16, tailroom: 0 }, 0, 0, 8);
  const ring = new PacketRingConsumer(memory, -1, plainSlot);
  const closed: string[] = [];
  const source = new MainPollSource(
    { kind: 'read', id: 0, fd: readEnd, ring: memory, headerSize: 0 },
    {
      doorbell: () => ring.drain((slot, length) => packet(slot.bytes.slice(16, 16 + length)), () => undefined),
      closed: (reason) => closed.push(reason),
      failed,
    },
  );
  return {
    closed,
    send: (bytes: Uint8Array) => expect(libc.write(writeEnd, bytes, bytes.length)).toBe(bytes.length),
    close: async () => {
      ring.stop();
      await source.close();
      libc.close(readEnd);
      libc.close(writeEnd);
    },
  };
}

describe('main-thread poll', () => {
  it('the start-up self-test passes here', async () => {
    await selfTestUvPoll();
  });

  it('packets written to the fd reach the handler from the poll callback, each whole and in order', async () => {
    const got: number[] = [];
    const source = pipeSource((bytes) => got.push(bytes[0]!));
    try {
      // A pipe read returns what is there: one byte per write, read one at a time only if written one at a time.
      for (let i = 0; i < 20; i++) {
        source.send(Uint8Array.of(i));
        await until(() => got.length === i + 1, `packet ${i}`);
      }
      expect(got).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(source.closed).toEqual([]);
    } finally {
      await source.close();
    }
  });

  it('a handler that throws is caught and counted; the source keeps delivering, and the loop does not spin', async () => {
    const got: number[] = [];
    const errors: unknown[] = [];
    const before = mainPollCallbackErrors();
    const source = pipeSource(
      (bytes) => {
        if (bytes[0] === 0xee) throw new Error('bad packet');
        got.push(bytes[0]!);
      },
      (error) => errors.push(error),
    );
    try {
      source.send(Uint8Array.of(0xee));
      await until(() => errors.length === 1, 'the error');
      expect(String(errors[0])).toContain('bad packet');
      expect(mainPollCallbackErrors()).toBe(before + 1);
      const cpuBefore = process.cpuUsage();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const cpu = process.cpuUsage(cpuBefore);
      // A silenced level-triggered handle would burn the whole 200 ms.
      expect((cpu.user + cpu.system) / 1000).toBeLessThan(100);
      source.send(Uint8Array.of(7));
      await until(() => got.length === 1, 'the packet after the error');
      expect(got).toEqual([7]);
    } finally {
      await source.close();
    }
  });

  it(`${CYCLES} sources opened, fed and closed: no handle, callback slot or descriptor left`, async () => {
    const fdsBefore = openFds();
    const handlesBefore = openUvPollHandles();
    const callbacksBefore = koffi.stats().callbacks;
    for (let i = 0; i < CYCLES; i++) {
      let got = 0;
      const source = pipeSource(() => got++);
      source.send(Uint8Array.of(1));
      await until(() => got === 1, `the packet of cycle ${i}`);
      await source.close();
    }
    expect(openUvPollHandles()).toBe(handlesBefore);
    expect(koffi.stats().callbacks).toBe(callbacksBefore);
    expect(openFds()).toBe(fdsBefore);
  });

  it('a source closed with packets waiting calls nothing more, and its fd may then be closed', async () => {
    let got = 0;
    const source = pipeSource(() => got++);
    source.send(Uint8Array.of(1));
    await source.close();
    await turn();
    expect(got).toBe(0);
    expect(source.closed).toEqual([]);
  });

  it('a handle whose fd now refers to another file refuses to start again, instead of libuv aborting the process', async () => {
    const [readEnd, writeEnd] = pipe();
    const poll = new UvPoll(readEnd, () => undefined, () => undefined);
    try {
      poll.start();
      await turn();
      poll.stop();
      const devNull = openSync('/dev/null', 'r');
      const dup2 = koffi.load('libc.so.6').func('int dup2(int oldfd, int newfd)') as (oldFd: number, newFd: number) => number;
      try {
        expect(dup2(devNull, readEnd)).toBe(readEnd);
      } finally {
        closeSync(devNull);
      }
      // /dev/null cannot be polled: epoll refuses it with EPERM, on which libuv aborts.
      expect(() => poll.start()).toThrow(/no longer refers to pipe:\[\d+\] \(now \/dev\/null\)/);
      expect(poll.started).toBe(false);
    } finally {
      await poll.close();
      libc.close(readEnd);
      libc.close(writeEnd);
    }
  });
});
