/**
 * Files that must never be half-written: a temporary file in the same
 * directory is written in full (a short write is retried, a write that makes
 * no progress — a full disk — is an error), its length checked, fsynced and
 * renamed over the target; then the directory is fsynced so the rename
 * survives a crash. On any error the temporary file is removed and the old
 * file is left as it was.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { OverlayError } from './errors.js';
import { errorMessage } from '../platform/index.js';

/** Prefix of temporary files: never read, and what a crash may leave behind. */
export const TEMP_FILE_PREFIX = '.tmp-';

/** Write all of `data`: a short write is retried until the kernel refuses with an error. */
function writeFully(fd: number, data: Uint8Array): void {
  let offset = 0;
  while (offset < data.length) {
    const written = writeSync(fd, data, offset, data.length - offset);
    // A write that takes nothing would loop forever; the disk is full.
    if (written <= 0) throw Object.assign(new Error(`wrote ${offset} of ${data.length} bytes (no space left?)`), { code: 'ENOSPC' });
    offset += written;
  }
  const size = fstatSync(fd).size;
  if (size !== data.length) throw new Error(`wrote ${size} of ${data.length} bytes`);
}

/** Replace `path` with `data` atomically; OverlayError naming the file on failure (the old file is kept). */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): void {
  const directory = dirname(path);
  const temp = join(directory, `${TEMP_FILE_PREFIX}${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  try {
    const fd = openSync(temp, 'wx', mode);
    try {
      writeFully(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw new OverlayError(`cannot write ${path}: ${errorMessage(error)}; the previous file is unchanged`);
  }
  try {
    const dirFd = openSync(directory, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the file itself is synced.
  }
}
