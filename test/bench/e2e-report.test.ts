import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseVariable, tswgVariant } from '../../bench/lib/e2e-pairings.js';
import { E2E_DOCUMENT_KIND, baselineTable, readE2eDocument, resultTable, type E2eDocument, type PairingResult } from '../../bench/lib/e2e-report.js';
import type { MachineInfo } from '../../bench/lib/machine.js';
import { formatSummary, summarize } from '../../bench/lib/samples.js';

const machine: MachineInfo = { cpus: 2, kernel: 'k', node: 'v20', wireguardGo: 'wg-go', iperf3: 'iperf3', tswgCommit: 'abc' };

function pairing(id: string, figures: PairingResult['figures']): PairingResult {
  return { id, label: id, left: 'tswg', right: 'tswg', env: {}, figures };
}

function document(pairings: PairingResult[]): E2eDocument {
  return {
    kind: E2E_DOCUMENT_KIND,
    machine,
    options: { rounds: 5, duration: 5, mtu: 1420, pairings: pairings.map((p) => p.id), tests: ['tcp'] },
    startedAt: '2026-12-04T00:00:00.000Z',
    elapsedSeconds: 1,
    harnessCpuSeconds: 0.1,
    pairings,
  };
}

describe('bench:e2e samples', () => {
  it('keeps a failed sample in the count and out of the median', () => {
    const summary = summarize([500, null, 300, 700, 400]);
    expect(summary).toEqual({ median: 450, min: 300, max: 700, ok: 4, attempted: 5 });
    expect(formatSummary(summary)).toBe('450 (300–700) n=4/5');
  });

  it('shows a figure whose every sample failed as failed, not as a number', () => {
    expect(formatSummary(summarize([null, null]))).toBe('failed n=0/2');
    expect(formatSummary(summarize([12.5]))).toBe('12.5');
  });
});

describe('bench:e2e tables', () => {
  const reference = pairing('go-go', { 'TCP (Mbit/s)': [200, 300, 250] });
  const tswg = pairing('tswg-tswg', { 'TCP (Mbit/s)': [500, null, 600] });

  it('gives each pairing its median (min–max) and its ratio to the reference', () => {
    const table = resultTable(document([reference, tswg]), 'go-go');
    expect(table.headers).toEqual(['figure', 'go-go', 'tswg-tswg', 'tswg-tswg / ref']);
    expect(table.rows).toEqual([['TCP (Mbit/s)', '250 (200–300)', '550 (500–600) n=2/3', '2.20×']]);
  });

  it('compares medians with a baseline document read back from its JSON', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tswg-e2e-report-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'baseline.json');
    writeFileSync(file, JSON.stringify(document([pairing('tswg-tswg', { 'TCP (Mbit/s)': [275] })])));
    const table = baselineTable(document([reference, tswg]), readE2eDocument(file));
    expect(table.headers).toEqual(['figure', 'tswg-tswg now / baseline']);
    expect(table.rows).toEqual([['TCP (Mbit/s)', '2.00×']]);
  });

  it('refuses a baseline that is not a bench:e2e document, naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tswg-e2e-report-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'other.json');
    writeFileSync(file, '{"rows": []}');
    expect(() => readE2eDocument(file)).toThrow(`--baseline ${file}: not a bench:e2e --json document`);
    writeFileSync(file, 'not json');
    expect(() => readE2eDocument(file)).toThrow(/cannot read it as JSON/);
  });
});

describe('bench:e2e variants', () => {
  it('turns NAME=VALUE into a tswg↔tswg pairing with that environment', () => {
    const variant = tswgVariant(parseVariable('TSWG_TUN_OFFLOAD=0'));
    expect(variant).toMatchObject({ id: 'tswg-tswg+TSWG_TUN_OFFLOAD=0', left: 'tswg', right: 'tswg', env: { TSWG_TUN_OFFLOAD: '0' } });
    expect(() => parseVariable('TSWG_TUN_OFFLOAD')).toThrow(/expected NAME=VALUE/);
  });

  it('sets several variables in one pairing with NAME=VALUE,NAME=VALUE; a value keeps its own commas', () => {
    const variant = tswgVariant(parseVariable('TSWG_MAIN_POLL=1,TSWG_CRYPTO_WORKERS=2'));
    expect(variant).toMatchObject({
      id: 'tswg-tswg+TSWG_MAIN_POLL=1+TSWG_CRYPTO_WORKERS=2',
      label: 'tswg↔tswg TSWG_MAIN_POLL=1 TSWG_CRYPTO_WORKERS=2',
      env: { TSWG_MAIN_POLL: '1', TSWG_CRYPTO_WORKERS: '2' },
    });
    expect(Object.keys(variant.env)).toHaveLength(2);
    expect(parseVariable('LIST=a,b,c')).toEqual({ LIST: 'a,b,c' });
    expect(parseVariable('LIST=a,b,OTHER=c,d')).toEqual({ LIST: 'a,b', OTHER: 'c,d' });
    expect(parseVariable('EMPTY=,OTHER=1')).toEqual({ EMPTY: '', OTHER: '1' });
    expect(() => parseVariable('TSWG_MAIN_POLL=1,')).not.toThrow();
    expect(parseVariable('TSWG_MAIN_POLL=1,')).toEqual({ TSWG_MAIN_POLL: '1,' });
    expect(() => parseVariable('TSWG_MAIN_POLL=1,TSWG_MAIN_POLL=0')).toThrow(/TSWG_MAIN_POLL is set twice/);
    expect(() => parseVariable('=1,B=2')).toThrow(/expected NAME=VALUE/);
  });
});
