/**
 * bench:hops's summary keeps a failed round in the count: the pair's median
 * is taken over the rounds that succeeded and the line says `n=2/3`.
 */
import { describe, expect, it } from 'vitest';
import { pingSummaryLines } from '../../bench/lib/hops-report.js';

describe('bench:hops summary', () => {
  it('counts a failed round as failed instead of dropping it', () => {
    const lines = pingSummaryLines(
      new Map([
        ['tswg', [0.5, null, 0.7]],
        ['wireguard-go', [0.2, 0.25, 0.3]],
      ]),
      'wireguard-go',
    );
    expect(lines).toEqual([
      'ping p50 (ms), median of 3 rounds (min–max), ratio to wireguard-go:',
      '  tswg: 0.600 (0.500–0.700) n=2/3 2.40×',
      '  wireguard-go: 0.250 (0.200–0.300) 1.00×',
    ]);
  });

  it('shows a pair whose every round failed as failed, and no ratio without a reference', () => {
    const lines = pingSummaryLines(
      new Map([
        ['tswg', [0.4, 0.6]],
        ['wireguard-go', [null, null]],
      ]),
      'wireguard-go',
    );
    expect(lines.slice(1)).toEqual(['  tswg: 0.500 (0.400–0.600) no reference', '  wireguard-go: failed n=0/2']);
  });
});
