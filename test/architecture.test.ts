/**
 * The walls between the rooms of src/. ARCHITECTURE.md's table is the
 * statement: which rooms each room may import. The code is checked against
 * it here, with a reader of import statements (type-only imports included: a
 * type couples as much), and the rules are first run on made-up files to show
 * that each catches what it should. `npm run lint` enforces the same walls
 * with dependency-cruiser; its configuration is checked against the table,
 * and the tool itself is run on the real tree and on a made-up one.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { codeSpans } from './docs/markdown.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');
const DOC = readFileSync(join(ROOT, 'ARCHITECTURE.md'), 'utf8');
const DEPCRUISE = join(ROOT, 'node_modules', '.bin', 'depcruise');
const run = promisify(execFile);

/** Node modules that do I/O, and koffi (system calls): the protocol core uses none of them. */
const IO_MODULES = ['fs', 'net', 'dgram', 'child_process', 'worker_threads', 'http', 'https', 'os', 'tty', 'koffi'];

/** room → the rooms it may import, read from ARCHITECTURE.md's table ("nothing of ours", "every room" or code spans naming rooms). */
function roomTable(doc: string): Map<string, Set<string>> {
  const rows = doc
    .split('\n')
    .map((line) => line.split('|').map((cell) => cell.trim()))
    .filter((cells) => cells.length === 5 && /^`\w+`$/.test(cells[1]!));
  const rooms = rows.map((cells) => codeSpans(cells[1]!)[0]!);
  const table = new Map<string, Set<string>>();
  for (const cells of rows) {
    const room = codeSpans(cells[1]!)[0]!;
    const allowed = cells[3]!;
    if (allowed.startsWith('nothing of ours')) table.set(room, new Set());
    else if (allowed === 'every room') table.set(room, new Set(rooms.filter((other) => other !== room)));
    else {
      const named = codeSpans(allowed);
      const unknown = named.filter((name) => !rooms.includes(name));
      if (unknown.length > 0) throw new Error(`ARCHITECTURE.md: ${room} may import unknown rooms ${unknown.join(', ')}`);
      table.set(room, new Set(named));
    }
  }
  return table;
}

interface Import {
  specifier: string;
  /** False for `import type` and for imports that take only types: erased, they load nothing. */
  loads: boolean;
  /** True for `import()`: loaded when the code runs there, not at start-up. */
  dynamic?: boolean;
}

/** Every import, re-export and dynamic import() in `source`. */
export function imports(source: string): Import[] {
  // Comments that start a line go first (a commented-out import is none); strings such as 'src/**/*.ts' stay.
  const code = source.replace(/^\s*\/\*[\s\S]*?\*\//gm, '').replace(/^\s*\/\/.*$/gm, '');
  const found: Import[] = [];
  for (const match of code.matchAll(/\b(import|export)\s+(type\s+)?([^'"`;]*?)\bfrom\s*['"]([^'"]+)['"]/g)) {
    const names = /\{([^}]*)\}/.exec(match[3]!)?.[1];
    const onlyTypes = names !== undefined && !/\*|^\s*\w+\s*,/.test(match[3]!) && names.split(',').every((name) => name.trim() === '' || /^type\s/.test(name.trim()));
    found.push({ specifier: match[4]!, loads: match[2] === undefined && !onlyTypes });
  }
  for (const match of code.matchAll(/\bimport\s*['"]([^'"]+)['"]/g)) found.push({ specifier: match[1]!, loads: true });
  for (const match of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push({ specifier: match[1]!, loads: true, dynamic: true });
  return found;
}

/** A relative specifier as a path from the root ('src/device/peer.ts'); a package or node: module as it is. */
function target(file: string, specifier: string): string {
  if (!specifier.startsWith('.')) return specifier;
  return relative(ROOT, resolve(ROOT, dirname(file), specifier)).replace(/\\/g, '/').replace(/\.js$/, '.ts');
}

const roomOf = (path: string): string | null => /^src\/(\w+)\//.exec(path)?.[1] ?? null;
const isIoModule = (name: string) => IO_MODULES.some((io) => name === io || name === `node:${io}` || name.startsWith(`node:${io}/`) || name.startsWith(`${io}/`));

/** Files started as worker threads: `workerScriptUrl(import.meta.url, './x.js')` names them. */
function workerEntryPoints(files: ReadonlyMap<string, string>): string[] {
  const entries: string[] = [];
  for (const [file, source] of files) {
    for (const match of source.matchAll(/workerScriptUrl\(\s*import\.meta\.url\s*,\s*'([^']+)'\s*\)/g)) entries.push(target(file, match[1]!));
  }
  return entries;
}

/** The files a worker thread loads: the entry points and their imports that load, transitively. */
function workerLoaded(files: ReadonlyMap<string, string>): Set<string> {
  const seen = new Set<string>();
  const stack = workerEntryPoints(files);
  while (stack.length > 0) {
    const file = stack.pop()!;
    if (seen.has(file) || !files.has(file)) continue;
    seen.add(file);
    for (const { specifier, loads } of imports(files.get(file)!)) if (loads && specifier.startsWith('.')) stack.push(target(file, specifier));
  }
  return seen;
}

/** The files a worker thread loads that import another room. */
function workerSideCrossRoom(files: ReadonlyMap<string, string>): string[] {
  return [...workerLoaded(files)].filter((file) => imports(files.get(file)!).some(({ specifier }) => roomOf(target(file, specifier)) !== null && roomOf(target(file, specifier)) !== roomOf(file))).sort();
}

/** The files that `entry` loads at start-up: its static imports that load, transitively (no `import()`). */
function loadedAtStart(files: ReadonlyMap<string, string>, entry: string): Set<string> {
  const seen = new Set<string>();
  const stack = [entry];
  while (stack.length > 0) {
    const file = stack.pop()!;
    if (seen.has(file) || !files.has(file)) continue;
    seen.add(file);
    for (const { specifier, loads, dynamic } of imports(files.get(file)!)) if (loads && dynamic !== true && specifier.startsWith('.')) stack.push(target(file, specifier));
  }
  return seen;
}

/** Every broken wall in `files` (path from the root → source), as "file -> target: why". */
export function violations(files: ReadonlyMap<string, string>, table: ReadonlyMap<string, ReadonlySet<string>>, workerSide: readonly string[], secondIndexes: readonly string[] = []): string[] {
  const found: string[] = [];
  for (const [file, source] of files) {
    const room = roomOf(file);
    if (room === null) continue;
    for (const { specifier } of imports(source)) {
      const to = target(file, specifier);
      const toRoom = roomOf(to);
      if (room === 'noise' && isIoModule(to)) found.push(`${file} -> ${to}: the protocol core does no I/O`);
      if (toRoom === null || toRoom === room) continue;
      if (!table.get(room)!.has(toRoom)) found.push(`${file} -> ${to}: ${room} may not import ${toRoom}`);
      else if (to !== `src/${toRoom}/index.ts` && !secondIndexes.includes(to) && !workerSide.includes(file)) found.push(`${file} -> ${to}: through src/${toRoom}/index.ts only`);
    }
  }
  return found;
}

/** A room-level cycle in the table, as a list of rooms, or null. */
function tableCycle(table: ReadonlyMap<string, ReadonlySet<string>>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const visit = (room: string, path: string[]): string[] | null => {
    if (state.get(room) === 'open') return [...path.slice(path.indexOf(room)), room];
    if (state.get(room) === 'done') return null;
    state.set(room, 'open');
    for (const next of table.get(room) ?? []) {
      const cycle = visit(next, [...path, room]);
      if (cycle !== null) return cycle;
    }
    state.set(room, 'done');
    return null;
  };
  for (const room of table.keys()) {
    const cycle = visit(room, []);
    if (cycle !== null) return cycle;
  }
  return null;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

const table = roomTable(DOC);
/** The indexes a room offers besides its index.ts, as ARCHITECTURE.md's bullet on them names them. */
const SECOND_INDEX_BULLET = DOC.slice(DOC.indexOf('- The platform room has two indexes'));
const secondIndexes = codeSpans(SECOND_INDEX_BULLET.slice(0, SECOND_INDEX_BULLET.indexOf('\n-')))
  .filter((span) => /^src\/\w+\/[\w-]+\.ts$/.test(span) && !span.endsWith('/index.ts') && !span.endsWith('/public.ts'));
/** What configures the kernel's network: the files behind the platform's second index. */
const isNetworkConfig = (file: string) => /^src\/platform\/(netlink\/|netns\.ts|sysctl\.ts|egress\.ts|bind-to-device\.ts|network-config\.ts)/.test(file);
const tree = new Map(sourceFiles(SRC).map((path) => [relative(ROOT, path).replace(/\\/g, '/'), readFileSync(path, 'utf8')]));

interface Rule {
  name: string;
  from: { path: string; pathNot?: string[] };
  to: { path?: string | string[]; pathNot?: string[] };
}
const config = createRequire(import.meta.url)(join(ROOT, '.dependency-cruiser.cjs')) as { forbidden: Rule[] };

/** Runs dependency-cruiser with the project's configuration on `dir`'s src/; its exit status and report. */
async function depcruise(dir: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout } = await run(DEPCRUISE, ['src', '--config', join(ROOT, '.dependency-cruiser.cjs'), '--output-type', 'err-long'], { cwd: dir });
    return { code: 0, output: stdout };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, output: `${failed.stdout}${failed.stderr}` };
  }
}

/** Made-up files, one breaking each wall, with the rule of each tool that must catch it. */
const MADE_UP: ReadonlyArray<{ file: string; source: string; reader: string; lint: string }> = [
  { file: 'src/noise/reads-files.ts', source: "import {\n  readFileSync,\n} from 'node:fs';\nexport const f = readFileSync;", reader: 'src/noise/reads-files.ts -> node:fs: the protocol core does no I/O', lint: 'noise-does-no-io' },
  { file: 'src/noise/calls-libc.ts', source: "const koffi = await import('koffi');\nexport default koffi;", reader: 'src/noise/calls-libc.ts -> koffi: the protocol core does no I/O', lint: 'noise-does-no-io' },
  { file: 'src/platform/knows-wireguard.ts', source: "import type { Tunnel } from '../noise/index.js';\nexport type T = Tunnel;", reader: 'src/platform/knows-wireguard.ts -> src/noise/index.ts: platform may not import noise', lint: 'platform-imports-only-itself' },
  { file: 'src/tun/drives-device.ts', source: "export { Device } from '../device/index.js';", reader: 'src/tun/drives-device.ts -> src/device/index.ts: tun may not import device', lint: 'tun-imports-only-platform' },
  { file: 'src/nat/uses-cli.ts', source: "import '../cli/main.js';", reader: 'src/nat/uses-cli.ts -> src/cli/main.ts: nat may not import cli', lint: 'nat-imports-only-noise-platform-device' },
  { file: 'src/overlay/reaches-in.ts', source: "import { Peer } from '../device/peer.js';\nexport const p = Peer;", reader: 'src/overlay/reaches-in.ts -> src/device/peer.ts: through src/device/index.ts only', lint: 'through-the-index' },
];
/** Made-up files that break nothing: a room's own files, another room's index, type-only imports in the core. */
const MADE_UP_FINE: ReadonlyArray<{ file: string; source: string }> = [
  { file: 'src/noise/index.ts', source: "import { createHash } from 'node:crypto';\nexport const h = createHash;\n// import fs from 'node:fs';\n/* import net from 'node:net'; */" },
  { file: 'src/device/index.ts', source: "export { Peer } from './peer.js';\nexport { h } from '../noise/index.js';" },
  { file: 'src/device/peer.ts', source: 'export class Peer {}' },
  { file: 'src/cli/main.ts', source: "import { Peer } from '../device/index.js';\nexport const run = async () => [await import('./node.js'), Peer];" },
  { file: 'src/cli/node.ts', source: "import type { Peer } from '../device/index.js';\nexport type P = Peer;" },
];

describe('architecture: the walls between the rooms of src/', () => {
  it('ARCHITECTURE.md names every room of src/, and its table has no cycle between rooms', () => {
    const rooms = readdirSync(SRC).filter((name) => statSync(join(SRC, name)).isDirectory());
    expect([...table.keys()].sort()).toEqual(rooms.sort());
    expect(tableCycle(table)).toBeNull();
    // The reader of the table sees what it says: no room for the platform, every room for the command line.
    expect([...table.get('platform')!]).toEqual([]);
    expect([...table.get('tun')!]).toEqual(['platform']);
    expect(table.get('cli')!.size).toBe(rooms.length - 1);
    expect(tableCycle(new Map([['a', new Set(['b'])], ['b', new Set(['a'])]]))).toEqual(['a', 'b', 'a']);
  });

  it('each rule catches what it should, in made-up files (multi-line, type-only, re-exports, dynamic imports)', () => {
    const made = new Map([...MADE_UP, ...MADE_UP_FINE].map(({ file, source }) => [file, source]));
    expect(violations(made, table, [])).toEqual(MADE_UP.map(({ reader }) => reader));
    // A worker-side file may import the one file it needs.
    expect(violations(new Map([['src/overlay/reaches-in.ts', MADE_UP[5]!.source]]), table, ['src/overlay/reaches-in.ts'])).toEqual([]);
    // What loads and what is erased.
    expect(imports("import type { A } from './a.js';\nimport { type B, type C } from './b.js';\nimport { D, type E } from './d.js';\nimport F, { type G } from './f.js';").map((i) => i.loads)).toEqual([false, false, true, true]);
  });

  it('src/ keeps every wall of the table', () => {
    expect(tree.size).toBeGreaterThan(100);
    // The reader sees the imports that are there: the device reaches the core through its index.
    expect(imports(tree.get('src/device/device.ts')!).map((i) => i.specifier)).toContain('../noise/index.js');
    expect(violations(tree, table, workerSideCrossRoom(tree), secondIndexes)).toEqual([]);
  });

  it("the platform's second index is the one ARCHITECTURE.md and the lint configuration name, and the WireGuard daemon loads none of what is behind it", () => {
    expect(secondIndexes).toEqual(['src/platform/network-config.ts']);
    const allowed = config.forbidden.find((rule) => rule.name === 'through-the-index')!.to.pathNot!;
    for (const file of secondIndexes) expect(allowed).toContain(`^${file.replace(/\./g, '\\.')}$`);
    // Without it, an import of the second index is a broken wall.
    const reaching = new Map([['src/overlay/links.ts', "export { listAllLinks } from '../platform/network-config.js';"]]);
    expect(violations(reaching, table, [], secondIndexes)).toEqual([]);
    expect(violations(reaching, table, [])).toEqual(['src/overlay/links.ts -> src/platform/network-config.ts: through src/platform/index.ts only']);
    // `tswg INTERFACE` starts from main.ts; `tswg node` and `tswg netcheck` are import()ed from there.
    const daemon = loadedAtStart(tree, 'src/cli/main.ts');
    expect(daemon).toContain('src/platform/index.ts');
    expect(daemon).toContain('src/platform/packet-ring.ts');
    expect([...daemon].filter(isNetworkConfig)).toEqual([]);
    // The node does load it: the check sees what is there.
    expect([...loadedAtStart(tree, 'src/cli/node.ts')].filter(isNetworkConfig)).toContain('src/platform/netlink/rtnetlink.ts');
  });

  it('a worker thread loads no room index; the files it loads that import another room are the ones ARCHITECTURE.md and the lint configuration exempt', () => {
    expect(workerEntryPoints(tree).sort()).toEqual(['src/device/crypto-worker.ts', 'src/platform/io-worker.ts']);
    // A worker loads no room whole: no index.ts among its files.
    const loaded = workerLoaded(tree);
    expect(loaded.size).toBeGreaterThan(2);
    expect([...loaded].filter((file) => file.endsWith('/index.ts'))).toEqual([]);
    const workerSide = workerSideCrossRoom(tree);
    expect(workerSide).toEqual(['src/device/crypto-jobs.ts', 'src/device/crypto-worker.ts']);
    const stated = DOC.slice(DOC.indexOf('through its `index.ts` only'));
    for (const file of workerSide) expect(stated.slice(0, stated.indexOf('\n-')), file).toContain(`\`${file}\``);
    const exempt = config.forbidden.find((rule) => rule.name === 'through-the-index')!.from.pathNot!;
    expect(exempt.map((pattern) => pattern.replace(/^\^|\$$/g, '').replace(/\\\./g, '.')).sort()).toEqual(workerSide);
  });

  it("the lint configuration forbids each room exactly the rooms the table does not allow it", () => {
    for (const [room, allowed] of table) {
      const rule = config.forbidden.find((candidate) => candidate.from.path === `^src/${room}/` && candidate.name.startsWith(`${room}-imports-only-`));
      const forbidden = [...table.keys()].filter((other) => other !== room && !allowed.has(other)).sort();
      if (forbidden.length === 0) {
        expect(rule, room).toBeUndefined();
        continue;
      }
      expect(rule, room).toBeDefined();
      expect(/^\^src\/\(([\w|]+)\)\/$/.exec(rule!.to.path as string)?.[1]?.split('|').sort(), room).toEqual(forbidden);
    }
  });

  it('npm run lint passes on src/', { timeout: 180_000 }, async () => {
    const { code, output } = await depcruise(ROOT);
    expect(output).toMatch(/no dependency violations found \((\d{3,}) modules/);
    expect(code).toBe(0);
  });

  it('npm run lint catches each broken wall, and an import cycle, in a made-up tree', { timeout: 180_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tswg-walls-'));
    try {
      symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
      writeFileSync(join(dir, 'tsconfig.json'), readFileSync(join(ROOT, 'tsconfig.json')));
      const cycle = [
        { file: 'src/overlay/egg.ts', source: "import { hen } from './hen.js';\nexport const egg = () => hen;" },
        { file: 'src/overlay/hen.ts', source: "import { egg } from './egg.js';\nexport const hen = () => egg;" },
      ];
      for (const { file, source } of [...MADE_UP, ...MADE_UP_FINE, ...cycle]) {
        mkdirSync(join(dir, dirname(file)), { recursive: true });
        writeFileSync(join(dir, file), source);
      }
      const { code, output } = await depcruise(dir);
      expect(code).not.toBe(0);
      for (const { file, lint } of MADE_UP) expect(output, `${lint} in ${file}`).toMatch(new RegExp(`error ${lint}: ${file}`));
      expect(output).toMatch(/error no-cycles: src\/overlay\/(egg|hen)\.ts/);
      // Exactly those: the files that break nothing are not reported.
      for (const { file } of MADE_UP_FINE) expect(output).not.toMatch(new RegExp(`error [\\w-]+: ${file}`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the files and directories ARCHITECTURE.md points at exist', () => {
    for (const path of new Set([...DOC.matchAll(/`(src\/[\w/.-]+)`/g)].map((match) => match[1]!))) {
      expect(() => statSync(join(ROOT, path)), path).not.toThrow();
    }
    for (const match of DOC.matchAll(/\]\(([\w/.-]+)\)/g)) expect(() => statSync(join(ROOT, match[1]!)), match[1]).not.toThrow();
  });
});
