/**
 * Where a worker thread's script is. Compiled code runs its sibling .js file;
 * code loaded from the TypeScript sources (vitest transforms them on the fly,
 * but a Worker cannot) runs the build's copy: dist/ mirrors the source tree,
 * so `npm run build` must have run first, as `npm test` does.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Heap limits for the I/O thread: it allocates almost nothing after
 * start-up (packets live in shared rings), so small V8 heaps keep each
 * thread's memory to what it uses.
 */
export const IO_THREAD_RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 32, codeRangeSizeMb: 8 } as const;

export function workerScriptUrl(moduleUrl: string, script: string): URL {
  const url = new URL(script, moduleUrl);
  if (!moduleUrl.endsWith('.ts')) return url;
  const path = fileURLToPath(url);
  const at = path.lastIndexOf('/src/');
  const built = `${path.slice(0, at)}/dist${path.slice(at)}`;
  if (!existsSync(built)) throw new Error(`worker script ${built} is missing: run \`npm run build\` first`);
  return pathToFileURL(built);
}
