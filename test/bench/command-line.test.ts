/**
 * Every benchmark entry point answers `--help` with its usage (exit 0) and an
 * unknown option with one line naming it plus the usage (exit 2, no stack
 * trace). What the usage must name is read from the entry point's source:
 * the options and arguments its parseBenchArgs call declares.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { parseBenchArgs, usage } from '../../bench/lib/command-line.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BENCH = join(ROOT, 'bench');
/** bench/*.ts that are not run on their own. */
const NOT_ENTRY_POINTS = ['constants.ts'];
const ENTRY_POINTS = readdirSync(BENCH)
  .filter((name) => name.endsWith('.ts') && !NOT_ENTRY_POINTS.includes(name))
  .map((name) => name.slice(0, -'.ts'.length));

interface Declared {
  calls: number;
  options: string[];
  positionals: string[];
}

function propertyName(name: ts.PropertyName): string {
  if (ts.isIdentifier(name) || ts.isStringLiteral(name)) return name.text;
  throw new Error(`unexpected property name ${name.getText()}`);
}

function property(literal: ts.ObjectLiteralExpression, name: string): ts.Expression | undefined {
  for (const element of literal.properties) {
    if (ts.isPropertyAssignment(element) && propertyName(element.name) === name) return element.initializer;
  }
  return undefined;
}

/** The options and arguments an entry point's parseBenchArgs call declares, read from its source. */
function declared(entryPoint: string): Declared {
  const path = join(BENCH, `${entryPoint}.ts`);
  const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.ES2022, true);
  const result: Declared = { calls: 0, options: [], positionals: [] };
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'parseBenchArgs') {
      result.calls++;
      const commandLine = node.arguments[0];
      if (commandLine === undefined || !ts.isObjectLiteralExpression(commandLine)) throw new Error(`${entryPoint}: parseBenchArgs takes an object literal`);
      const options = property(commandLine, 'options');
      if (options === undefined || !ts.isObjectLiteralExpression(options)) throw new Error(`${entryPoint}: options is not an object literal`);
      for (const option of options.properties) {
        if (!ts.isPropertyAssignment(option)) throw new Error(`${entryPoint}: option ${option.getText()} is not a plain property`);
        result.options.push(propertyName(option.name));
      }
      const positionals = property(commandLine, 'positionals');
      if (positionals !== undefined) {
        if (!ts.isArrayLiteralExpression(positionals)) throw new Error(`${entryPoint}: positionals is not an array literal`);
        for (const positional of positionals.elements) {
          const name = ts.isObjectLiteralExpression(positional) ? property(positional, 'name') : undefined;
          if (name === undefined || !ts.isStringLiteral(name)) throw new Error(`${entryPoint}: a positional without a literal name`);
          result.positionals.push(name.text);
        }
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return result;
}

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runBuilt(entryPoint: string, args: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'dist', 'bench', `${entryPoint}.js`), ...args], { cwd: ROOT, timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

const STACK_FRAME = /^\s+at /m;

describe('benchmark command lines', () => {
  it('finds the entry points, each parsing its command line through parseBenchArgs once', () => {
    expect(ENTRY_POINTS).toEqual(expect.arrayContaining(['e2e', 'latency-hops', 'crypto-workers', 'membership', 'firewall']));
    for (const entryPoint of ENTRY_POINTS) {
      expect(declared(entryPoint).calls, entryPoint).toBe(1);
      expect(readFileSync(join(BENCH, `${entryPoint}.ts`), 'utf8'), entryPoint).not.toMatch(/\bparseArgs\(/);
    }
  });

  it.each(ENTRY_POINTS)('%s --help prints a usage naming every option and argument, exit 0', async (entryPoint) => {
    const { options, positionals } = declared(entryPoint);
    const outcome = await runBuilt(entryPoint, ['--help']);
    expect(outcome.stderr).toBe('');
    expect(outcome.code).toBe(0);
    expect(outcome.stdout).toContain(`usage: node dist/bench/${entryPoint}.js`);
    for (const option of [...options, 'help']) expect(outcome.stdout).toMatch(new RegExp(`^ {2}(-\\w, )?--${option}\\b`, 'm'));
    for (const positional of positionals) {
      expect(outcome.stdout).toContain(`[${positional}`);
      expect(outcome.stdout).toMatch(new RegExp(`^ {2}${positional.replace(/[/]/g, '\\/')} `, 'm'));
    }
    const short = await runBuilt(entryPoint, ['-h']);
    expect(short.code).toBe(0);
    expect(short.stdout).toBe(outcome.stdout);
  });

  it.each(ENTRY_POINTS)('%s refuses an unknown option in one line plus the usage, exit 2', async (entryPoint) => {
    const outcome = await runBuilt(entryPoint, ['--no-such-option']);
    expect(outcome.code).toBe(2);
    expect(outcome.stdout).toBe('');
    const [first, ...rest] = outcome.stderr.split('\n');
    expect(first).toMatch(/^[\w:-]+: unknown option --no-such-option$/);
    expect(rest.join('\n')).toContain(`usage: node dist/bench/${entryPoint}.js`);
    expect(outcome.stderr).not.toMatch(STACK_FRAME);
  });
});

describe('parseBenchArgs', () => {
  const commandLine = {
    npmScript: 'bench:example',
    measures: 'nothing at all',
    options: {
      rounds: { type: 'string', default: '3', value: 'N', description: 'rounds' },
      only: { type: 'string', multiple: true, value: 'NAME', description: 'one of them', shownDefault: 'all' },
      json: { type: 'boolean', description: 'as JSON' },
    },
    positionals: [{ name: 'count', description: 'how many', shownDefault: '7' }],
  } as const;

  it('returns the values and arguments as parseArgs does, defaults included', () => {
    const parsed = parseBenchArgs({ ...commandLine, args: ['--only', 'a', '--only', 'b', '--json', '12'] });
    expect(parsed.values).toEqual({ rounds: '3', only: ['a', 'b'], json: true });
    expect(parsed.positionals).toEqual(['12']);
    expect(parseBenchArgs({ ...commandLine, args: ['--rounds=9'] }).values.rounds).toBe('9');
  });

  it('writes each default, the placeholders and the synopsis into the usage', () => {
    const text = usage(commandLine, 'example.js');
    expect(text.split('\n')[0]).toBe('bench:example: nothing at all');
    expect(text).toContain('usage: node dist/bench/example.js [options] [count]');
    expect(text).toContain('npm run bench:example -- [options] [count]');
    expect(text).toMatch(/^ {2}--rounds N +rounds \(default 3\)$/m);
    expect(text).toMatch(/^ {2}--only NAME +one of them \(default all\)$/m);
    expect(text).toMatch(/^ {2}--json +as JSON$/m);
    expect(text).toMatch(/^ {2}count +how many \(default 7\)$/m);
  });
});
