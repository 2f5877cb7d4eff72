/**
 * Where a packet source's reads happen: on the main thread polling the fds
 * itself (main-poll-source.ts), on the process's I/O thread (io-thread.ts),
 * or, by default, on whichever of the two the load calls for
 * (adaptive-source.ts). Either way the packets land in the source's ring and
 * the owner's doorbell drains them; one reader per fd, so packet order
 * holds. remove() resolves once nothing touches the fds.
 */
import { AdaptiveSource } from './adaptive-source.js';
import { IoThread, type SourceHandlers, type SourceOptions } from './io-thread.js';
import type { SourceSpec } from './io-thread-protocol.js';
import { MainPollSource } from './main-poll-source.js';
import { packetReading } from './packet-reading.js';

export interface PacketSourceHandlers extends SourceHandlers {
  /** A handler threw inside a main-thread poll callback (caught and counted; the source keeps running). */
  failed(error: unknown): void;
}

export interface PacketSource {
  /** Stop reading; resolves when no reader touches the fds any more. */
  remove(): Promise<void>;
}

export function addPacketSource(options: SourceOptions, handlers: PacketSourceHandlers): PacketSource {
  const reading = packetReading();
  if (reading === 'adaptive') {
    const source = new AdaptiveSource(options, handlers);
    return { remove: () => source.remove() };
  }
  if (reading === 'main thread') {
    const source = new MainPollSource({ ...options, id: 0 } as SourceSpec, handlers);
    return { remove: () => source.close() };
  }
  const { thread, id } = IoThread.add(options, handlers);
  return { remove: () => thread.remove(id) };
}
