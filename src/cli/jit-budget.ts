/**
 * How soon V8 optimizes the packet path of a daemon. V8 compiles a function
 * with its optimizing compiler only after the function has run about three
 * times its interrupt budget of bytecode (67,584 bytes by default), so code
 * that runs once per packet stays in the interpreter and the baseline
 * compiler for the first ~1,500 packets: at a ping's pace, half a minute of
 * round trips twice as slow. The daemons lower the budget before they load
 * a device, so the same code is optimized after a few hundred packets.
 * Throughput and peak memory did not move measurably (BENCHMARKS.md).
 */
import { setFlagsFromString } from 'node:v8';
import { DAEMON_JIT_BUDGET } from './constants.js';

export const JIT_BUDGET_ENV = 'TSWG_JIT_BUDGET';
/** Below this V8 checks so often that the checks cost more than they save. */
const MIN_BUDGET = 1_024;
/** V8's own flag, also settable on node's command line (which then wins). */
const V8_FLAG = '--interrupt-budget';

/** `--interrupt-budget=N` or `--interrupt-budget N`, in either spelling; not the longer flags that begin with it. */
function setsBudget(arg: string): boolean {
  const flag = arg.replaceAll('_', '-').split('=')[0];
  return flag === V8_FLAG;
}

/**
 * Set the daemon's interrupt budget: `TSWG_JIT_BUDGET` bytes, or
 * DAEMON_JIT_BUDGET when unset; 0 leaves V8's default. A budget given on
 * node's own command line is left alone. Throws on a value that is not one.
 */
export function tuneJitForPackets(
  env: NodeJS.ProcessEnv = process.env,
  execArgv: readonly string[] = process.execArgv,
  setFlags: (flags: string) => void = setFlagsFromString,
): void {
  const text = env[JIT_BUDGET_ENV];
  let budget = DAEMON_JIT_BUDGET;
  if (text !== undefined && text !== '') {
    budget = /^\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(budget) || (budget !== 0 && budget < MIN_BUDGET)) {
      throw new Error(`${JIT_BUDGET_ENV}='${text}': give 0 (V8's default) or a whole number of bytes from ${MIN_BUDGET}`);
    }
  }
  if (budget === 0 || execArgv.some(setsBudget)) return;
  setFlags(`${V8_FLAG}=${budget}`);
}
