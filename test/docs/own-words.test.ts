/**
 * The code speaks of itself: comments, test names and strings in src/,
 * test/, bench/, scripts/ and examples/ say why in the project's own words.
 * They do not point at the notes it was built from (a catalog and its
 * sections, "the seeds"), at the Rust sources it is compatible with (crate
 * paths, versions, `.rs` files, "the reference system"), or at tracker
 * numbers: none of these is something a reader of this repository can open.
 *
 * Section signs stay where they cite something public: an RFC or the
 * WireGuard paper, named on the same line before the section.
 *
 * The rules run first on made-up lines, to show that each one catches what
 * it should, then on the real tree.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SCANNED_DIRS = ['src', 'test', 'bench', 'scripts', 'examples'];
const SCANNED_FILE = /\.(ts|mts|js|mjs|sh|ya?ml|json|conf|service|md)$/;
/** This file spells out the patterns it forbids. */
const SELF = relative(ROOT, fileURLToPath(import.meta.url));

interface Rule {
  name: string;
  /** The offending text in `line`, or null. */
  find: (line: string) => string | null;
}

const matching =
  (pattern: RegExp) =>
  (line: string): string | null =>
    pattern.exec(line)?.[0] ?? null;

/** A § that no RFC or paper named earlier on the line accounts for. */
function uncitedSection(line: string): string | null {
  for (let at = line.indexOf('§'); at !== -1; at = line.indexOf('§', at + 1)) {
    if (!/\b(RFC ?\d+|paper)\b/i.test(line.slice(0, at))) return line.slice(Math.max(0, at - 20), at + 6);
  }
  return null;
}

const RULES: readonly Rule[] = [
  { name: 'a catalog of notes', find: matching(/\bcatalog\b/i) },
  { name: 'the seeds the code was built from', find: matching(/\bseeds\b|\bseeds'|\b[Ss]eed (?:tests?|behaviou?rs?)\b|\((?:the )?seeds?: (?!number\b|bigint\b)|\b[Tt]he seed(?:'s| (?:used|skips|does|makes?)\b)|\bas the seeds?\b|\bseed-style\b/) },
  { name: 'a section of something unnamed', find: uncitedSection },
  { name: 'a tracker number', find: matching(/\b[Ii]ssues? ?#?\d+/) },
  { name: 'a reference nobody can open', find: matching(/\breference system\b|\bRust reference\b|\breference daemon\b/) },
  { name: 'a Rust source as a citation', find: matching(/\bzlayer[\w-]*(?:::\w+| \d+\.\d+\.\d+)|\b[\w-]+\.rs\b/) },
];

function offences(line: string): string[] {
  return RULES.flatMap((rule) => {
    const found = rule.find(line);
    return found === null ? [] : [`${rule.name}: "${found}"`];
  });
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return filesUnder(path);
    return SCANNED_FILE.test(name) ? [path] : [];
  });
}

describe('the rules catch what they should (made-up lines)', () => {
  it.each([
    ' * Semantics (seeds/CATALOG.md §2), by errno',
    '// ---- cluster addressing (§4) ----',
    " * The seeds' peer_spec_to_info, with its error wording:",
    "  it('the endpoint is checked first (as the seeds do)', () => {",
    ' * The built-in relay server (seed: RelayServer).',
    " * or JSON file, so a small mesh comes up (issue 7).",
    ' * (zlayer-overlay 0.12.8 `netlink.rs`), as methods',
    '/** What the control plane sends (zlayer_types::nat_wire::NatConfigSpec). */',
    "describe('seed tests (overlay netlink)', () => {",
    "// The seed skips this, but the kernel refuses it",
    ' * virtual interfaces (the reference system\'s `egress.rs`).',
    ' * (the Rust reference gives both base + 1).',
  ])('%s', (line) => {
    expect(offences(line)).not.toEqual([]);
  });

  it.each([
    '    // RFC 8489 §14.5: the length field covers MESSAGE-INTEGRITY',
    ' * MAC1, MAC2 and cookie replies (WireGuard paper §5.4.4 and §5.4.7).',
    "  it('RFC 5769 §2.1 sample request', () => {",
    '  const rng = new Rng(seed); // FUZZ_SEED=<seed> reproduces a run',
    ' * The seed is random per run unless FUZZ_SEED is set; it is printed',
    "export const SHARED_BRIDGE_KEY = '__zlayer_shared_bridge__';",
    "  [['zlayer', 'node-1', 'frontend-service'], 'b', 'zl-28f1288ce7-b'],",
    'function buildScenario(seed: number): Scenario {',
  ])('%s', (line) => {
    expect(offences(line)).toEqual([]);
  });
});

describe('the tree speaks of itself', () => {
  it('no comment, test name or string points at the notes, the Rust sources or a tracker', () => {
    const found: string[] = [];
    for (const dir of SCANNED_DIRS) {
      for (const path of filesUnder(join(ROOT, dir))) {
        const file = relative(ROOT, path);
        if (file === SELF) continue;
        readFileSync(path, 'utf8')
          .split('\n')
          .forEach((line, index) => {
            for (const offence of offences(line)) found.push(`${file}:${index + 1}: ${offence}`);
          });
      }
    }
    expect(found, `\n${found.join("\n")}\n`).toEqual([]);
  });
});
