/**
 * errno numbers -> names and the C library's words for them, and the
 * NetlinkError a kernel refusal becomes.
 */
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { NetlinkError } from '../errors.js';

/** glibc's strerror() text for the errnos RTNETLINK answers most (what `ip` prints). */
const MESSAGES: Record<number, string> = {
  1: 'Operation not permitted',
  2: 'No such file or directory',
  3: 'No such process',
  13: 'Permission denied',
  16: 'Device or resource busy',
  17: 'File exists',
  19: 'No such device',
  22: 'Invalid argument',
  34: 'Numerical result out of range',
  95: 'Operation not supported',
  99: 'Cannot assign requested address',
  101: 'Network is unreachable',
  105: 'No buffer space available',
  110: 'Connection timed out',
};

let names: Map<number, string> | null = null;

/** 'EEXIST' for 17; `errno N` when unknown. */
export function errnoName(errno: number): string {
  if (names === null) {
    names = new Map();
    for (const [name, value] of Object.entries(osConstants.errno)) if (!names.has(value)) names.set(value, name);
  }
  return names.get(errno) ?? `errno ${errno}`;
}

/** 'File exists' for 17. */
function errnoMessage(errno: number): string {
  const known = MESSAGES[errno];
  if (known !== undefined) return known;
  const fromLibuv = getSystemErrorMap().get(-errno);
  return fromLibuv?.[1] ?? `error ${errno}`;
}

/** The error for a request the kernel refused: "<operation> failed: File exists (EEXIST): <extack>". */
export function kernelError(operation: string, errno: number, extack?: string): NetlinkError {
  const code = errnoName(errno);
  const detail = extack !== undefined ? `: ${extack}` : '';
  return new NetlinkError(`${operation} failed: ${errnoMessage(errno)} (${code})${detail}`, errno, operation, code);
}
