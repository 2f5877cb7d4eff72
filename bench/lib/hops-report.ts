/**
 * bench:hops's closing summary: each pair's ping p50 over the rounds, its
 * min–max, how many rounds succeeded (`n=2/3` when one failed; a failed round
 * never vanishes) and its ratio to the reference pair.
 */
import { summarize, type Samples } from './samples.js';

const milliseconds = (value: number): string => value.toFixed(3);

/** One line per pair, in the map's order, headed by what the figures are. */
export function pingSummaryLines(p50s: ReadonlyMap<string, Samples>, referenceName: string): string[] {
  const reference = summarize(p50s.get(referenceName) ?? []).median;
  const rounds = Math.max(0, ...[...p50s.values()].map((samples) => samples.length));
  const lines = [`ping p50 (ms), median of ${rounds} rounds (min–max), ratio to ${referenceName}:`];
  for (const [name, samples] of p50s) {
    const summary = summarize(samples);
    const count = summary.ok < summary.attempted ? ` n=${summary.ok}/${summary.attempted}` : '';
    if (summary.median === null) {
      lines.push(`  ${name}: failed${count}`);
      continue;
    }
    const ratio = reference === null || reference === 0 ? 'no reference' : `${(summary.median / reference).toFixed(2)}×`;
    lines.push(`  ${name}: ${milliseconds(summary.median)} (${milliseconds(summary.min!)}–${milliseconds(summary.max!)})${count} ${ratio}`);
  }
  return lines;
}
