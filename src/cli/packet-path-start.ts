/**
 * What both daemons (`tswg INTERFACE`, `tswg node`) do before they start a
 * device: tune V8 for the packet path, check the libc binding, choose who
 * reads the packet sources (a failed main-thread poll check falls back with
 * an error line), and log every move of the packet reading at the verbose level.
 */
import type { Logger } from '../device/index.js';
import { choosePacketReading, onReaderMoved, selfTestLibc } from '../platform/index.js';
import { tuneJitForPackets } from './jit-budget.js';

export async function preparePacketPath(log: Logger): Promise<void> {
  tuneJitForPackets();
  selfTestLibc();
  const readingNote = await choosePacketReading();
  if (readingNote !== null) log.error(readingNote);
  onReaderMoved((place, why) => log.verbose(`packet reading moved to the ${place}: ${why}`));
}
