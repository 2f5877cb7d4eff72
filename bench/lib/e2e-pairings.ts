/**
 * The pairings bench:e2e measures: the three fixed ones (wireguard-go on
 * both sides is the reference) and tswg↔tswg variants that run both tswg
 * processes with extra environment variables, for ablations.
 */
import type { Implementation } from '../../scripts/lib/topology.js';

export interface Pairing {
  id: string;
  label: string;
  left: Implementation;
  right: Implementation;
  /** Environment for the tswg processes (wireguard-go gets none). */
  env: Record<string, string>;
}

export const REFERENCE_PAIRING = 'go-go';

export const BASE_PAIRINGS: readonly Pairing[] = [
  { id: 'go-go', label: 'wireguard-go↔wireguard-go', left: 'wireguard-go', right: 'wireguard-go', env: {} },
  { id: 'tswg-tswg', label: 'tswg↔tswg', left: 'tswg', right: 'tswg', env: {} },
  { id: 'tswg-go', label: 'tswg↔wireguard-go', left: 'tswg', right: 'wireguard-go', env: {} },
];

/** "NAME=VALUE" → { NAME: VALUE }; throws on anything else. */
export function parseVariable(text: string): Record<string, string> {
  const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(text);
  if (match === null) throw new Error(`--variant ${text}: expected NAME=VALUE (e.g. TSWG_TUN_OFFLOAD=0)`);
  return { [match[1]!]: match[2]! };
}

/** tswg↔tswg with `env` for both processes. */
export function tswgVariant(env: Record<string, string>): Pairing {
  const settings = Object.entries(env).map(([name, value]) => `${name}=${value}`);
  return { id: `tswg-tswg+${settings.join('+')}`, label: `tswg↔tswg ${settings.join(' ')}`, left: 'tswg', right: 'tswg', env: { ...env } };
}
