/**
 * Who reads the packet sources, chosen once at start-up: TSWG_MAIN_POLL=1
 * the main thread always, 0 the I/O thread always, unset the one the load
 * calls for (adaptive-source.ts). The main-thread poll goes through libuv's
 * symbols by way of koffi; a start-up check that finds it broken falls back
 * to the I/O thread, unless the main thread was asked for explicitly.
 */
import { isMainThread } from 'node:worker_threads';
import { selfTestUvPoll } from './uv-poll-self-test.js';
import { errorMessage } from './error-message.js';

export const MAIN_POLL_ENV = 'TSWG_MAIN_POLL';

/**
 * Who reads the packet sources: TSWG_MAIN_POLL=1 the main thread always,
 * 0 the I/O thread always, unset (or empty) the one the load calls for.
 */
export type PacketReading = 'main thread' | 'I/O thread' | 'adaptive';

/** What TSWG_MAIN_POLL asks for; null when its value means nothing (the caller reports it; adaptive serves). */
export function packetReadingFromEnvironment(value: string | undefined = process.env[MAIN_POLL_ENV]): PacketReading | null {
  const text = value?.trim() ?? '';
  if (text === '') return 'adaptive';
  if (text === '1') return 'main thread';
  if (text === '0') return 'I/O thread';
  return null;
}

/** Set by the start-up check (choosePacketReading); until then the variable decides, read at each new source. */
let chosen: PacketReading | null = null;

/** How sources added from now on are read (off the main thread always by the I/O thread: a poll handle lives on the main loop). */
export function packetReading(): PacketReading {
  if (!isMainThread) return 'I/O thread';
  return chosen ?? packetReadingFromEnvironment() ?? 'adaptive';
}

/** Whether the main thread polls packet sources (always or by load): then its poll binding must work. */
function mainPollWanted(): boolean {
  return packetReading() !== 'I/O thread';
}

/** Fix how sources added from now on are read (a start-up check that finds the main-thread poll broken turns it off). */
function setPacketReading(how: PacketReading): void {
  chosen = how;
}

/**
 * Settle how packets are read before the first source: the variable's
 * value, and the main-thread poll's start-up check when it is used. Returns
 * a line for the log when something was not as asked (null otherwise);
 * throws when the main thread was asked for and its poll does not work.
 */
export async function choosePacketReading(value: string | undefined = process.env[MAIN_POLL_ENV]): Promise<string | null> {
  const asked = packetReadingFromEnvironment(value);
  let note = asked === null ? `${MAIN_POLL_ENV}=${value}: not 0 or 1; the packet reader follows the load` : null;
  setPacketReading(asked ?? 'adaptive');
  if (!mainPollWanted()) return note;
  try {
    await selfTestUvPoll();
  } catch (error) {
    if (asked === 'main thread') throw error;
    setPacketReading('I/O thread');
    note = `${errorMessage(error)}; the I/O thread reads the packets`;
  }
  return note;
}
