/**
 * The daemons' V8 interrupt budget (src/cli/jit-budget.ts): what TSWG_JIT_BUDGET
 * accepts, that node's own flag wins, and that a daemon refuses a bad value
 * before it touches the system. What the budget buys is measured, not
 * asserted: BENCHMARKS.md. Needs `npm run build` first.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DAEMON_JIT_BUDGET } from '../../src/cli/constants.js';
import { JIT_BUDGET_ENV, tuneJitForPackets } from '../../src/cli/jit-budget.js';

const TSWG = new URL('../../bin/tswg', import.meta.url).pathname;

function flagsSet(env: NodeJS.ProcessEnv, execArgv: string[] = []): string[] {
  const set: string[] = [];
  tuneJitForPackets(env, execArgv, (flags) => set.push(flags));
  return set;
}

describe('TSWG_JIT_BUDGET', () => {
  it('unset or empty: the daemon budget; a number from 1024: that; 0: V8 left alone', () => {
    expect(flagsSet({})).toEqual([`--interrupt-budget=${DAEMON_JIT_BUDGET}`]);
    expect(flagsSet({ [JIT_BUDGET_ENV]: '' })).toEqual([`--interrupt-budget=${DAEMON_JIT_BUDGET}`]);
    expect(flagsSet({ [JIT_BUDGET_ENV]: '1024' })).toEqual(['--interrupt-budget=1024']);
    expect(flagsSet({ [JIT_BUDGET_ENV]: '67584' })).toEqual(['--interrupt-budget=67584']);
    expect(flagsSet({ [JIT_BUDGET_ENV]: '0' })).toEqual([]);
  });

  it("a budget on node's own command line wins, in either spelling", () => {
    expect(flagsSet({}, ['--interrupt-budget=100000'])).toEqual([]);
    expect(flagsSet({ [JIT_BUDGET_ENV]: '4096' }, ['--interrupt_budget=100000'])).toEqual([]);
    expect(flagsSet({}, ['--interrupt-budget', '100000'])).toEqual([]);
    expect(flagsSet({}, ['--max-old-space-size=512'])).toEqual([`--interrupt-budget=${DAEMON_JIT_BUDGET}`]);
    // A longer flag that begins the same is another flag: the budget is still set.
    expect(flagsSet({}, ['--interrupt-budget-for-feedback-allocation=100'])).toEqual([`--interrupt-budget=${DAEMON_JIT_BUDGET}`]);
  });

  it('anything else is refused with the variable and the accepted values named', () => {
    for (const bad of ['abc', '-1', '1023', '8k', '1e4', ' 8192', '9007199254740993']) {
      expect(() => flagsSet({ [JIT_BUDGET_ENV]: bad }), bad).toThrow(`${JIT_BUDGET_ENV}='${bad}': give 0 (V8's default) or a whole number of bytes from 1024`);
    }
  });

  it('the WireGuard daemon refuses a bad value before it creates anything, exit 1', () => {
    const name = `tswgjit${process.pid % 10_000}`;
    const out = spawnSync(TSWG, ['-f', name], { encoding: 'utf8', env: { ...process.env, [JIT_BUDGET_ENV]: 'fast' } });
    expect(out.status).toBe(1);
    expect(out.stderr).toContain(`${JIT_BUDGET_ENV}='fast'`);
    expect(spawnSync('ip', ['link', 'show', name], { encoding: 'utf8' }).status).not.toBe(0);
  });

  it('so does the overlay node, before it writes its data directory', () => {
    const dataDir = join(tmpdir(), `tswg-jit-${process.pid}`);
    const out = spawnSync(TSWG, ['node', '--data-dir', dataDir], { encoding: 'utf8', env: { ...process.env, [JIT_BUDGET_ENV]: '100' } });
    expect(out.status).toBe(1);
    expect(out.stderr).toContain(`${JIT_BUDGET_ENV}='100'`);
    expect(existsSync(dataDir)).toBe(false);
  });
});
