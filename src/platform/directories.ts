/**
 * Creating directories without Node's recursive mkdir, which loops forever
 * (100% CPU, deaf to signals, since it never yields) under /proc, where
 * mkdir answers ENOENT although the parent exists.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

/** More nested directories than this to create is a mistake, not a path. */
const MAX_DIRECTORY_DEPTH = 64;

/**
 * mkdir -p that gives up where mkdir fails (throws its error). Returns the
 * directories it created, outermost first; an existing one is fine.
 */
export function makeDirectory(path: string, mode: number, depth = 0): string[] {
  try {
    mkdirSync(path, { mode });
    return [path];
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return [];
    const parent = dirname(path);
    if (code !== 'ENOENT' || parent === path || depth >= MAX_DIRECTORY_DEPTH) throw error;
    const created = makeDirectory(parent, mode, depth + 1);
    // Once more only: a second ENOENT, with the parent there, is the real answer.
    mkdirSync(path, { mode });
    return [...created, path];
  }
}
