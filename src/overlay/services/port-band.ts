/**
 * UDP listen ports of dedicated per-service WireGuard devices. The Rust
 * reference hands them out from "a band above the global WG port" without
 * saying how wide; here it is globalPort+1 … globalPort+DEDICATED_PORT_BAND_SIZE,
 * cut at 65535, lowest free port first.
 *
 * A port recorded by an earlier run stays reserved even when it lies outside
 * the band (the global port may have moved since): the device that owns it
 * keeps its port across restarts, and no other device is handed it.
 */
import { DEDICATED_PORT_BAND_SIZE, DEFAULT_WG_PORT, MAX_UDP_PORT } from '../constants.js';
import { OverlayError } from '../errors.js';

function checkPort(port: number, what: string, min: number): void {
  if (!Number.isInteger(port) || port < min || port > MAX_UDP_PORT) {
    throw new OverlayError(`invalid ${what} ${port}: must be an integer ${min}..${MAX_UDP_PORT}`);
  }
}

export class DedicatedPortAllocator {
  /** The port the band is based on: the global port, or DEFAULT_WG_PORT when that is 0 (kernel-chosen). */
  readonly basePort: number;
  /** The band's first port (basePort + 1). */
  readonly firstPort: number;
  /** The band's last port (basePort + band size, at most 65535); below firstPort when the band is empty. */
  readonly lastPort: number;
  private readonly taken = new Set<number>();

  constructor(globalPort: number, recorded: readonly number[] = []) {
    checkPort(globalPort, 'global WireGuard port', 0);
    // A kernel-chosen global port is unknown until bound; base the band where it would usually be.
    this.basePort = globalPort === 0 ? DEFAULT_WG_PORT : globalPort;
    this.firstPort = this.basePort + 1;
    this.lastPort = Math.min(this.basePort + DEDICATED_PORT_BAND_SIZE, MAX_UDP_PORT);
    for (const port of recorded) this.reserve(port);
  }

  /** Mark `port` as in use (a port a restored device already listens on); idempotent, any valid port. */
  reserve(port: number): void {
    checkPort(port, 'dedicated port', 1);
    this.taken.add(port);
  }

  /** The lowest free port of the band. Throws OverlayError when every port of the band is in use. */
  allocate(): number {
    for (let port = this.firstPort; port <= this.lastPort; port++) {
      if (this.taken.has(port)) continue;
      this.taken.add(port);
      return port;
    }
    throw new OverlayError(
      this.firstPort > this.lastPort
        ? `dedicated port band above ${this.basePort} is empty: no UDP port is left above it`
        : `dedicated port band ${this.firstPort}-${this.lastPort} is exhausted`,
    );
  }

  /** Give `port` back (idempotent; a port never handed out is ignored). */
  release(port: number): void {
    this.taken.delete(port);
  }

  /** The ports in use, ascending. */
  inUse(): number[] {
    return [...this.taken].sort((a, b) => a - b);
  }
}
