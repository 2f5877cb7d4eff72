/**
 * A benchmark's command line: node's parseArgs, plus what a newcomer tries
 * first. `--help`/`-h` prints the usage (what it measures, each option with
 * its default) and exits 0; an option it does not know, a missing value or
 * an argument too many prints one line saying so and the usage, and exits 2,
 * never a stack trace.
 */
import { basename } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

type OptionConfig = NonNullable<ParseArgsConfig['options']>[string];

/** One option as parseArgs takes it, with what the usage says of it. */
export type BenchOption = OptionConfig & {
  /** What it sets, in a few words. */
  description: string;
  /** The value's placeholder in the usage; default `VALUE`. */
  value?: string;
  /** The default the usage shows when parseArgs has none (the script applies it). */
  shownDefault?: string;
};

export interface BenchPositional {
  name: string;
  description: string;
  shownDefault?: string;
}

export interface BenchCommandLine<O extends Record<string, BenchOption>> {
  /** The npm script that runs it (`bench:e2e`), when there is one. */
  npmScript?: string;
  /** One line: what it measures. */
  measures: string;
  options: O;
  /** Arguments by position, all optional, in order. */
  positionals?: readonly BenchPositional[];
  /** Default: the command line of this process. */
  args?: readonly string[];
}

type Parsed<O extends Record<string, BenchOption>> = ReturnType<typeof parseArgs<{ options: O; allowPositionals: true }>>;

/** Exit status for bad flags or arguments, as everywhere in tswg. */
const EXIT_USAGE = 2;
const HELP_OPTION = { type: 'boolean', short: 'h' } as const;
/** Column where the descriptions start. */
const DESCRIPTION_COLUMN = 30;

function optionLabel(name: string, option: BenchOption): string {
  const short = option.short === undefined ? '' : `-${option.short}, `;
  const value = option.type === 'string' ? ` ${option.value ?? 'VALUE'}` : '';
  return `${short}--${name}${value}`;
}

function defaultText(option: BenchOption): string | undefined {
  if (option.shownDefault !== undefined) return option.shownDefault;
  const value = option.default;
  if (value === undefined || value === false) return undefined;
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.join(', ');
  return String(value);
}

function line(label: string, description: string, shownDefault: string | undefined): string {
  const text = shownDefault === undefined ? description : `${description} (default ${shownDefault})`;
  return `  ${label.padEnd(DESCRIPTION_COLUMN - 3)} ${text}`;
}

/** The usage text: what it measures, how it is started, each option and argument. */
export function usage<O extends Record<string, BenchOption>>(commandLine: BenchCommandLine<O>, file = basename(process.argv[1] ?? 'bench.js')): string {
  const positionals = commandLine.positionals ?? [];
  const argumentsText = positionals.reduceRight((inner, positional) => ` [${positional.name}${inner}]`, '');
  const synopsis = `[options]${argumentsText}`;
  const title = commandLine.npmScript ?? basename(file, '.js');
  const lines = [`${title}: ${commandLine.measures}`, '', `usage: node dist/bench/${file} ${synopsis}`];
  if (commandLine.npmScript !== undefined) lines.push(`       npm run ${commandLine.npmScript} -- ${synopsis}`);
  if (positionals.length > 0) {
    lines.push('', 'arguments:');
    for (const positional of positionals) lines.push(line(positional.name, positional.description, positional.shownDefault));
  }
  lines.push('', 'options:');
  for (const [name, option] of Object.entries(commandLine.options)) lines.push(line(optionLabel(name, option), option.description, defaultText(option)));
  lines.push(line('-h, --help', 'print this text and exit', undefined));
  return `${lines.join('\n')}\n`;
}

/** The one line that says what is wrong with the command line. */
function problem(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const unknown = /^Unknown option '([^']+)'/.exec(message);
  if (unknown !== null) return `unknown option ${unknown[1]}`;
  // parseArgs adds advice on `--` after the first sentence; the usage says enough.
  return message.split('\n')[0]!.replace(/\. To specify .*$/, '');
}

function refuse(commandLine: BenchCommandLine<Record<string, BenchOption>>, what: string): never {
  const title = commandLine.npmScript ?? basename(process.argv[1] ?? 'bench', '.js');
  process.stderr.write(`${title}: ${what}\n\n${usage(commandLine)}`);
  process.exit(EXIT_USAGE);
}

/**
 * Parse the command line as parseArgs does (strict: only the declared
 * options). Does not return for `--help` (exit 0) or a bad command line
 * (exit 2).
 */
export function parseBenchArgs<O extends Record<string, BenchOption>>(commandLine: BenchCommandLine<O>): Parsed<O> {
  const options = Object.fromEntries(Object.entries(commandLine.options).map(([name, { description: _d, value: _v, shownDefault: _s, ...config }]) => [name, config]));
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({
      args: [...(commandLine.args ?? process.argv.slice(2))],
      options: { ...options, help: HELP_OPTION },
      allowPositionals: true,
      strict: true,
    }) as unknown as Parsed<O>;
  } catch (error) {
    refuse(commandLine, problem(error));
  }
  if ((parsed.values as { help?: boolean }).help === true) {
    process.stdout.write(usage(commandLine));
    process.exit(0);
  }
  const allowed = commandLine.positionals?.length ?? 0;
  if (parsed.positionals.length > allowed) {
    refuse(commandLine, `unexpected argument ${parsed.positionals[allowed]}${allowed === 0 ? ' (this benchmark takes options only)' : ''}`);
  }
  return parsed;
}
