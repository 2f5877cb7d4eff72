/**
 * Leaving the process at once. process.exit() ends in libc's exit(), whose
 * destructors join libuv's thread pool: a DNS lookup stuck in getaddrinfo
 * (a DNS server that does not answer: 5 to 30 s) then holds a process that
 * has already cleaned up, and `tswg node` would not stop within its 2 s.
 */
import koffi from 'koffi';

let exitFunction: ((code: number) => void) | null = null;

/**
 * _exit(2): no 'exit' listeners, no destructors. Only for a process whose
 * work is done; what it wrote to stdout and stderr is already written (Node
 * writes files, pipes and terminals synchronously on Linux).
 */
export function exitNow(code: number): never {
  try {
    exitFunction ??= koffi.load('libc.so.6').func('void _exit(int status)') as (code: number) => void;
    exitFunction(code);
  } catch {
    // No FFI: the ordinary exit, which may wait for the thread pool.
  }
  process.exit(code);
}
