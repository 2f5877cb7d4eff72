/** ARCHITECTURE.md's import rules, checked against every import in src/. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { codeSpans } from './markdown.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const SRC = join(ROOT, 'src');
const doc = readFileSync(join(ROOT, 'ARCHITECTURE.md'), 'utf8');

/** Node modules that do I/O: the protocol core may use none of them. */
const IO_MODULES = ['node:fs', 'node:net', 'node:dgram', 'node:child_process', 'node:worker_threads', 'node:http', 'node:https', 'node:os', 'node:tty', 'koffi'];

function sourceFiles(directory: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** room → the rooms it may import, and the files of a room allowed as exceptions ("`noise` (only `transport-slot`…)"). */
function rules(): Map<string, { rooms: Set<string>; onlyFiles: Map<string, string[]> }> {
  const table = new Map<string, { rooms: Set<string>; onlyFiles: Map<string, string[]> }>();
  for (const line of doc.split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim());
    if (cells.length !== 5 || !/^`\w+`$/.test(cells[1]!)) continue;
    const room = codeSpans(cells[1]!)[0]!;
    const allowed = cells[3]!;
    const rooms = new Set<string>();
    const onlyFiles = new Map<string, string[]>();
    if (allowed === 'every room') rooms.add('*');
    for (const part of allowed.split(/,(?![^(]*\))/)) {
      const [name, ...only] = codeSpans(part);
      if (name === undefined) continue;
      rooms.add(name);
      if (/\(only /.test(part)) onlyFiles.set(name, only);
    }
    table.set(room, { rooms, onlyFiles });
  }
  return table;
}

describe('ARCHITECTURE.md', () => {
  const table = rules();

  test('names every room of src/', () => {
    const rooms = readdirSync(SRC).filter((name) => statSync(join(SRC, name)).isDirectory());
    expect([...table.keys()].sort()).toEqual(rooms.sort());
  });

  test('every import between rooms is one the table allows', () => {
    const broken: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const room = relative(SRC, file).split('/')[0]!;
      const rule = table.get(room);
      if (rule === undefined) continue;
      for (const match of readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^'"]*?from '(\.[^']+)'/gm)) {
        const target = relative(SRC, resolve(dirname(file), match[1]!)).split('/');
        const targetRoom = target[0]!;
        if (target.length === 1 || targetRoom === room || rule.rooms.has('*')) continue;
        const only = rule.onlyFiles.get(targetRoom);
        const allowed = rule.rooms.has(targetRoom) && (only === undefined || only.some((name) => target.at(-1)!.startsWith(`${name}.`)));
        if (!allowed) broken.push(`${relative(ROOT, file)} imports ${match[1]}`);
      }
    }
    expect(broken).toEqual([]);
  });

  test('the protocol core does no I/O', () => {
    const offenders: string[] = [];
    for (const file of sourceFiles(join(SRC, 'noise'))) {
      for (const match of readFileSync(file, 'utf8').matchAll(/from '([^']+)'/g)) {
        if (IO_MODULES.includes(match[1]!)) offenders.push(`${relative(ROOT, file)}: ${match[1]}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  test('the files and directories it points at exist', () => {
    for (const path of new Set([...doc.matchAll(/`(src\/[\w/.-]+)`/g)].map((match) => match[1]!))) {
      expect(() => statSync(join(ROOT, path)), path).not.toThrow();
    }
    for (const match of doc.matchAll(/\]\(([\w/.-]+)\)/g)) expect(() => statSync(join(ROOT, match[1]!)), match[1]).not.toThrow();
  });
});
