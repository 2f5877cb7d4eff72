/**
 * Which backend serves unless a caller passes one: the fastest that is
 * installed (sodium, else node). TSWG_CRYPTO=sodium|node|noble picks one by
 * name, for benchmarks and for comparing paths side by side.
 */
import { nobleBackend } from './noble-backend.js';
import { nodeBackend } from './node-backend.js';
import type { Primitives } from './primitives.js';
import { sodiumBackend } from './sodium-backend.js';

/** Every backend this installation can use, fastest first. */
export const availableBackends: readonly Primitives[] = [sodiumBackend, nodeBackend, nobleBackend].filter((b): b is Primitives => b !== null);

function chooseDefault(): Primitives {
  const wanted = process.env.TSWG_CRYPTO;
  if (wanted === undefined || wanted === '') return availableBackends[0]!;
  const found = availableBackends.find((backend) => backend.name === wanted);
  if (found === undefined) {
    throw new Error(`TSWG_CRYPTO=${wanted}: no such crypto backend here (available: ${availableBackends.map((b) => b.name).join(', ')})`);
  }
  return found;
}

/** The backend used unless a caller passes another. */
export const defaultPrimitives: Primitives = chooseDefault();
