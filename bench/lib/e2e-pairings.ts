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

/** A comma that starts another NAME= (a value may hold commas of its own). */
const NEXT_SETTING = /,(?=[A-Za-z_][A-Za-z0-9_]*=)/;

/**
 * "NAME=VALUE" → { NAME: VALUE }; "A=1,B=2" sets both at once (one pairing
 * with both variables). Throws on anything else, or a name given twice.
 */
export function parseVariable(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const setting of text.split(NEXT_SETTING)) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(setting);
    if (match === null) throw new Error(`--variant ${text}: expected NAME=VALUE[,NAME=VALUE]... (e.g. TSWG_TUN_OFFLOAD=0 or TSWG_MAIN_POLL=1,TSWG_CRYPTO_WORKERS=2)`);
    if (Object.hasOwn(env, match[1]!)) throw new Error(`--variant ${text}: ${match[1]} is set twice`);
    env[match[1]!] = match[2]!;
  }
  return env;
}

/** tswg↔tswg with `env` for both processes. */
export function tswgVariant(env: Record<string, string>): Pairing {
  const settings = Object.entries(env).map(([name, value]) => `${name}=${value}`);
  return { id: `tswg-tswg+${settings.join('+')}`, label: `tswg↔tswg ${settings.join(' ')}`, left: 'tswg', right: 'tswg', env: { ...env } };
}
