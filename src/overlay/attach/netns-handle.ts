/**
 * A container's network namespace, pinned by an open fd for the whole
 * attach: every later step goes through the fd, never through /proc/<pid>
 * again, so a container that exits (and a PID that is reused) mid-attach
 * cannot redirect the work into another process's namespace. A PID whose
 * namespace is the node's own is refused: attaching it would rename and
 * re-address the host's interfaces.
 */
import { closeSync, fstatSync, openSync, statSync } from 'node:fs';
import { OverlayError } from '../errors.js';

export class NetnsHandle {
  private open = true;

  private constructor(
    readonly pid: number,
    readonly fd: number,
  ) {}

  /** Open /proc/<pid>/ns/net; OverlayError naming the PID when it is gone or is the node's own namespace. */
  static openPid(pid: number, ownNamespacePath = '/proc/self/ns/net'): NetnsHandle {
    let fd: number;
    try {
      fd = openSync(`/proc/${pid}/ns/net`, 'r');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ESRCH') throw new OverlayError(`process ${pid} not found: it has exited or never existed`);
      throw new OverlayError(`cannot open the network namespace of process ${pid}: ${(error as Error).message}`);
    }
    try {
      const theirs = fstatSync(fd);
      const ours = statSync(ownNamespacePath);
      if (theirs.ino === ours.ino && theirs.dev === ours.dev) {
        throw new OverlayError(`process ${pid} shares the node's own network namespace; refusing to move or rename the host's interfaces`);
      }
    } catch (error) {
      closeSync(fd);
      throw error instanceof OverlayError ? error : new OverlayError(`cannot inspect the network namespace of process ${pid}: ${(error as Error).message}`);
    }
    return new NetnsHandle(pid, fd);
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    closeSync(this.fd);
  }
}
