/**
 * Tests that run the built code in a child process (another namespace, a
 * worker) would test stale code after an edit without a build: they call
 * requireFreshDist first, so that fails clearly instead.
 */
import { statSync } from 'node:fs';

/** Throws when dist/src/<module>.js is missing or older than src/<module>.ts, for each module ("platform/egress"). */
export function requireFreshDist(modules: readonly string[]): void {
  for (const module of modules) {
    const source = new URL(`../../src/${module}.ts`, import.meta.url);
    const built = new URL(`../../dist/src/${module}.js`, import.meta.url);
    let builtTime: number;
    try {
      builtTime = statSync(built).mtimeMs;
    } catch {
      throw new Error(`${built.pathname} is missing: run \`npm run build\` first (npm test does)`);
    }
    if (statSync(source).mtimeMs > builtTime) throw new Error(`${built.pathname} is older than its source: run \`npm run build\` first`);
  }
}
