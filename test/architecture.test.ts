/**
 * The walls between the layers of src/, read from the import statements of
 * every source file (type-only imports included: a type couples as much):
 *
 *   src/noise      the protocol core, free of I/O: no fs, net, dgram,
 *                  child_process or worker_threads, and nothing of
 *                  src/platform, src/tun or src/device
 *   src/platform   knows nothing of WireGuard: nothing of src/noise or src/device
 *   src/tun        a driver: nothing of src/noise or src/device
 *   src/cli        the command line: nothing outside it imports it
 *
 * The rules run on the real tree, and first on made-up files, to show that
 * each one catches what it should.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');

/** Node modules the protocol core must not reach: they do I/O. */
const IO_MODULES = ['fs', 'net', 'dgram', 'child_process', 'worker_threads'];

interface Rule {
  /** Files the rule applies to (paths relative to the repository root). */
  appliesTo: (file: string) => boolean;
  /** Why `target` (a src/ path, or a module name such as node:fs) may not be imported; null when it may. */
  forbids: (target: string) => string | null;
}

const under = (dir: string) => (path: string) => path === dir || path.startsWith(`${dir}/`);
const isIoModule = (target: string) => IO_MODULES.some((name) => target === name || target === `node:${name}` || target.startsWith(`node:${name}/`) || target.startsWith(`${name}/`));

const RULES: readonly Rule[] = [
  {
    appliesTo: under('src/noise'),
    forbids: (target) =>
      isIoModule(target)
        ? 'the protocol core does no I/O'
        : ['src/platform', 'src/tun', 'src/device'].some((dir) => under(dir)(target))
          ? 'the protocol core knows no platform, driver or device'
          : null,
  },
  {
    appliesTo: (file) => under('src/platform')(file) || under('src/tun')(file),
    forbids: (target) => (under('src/noise')(target) || under('src/device')(target) ? 'the platform layer and the TUN driver know nothing of WireGuard or the device' : null),
  },
  {
    appliesTo: (file) => !under('src/cli')(file),
    forbids: (target) => (under('src/cli')(target) ? 'libraries never import the command line' : null),
  },
];

/**
 * Known violations whose fix is out of scope for now, as "file -> target",
 * each with a comment saying why. Empty: every wall holds.
 */
const ALLOWED: ReadonlySet<string> = new Set<string>([]);

/** Module specifiers of every import, re-export and dynamic import() in `source`. */
export function importSpecifiers(source: string): string[] {
  // Comments that start a line go first (a commented-out import is none); strings such as 'src/**/*.ts' stay.
  const code = source.replace(/^\s*\/\*[\s\S]*?\*\//gm, '').replace(/^\s*\/\/.*$/gm, '');
  const specifiers: string[] = [];
  const patterns = [/\b(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*['"]([^'"]+)['"]/g, /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const pattern of patterns) for (const match of code.matchAll(pattern)) specifiers.push(match[1]!);
  return specifiers;
}

/** A specifier as a path relative to the root (a relative import) or as it is (a package or node: module). */
function resolveTarget(file: string, specifier: string): string {
  if (!specifier.startsWith('.')) return specifier;
  return relative(ROOT, resolve(ROOT, dirname(file), specifier)).replace(/\\/g, '/');
}

interface Violation {
  /** "file -> target", the key of ALLOWED. */
  edge: string;
  why: string;
}

/** Every broken wall in `files` (path relative to the root → source). */
export function violations(files: ReadonlyMap<string, string>): Violation[] {
  const found: Violation[] = [];
  for (const [file, source] of files) {
    for (const specifier of importSpecifiers(source)) {
      const target = resolveTarget(file, specifier);
      for (const rule of RULES) {
        if (!rule.appliesTo(file)) continue;
        const why = rule.forbids(target);
        if (why !== null) found.push({ edge: `${file} -> ${target}`, why });
      }
    }
  }
  return found;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

describe('architecture: the walls between the layers of src/', () => {
  it('each rule catches what it should, in made-up files (multi-line, type-only, re-exports, dynamic imports)', () => {
    const made = new Map<string, string>([
      ['src/noise/a.ts', "import fs from 'node:fs';\nimport {\n  x,\n  type Y,\n} from '../platform/packet-ring.js';\nexport { z } from '../device/peer.js';\nconst w = await import('node:worker_threads');"],
      ['src/noise/b.ts', "import { createHash } from 'node:crypto';\nimport { KEY_SIZE } from './constants.js';\n// import fs from 'node:fs';\n/* import net from 'node:net'; */"],
      ['src/noise/c.ts', "import { Socket } from 'net';\nimport type { TunDevice } from '../tun/tun.js';\nimport '../device/side-effect.js';"],
      ['src/platform/d.ts', "import type { TransportSlot } from '../noise/transport-slot.js';\nimport { readFileSync } from 'node:fs';"],
      ['src/tun/e.ts', "import { Device } from '../device/device.js';\nimport { IoThread } from '../platform/io-thread.js';"],
      ['src/overlay/f.ts', "import { main } from '../cli/main.js';\nimport { Device } from '../device/device.js';"],
      ['src/cli/g.ts', "import { runNode } from './node.js';\nimport { Device } from '../device/device.js';"],
    ]);
    expect(violations(made).map((v) => v.edge)).toEqual([
      'src/noise/a.ts -> node:fs',
      'src/noise/a.ts -> src/platform/packet-ring.js',
      'src/noise/a.ts -> src/device/peer.js',
      'src/noise/a.ts -> node:worker_threads',
      'src/noise/c.ts -> net',
      'src/noise/c.ts -> src/tun/tun.js',
      'src/noise/c.ts -> src/device/side-effect.js',
      'src/platform/d.ts -> src/noise/transport-slot.js',
      'src/tun/e.ts -> src/device/device.js',
      'src/overlay/f.ts -> src/cli/main.js',
    ]);
  });

  it('src/ keeps every wall', () => {
    const files = new Map(sourceFiles(SRC).map((path) => [relative(ROOT, path).replace(/\\/g, '/'), readFileSync(path, 'utf8')]));
    expect(files.size).toBeGreaterThan(100);
    // The reader sees the imports that are there: the device reaches the core, the TUN driver the platform.
    const device = importSpecifiers(files.get('src/device/device.ts')!);
    expect(device).toContain('../noise/index.js');
    expect(importSpecifiers(files.get('src/tun/linux.ts')!)).toContain('../platform/packet-ring.js');
    const broken = violations(files).filter((v) => !ALLOWED.has(v.edge));
    expect(broken.map((v) => `${v.edge}: ${v.why}`)).toEqual([]);
    // An allowance outlives its reason once its import is gone: then it must go too.
    const present = new Set(violations(files).map((v) => v.edge));
    expect([...ALLOWED].filter((edge) => !present.has(edge))).toEqual([]);
  });
});
