/**
 * The errno numbers tswg interprets, taken from the running system
 * (os.constants.errno) rather than written out by hand: one source for
 * every layer that compares a system call's or the kernel's error number.
 */
import { constants } from 'node:os';

export const {
  EACCES,
  EADDRINUSE,
  EADDRNOTAVAIL,
  EAGAIN,
  EBADF,
  EBADMSG,
  EBUSY,
  EEXIST,
  EINTR,
  EINVAL,
  EIO,
  EMSGSIZE,
  ENETUNREACH,
  ENOBUFS,
  ENODEV,
  ENOENT,
  ENOTSOCK,
  EOPNOTSUPP,
  EPERM,
  EPROTO,
  ERANGE,
  ESRCH,
  ETIMEDOUT,
} = constants.errno;
