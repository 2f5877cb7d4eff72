/**
 * A benchmark figure's samples, one per round, where a failed round stays a
 * visible gap (null) instead of vanishing: the summary says how many of the
 * attempted samples succeeded, so `n=4/5` shows in every table that used it.
 */
import { median } from './stats.js';
import { formatNumber } from './table.js';

/** One value per round; null where that round's measurement failed. */
export type Samples = (number | null)[];

export interface SampleSummary {
  median: number | null;
  min: number | null;
  max: number | null;
  /** Samples that succeeded, of those attempted. */
  ok: number;
  attempted: number;
}

export function summarize(samples: Samples): SampleSummary {
  const values = samples.filter((value): value is number => value !== null);
  return {
    median: median(values),
    min: values.length === 0 ? null : Math.min(...values),
    max: values.length === 0 ? null : Math.max(...values),
    ok: values.length,
    attempted: samples.length,
  };
}

/** "552 (530–580)", a lone sample "552", and " n=4/5" appended whenever a sample failed. */
export function formatSummary(summary: SampleSummary): string {
  if (summary.median === null) return summary.attempted === 0 ? '–' : `failed n=0/${summary.attempted}`;
  const spread = summary.ok > 1 ? ` (${formatNumber(summary.min)}–${formatNumber(summary.max)})` : '';
  const count = summary.ok < summary.attempted ? ` n=${summary.ok}/${summary.attempted}` : '';
  return `${formatNumber(summary.median)}${spread}${count}`;
}

/** a / b as "1.23×"; null when either is missing or b is 0. */
export function ratio(a: number | null, b: number | null): string | null {
  return a === null || b === null || b === 0 ? null : `${(a / b).toFixed(2)}×`;
}
