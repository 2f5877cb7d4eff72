/**
 * Where a packet source's reads happen: on the process's I/O thread
 * (io-thread.ts, the default), or, with TSWG_MAIN_POLL=1, on the main thread
 * polling the fds itself (main-poll-source.ts). Either way the packets land
 * in the source's ring and the owner's doorbell drains them; one reader per
 * fd, so packet order holds. remove() resolves once nothing touches the fds.
 */
import { IoThread, type SourceHandlers, type SourceOptions } from './io-thread.js';
import type { SourceSpec } from './io-thread-protocol.js';
import { MainPollSource } from './main-poll-source.js';

export const MAIN_POLL_ENV = 'TSWG_MAIN_POLL';

/** TSWG_MAIN_POLL=1: the main thread polls the packet sources itself (off by default). */
export function mainPollWanted(): boolean {
  return process.env[MAIN_POLL_ENV] === '1';
}

export interface PacketSourceHandlers extends SourceHandlers {
  /** A handler threw inside a main-thread poll callback (caught and counted; the source keeps running). */
  failed(error: unknown): void;
}

export interface PacketSource {
  /** Stop reading; resolves when no reader touches the fds any more. */
  remove(): Promise<void>;
}

export function addPacketSource(options: SourceOptions, handlers: PacketSourceHandlers): PacketSource {
  if (mainPollWanted()) {
    const source = new MainPollSource({ ...options, id: 0 } as SourceSpec, handlers);
    return { remove: () => source.close() };
  }
  const { thread, id } = IoThread.add(options, handlers);
  return { remove: () => thread.remove(id) };
}
