/** What `npm pack` would publish: the CLI, the compiled library and its types, nothing else. Needs `npm run build` first. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;

interface PackEntry {
  path: string;
  size: number;
}

function packedFiles(): string[] {
  // --ignore-scripts: the test run has built dist/ already; prepack would build it again.
  const output = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const [report] = JSON.parse(output) as Array<{ files: PackEntry[] }>;
  return report!.files.map((file) => file.path);
}

const packageJson = JSON.parse(readFileSync(new URL('package.json', `file://${ROOT}`), 'utf8')) as {
  bin: Record<string, string>;
  exports: Record<string, string | { types: string; default: string }>;
  dependencies: Record<string, string>;
};

describe('npm package', () => {
  const files = packedFiles();
  const has = new Set(files);

  test('ships the CLI, the licence and the compiled library with its types', () => {
    for (const path of ['LICENSE', 'README.md', 'package.json', 'dist/src/cli/main.js', 'dist/src/index.js', 'dist/src/index.d.ts']) {
      expect(has.has(path), path).toBe(true);
    }
    for (const bin of Object.values(packageJson.bin)) expect(has.has(bin.replace(/^\.\//, '')), bin).toBe(true);
  });

  test('every export points at a shipped file', () => {
    for (const [entry, target] of Object.entries(packageJson.exports)) {
      const paths = typeof target === 'string' ? [target] : [target.types, target.default];
      for (const path of paths) expect(has.has(path.replace(/^\.\//, '')), `${entry} → ${path}`).toBe(true);
    }
  });

  test('no source map without the source it points at', () => {
    for (const map of files.filter((path) => path.endsWith('.map'))) {
      const sources = (JSON.parse(readFileSync(`${ROOT}${map}`, 'utf8')) as { sources: string[] }).sources;
      const directory = map.slice(0, map.lastIndexOf('/') + 1);
      for (const source of sources) {
        const resolved = new URL(source, `file:///${directory}`).pathname.slice(1);
        expect(has.has(resolved), `${map} → ${resolved}`).toBe(true);
      }
    }
  });

  test('no tests, benchmarks, scripts or examples', () => {
    const stray = files.filter((path) => /^(test|bench|scripts|examples)\/|^dist\/(test|bench|scripts)\//.test(path));
    expect(stray).toEqual([]);
  });

  test('koffi is pinned to the version the tests ran against', () => {
    const installed = (JSON.parse(readFileSync(`${ROOT}node_modules/koffi/package.json`, 'utf8')) as { version: string }).version;
    expect(packageJson.dependencies.koffi).toBe(installed);
  });
});
