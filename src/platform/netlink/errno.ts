/**
 * errno numbers -> names and the C library's words for them, and the
 * NetlinkError a kernel refusal becomes.
 */
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { EACCES, EADDRNOTAVAIL, EBUSY, EEXIST, EINVAL, ENETUNREACH, ENOBUFS, ENODEV, ENOENT, EOPNOTSUPP, EPERM, ERANGE, ESRCH, ETIMEDOUT } from '../errno.js';
import { NetlinkError } from '../errors.js';

/** glibc's strerror() text for the errnos RTNETLINK answers most (what `ip` prints). */
const MESSAGES: Record<number, string> = {
  [EPERM]: 'Operation not permitted',
  [ENOENT]: 'No such file or directory',
  [ESRCH]: 'No such process',
  [EACCES]: 'Permission denied',
  [EBUSY]: 'Device or resource busy',
  [EEXIST]: 'File exists',
  [ENODEV]: 'No such device',
  [EINVAL]: 'Invalid argument',
  [ERANGE]: 'Numerical result out of range',
  [EOPNOTSUPP]: 'Operation not supported',
  [EADDRNOTAVAIL]: 'Cannot assign requested address',
  [ENETUNREACH]: 'Network is unreachable',
  [ENOBUFS]: 'No buffer space available',
  [ETIMEDOUT]: 'Connection timed out',
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
