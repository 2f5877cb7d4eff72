/**
 * bench:e2e's results as one JSON document (figures with every sample,
 * pairings, versions) and the tables made from it: the run's own (median
 * with min–max per pairing, ratios to the reference pairing) and, given an
 * earlier document, this run against that baseline.
 */
import { readFileSync } from 'node:fs';
import type { MachineInfo } from './machine.js';
import { formatSummary, ratio, summarize, type Samples } from './samples.js';
import type { Cell } from './table.js';

export const E2E_DOCUMENT_KIND = 'tswg bench:e2e';

export interface PairingResult {
  id: string;
  label: string;
  left: string;
  right: string;
  /** Environment given to the tswg processes of this pairing (ablations). */
  env: Record<string, string>;
  /** Figure name → one sample per round (null: that round's measurement failed). */
  figures: Record<string, Samples>;
}

export interface E2eDocument {
  kind: typeof E2E_DOCUMENT_KIND;
  machine: MachineInfo;
  options: { rounds: number; duration: number; mtu: number; pairings: string[]; tests: string[] };
  startedAt: string;
  elapsedSeconds: number;
  /** CPU seconds the harness process itself used while measuring. */
  harnessCpuSeconds: number;
  pairings: PairingResult[];
}

export interface Table {
  headers: string[];
  rows: Cell[][];
}

/** Figure names in first-seen order, throughput and latency first, then CPU, then memory. */
function figureNames(pairings: readonly PairingResult[]): string[] {
  const names: string[] = [];
  for (const pairing of pairings) for (const name of Object.keys(pairing.figures)) if (!names.includes(name)) names.push(name);
  const rank = (name: string): number => (name.startsWith('CPU') ? 1 : name.startsWith('peak') ? 2 : 0);
  return names.sort((a, b) => rank(a) - rank(b));
}

const medianOf = (pairing: PairingResult | undefined, name: string): number | null => summarize(pairing?.figures[name] ?? []).median;

/** Every pairing's median (min–max), then each pairing's median over the reference's. */
export function resultTable(document: E2eDocument, referenceId: string): Table {
  const reference = document.pairings.find((pairing) => pairing.id === referenceId);
  const others = document.pairings.filter((pairing) => pairing !== reference);
  const headers = ['figure', ...document.pairings.map((pairing) => pairing.label), ...(reference ? others.map((pairing) => `${pairing.label} / ref`) : [])];
  const rows = figureNames(document.pairings).map((name) => [
    name,
    ...document.pairings.map((pairing) => (pairing.figures[name] === undefined ? null : formatSummary(summarize(pairing.figures[name]!)))),
    ...(reference ? others.map((pairing) => ratio(medianOf(pairing, name), medianOf(reference, name))) : []),
  ]);
  return { headers, rows };
}

/** For every pairing both runs measured: this run's median over the baseline's, figure by figure. */
export function baselineTable(document: E2eDocument, baseline: E2eDocument): Table {
  const common = document.pairings.filter((pairing) => baseline.pairings.some((old) => old.id === pairing.id));
  const headers = ['figure', ...common.map((pairing) => `${pairing.label} now / baseline`)];
  const names = figureNames(common).filter((name) => baseline.pairings.some((old) => old.figures[name] !== undefined));
  const rows = names.map((name) => [
    name,
    ...common.map((pairing) => ratio(medianOf(pairing, name), medianOf(baseline.pairings.find((old) => old.id === pairing.id), name))),
  ]);
  return { headers, rows };
}

/** Read a document written by `bench:e2e --json`; throws naming the file when it is not one. */
export function readE2eDocument(file: string): E2eDocument {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`--baseline ${file}: cannot read it as JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  const document = parsed as Partial<E2eDocument> | null;
  if (document === null || typeof document !== 'object' || document.kind !== E2E_DOCUMENT_KIND || !Array.isArray(document.pairings)) {
    throw new Error(`--baseline ${file}: not a bench:e2e --json document (kind "${E2E_DOCUMENT_KIND}")`);
  }
  return document as E2eDocument;
}
