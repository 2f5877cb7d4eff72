/**
 * The decisions behind the global device's configuration and the host
 * adapter, as pure functions so they are tested without a device:
 *  - the global device's local endpoint: the physical egress address when
 *    its family matches the overlay IP's, else the family's unspecified
 *    address (a mismatch is worth a warning); rootless always unspecified,
 *    because under pasta egress detection finds the tap's meaningless IP;
 *  - whether a failure to create the host adapter is fatal: on Linux the
 *    host TUN is the container data path, so always; elsewhere only when the
 *    adapter is mandatory (otherwise the overlay degrades to VM-only).
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Endpoint, IpFamily } from '../device/index.js';
import { ROOTLESS_ENV_VARS } from './constants.js';
import { OverlayError } from './errors.js';

function familyOf(ip: string, what: string): IpFamily {
  if (isIPv4(ip)) return 4;
  if (isIPv6(ip)) return 6;
  throw new OverlayError(`${what} ${ip} is not an IP address`);
}

/** Rootless mode forces the unspecified local endpoint (egress detection under rootless networking finds a meaningless address). */
export function rootlessForcesUnspecified(rootless: boolean): boolean {
  return rootless;
}

/** Whether the environment asks for rootless mode (TSWG_ROOTLESS, or ZLAYER_ROOTLESS as ZLayer sets it; set, even empty). */
export function rootlessFromEnvironment(env: NodeJS.ProcessEnv = process.env): boolean {
  return ROOTLESS_ENV_VARS.some((name) => env[name] !== undefined);
}

/**
 * The address and port the global device binds and advertises.
 * `warn` hears about an egress address of the other family (then ignored).
 */
export function localEndpointFor(
  overlayIp: string,
  port: number,
  egress: { address: string } | null,
  rootless: boolean,
  warn?: (message: string) => void,
): Endpoint {
  const family = familyOf(overlayIp, 'overlay IP');
  const unspecified: Endpoint = { family, address: family === 4 ? '0.0.0.0' : '::', port };
  if (rootlessForcesUnspecified(rootless) || egress === null) return unspecified;
  const egressFamily = familyOf(egress.address, 'physical egress address');
  if (egressFamily !== family) {
    warn?.(`physical egress IP ${egress.address} does not match the overlay IP ${overlayIp}'s family; the device binds the unspecified address`);
    return unspecified;
  }
  return { family, address: egress.address, port };
}

/** Whether failing to create the host adapter aborts setup. */
export function hostAdapterFailureFatal(mandatory: boolean, platform: NodeJS.Platform = process.platform): boolean {
  return platform === 'linux' || mandatory;
}
