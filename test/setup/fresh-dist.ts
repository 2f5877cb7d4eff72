/**
 * Vitest global setup: many tests run the compiled copy (bin/tswg, worker
 * threads, helpers in namespaces), so dist/ must match the sources. `npm test`
 * builds first; a bare `npx vitest run FILE` after an edit would otherwise test
 * yesterday's JavaScript. When any source is newer than its output, build.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The folders tsconfig.json compiles into dist/. */
const COMPILED = ['src', 'scripts', 'bench'];

function* typeScriptSources(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* typeScriptSources(path);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield path;
  }
}

/** Sources whose dist/ output is missing or older than they are. */
export function staleOutputs(root = ROOT): string[] {
  const stale: string[] = [];
  for (const folder of COMPILED) {
    for (const source of typeScriptSources(join(root, folder))) {
      const name = relative(root, source);
      const output = join(root, 'dist', name.replace(/\.ts$/, '.js'));
      if (!existsSync(output) || statSync(output).mtimeMs < statSync(source).mtimeMs) stale.push(name);
    }
  }
  return stale;
}

export default function setup(): void {
  const stale = staleOutputs();
  if (stale.length === 0) return;
  console.log(`dist/ is older than ${stale[0]}${stale.length > 1 ? ` and ${stale.length - 1} more` : ''}: building it first`);
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
  const still = staleOutputs();
  if (still.length > 0) throw new Error(`dist/ is still older than ${still.join(', ')} after the build`);
}
