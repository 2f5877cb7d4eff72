/**
 * Which firewall tool the node uses, decided once at start-up:
 *  - TSWG_FIREWALL=nftables|iptables|iptables-nft|iptables-legacy|off wins;
 *  - otherwise the tool the host already uses: rules (or a non-ACCEPT
 *    policy) in one and not the other → that one, where iptables means
 *    legacy if the legacy tables hold something, else iptables-nft;
 *  - neither or both → nftables; without nft, iptables as `iptables -V`
 *    names it ("(nf_tables)" or "(legacy)");
 *  - no tool at all → none, with the reason (the node runs without).
 * iptables-nft's tables show up in `nft list ruleset` too; they count as
 * iptables, not as nftables.
 */
import { FIREWALL_ENV, FIREWALL_TABLE } from '../constants.js';
import { findTool, runTool } from './exec.js';
import { isIptablesNftTable, parseNftJson } from './bypass.js';
import { FirewallError, type BackendName } from './firewall.js';
import { parseSave } from './iptables.js';

export interface Detection {
  backend: BackendName | null;
  reason?: string;
}

export interface HostTools {
  nft: string | null;
  iptablesNft: boolean;
  iptablesLegacy: boolean;
  /** What `iptables -V` says the plain `iptables` is, null without one. */
  plainIptables: 'nft' | 'legacy' | null;
}

async function hostTools(): Promise<HostTools> {
  const plain = findTool('iptables');
  let plainIptables: HostTools['plainIptables'] = null;
  if (plain !== null) {
    const version = await runTool(plain, ['-V']).catch(() => '');
    plainIptables = version.includes('nf_tables') ? 'nft' : version.includes('legacy') || version !== '' ? 'legacy' : null;
  }
  return {
    nft: findTool('nft'),
    iptablesNft: findTool('iptables-nft-save') !== null && findTool('iptables-nft-restore') !== null,
    iptablesLegacy: findTool('iptables-legacy-save') !== null && findTool('iptables-legacy-restore') !== null,
    plainIptables,
  };
}

/** Whether an iptables-save dump holds any rule or non-ACCEPT policy of someone else. */
export function iptablesInUse(saveText: string): boolean {
  for (const table of parseSave(saveText).values()) {
    for (const [name, chain] of table.chains) {
      if (name.startsWith('TSWG-')) continue;
      if (chain.policy !== 'ACCEPT' && chain.policy !== '-') return true;
      if (chain.rules.some((rule) => !rule.includes(' -j TSWG-'))) return true;
    }
  }
  return false;
}

/** Whether `nft -j list ruleset` holds a rule or a base chain in a table that is neither ours nor iptables-nft's. */
export function nftablesInUse(jsonText: string): boolean {
  const objects = parseNftJson(jsonText);
  const foreign = (family: string, table: string): boolean => table !== FIREWALL_TABLE && !isIptablesNftTable(objects, family, table);
  return objects.rules.some((r) => foreign(r.family, r.table)) || objects.chains.some((ch) => ch.hook !== undefined && foreign(ch.family, ch.table));
}

function iptablesVariantName(variant: 'nft' | 'legacy'): BackendName {
  return variant === 'nft' ? 'iptables-nft' : 'iptables-legacy';
}

/** Pick the backend. */
export async function detectBackend(env: NodeJS.ProcessEnv = process.env, tools?: HostTools): Promise<Detection> {
  const t = tools ?? (await hostTools());
  const override = env[FIREWALL_ENV]?.trim().toLowerCase();
  const has = (variant: 'nft' | 'legacy'): boolean => (variant === 'nft' ? t.iptablesNft : t.iptablesLegacy);
  if (override !== undefined && override !== '') {
    switch (override) {
      case 'off':
        return { backend: null, reason: `${FIREWALL_ENV}=off` };
      case 'nftables':
        if (t.nft === null) throw new FirewallError(`${FIREWALL_ENV}=nftables but nft is not installed`);
        return { backend: 'nftables' };
      case 'iptables': {
        const variant = t.plainIptables ?? (t.iptablesNft ? 'nft' : t.iptablesLegacy ? 'legacy' : null);
        if (variant === null || !has(variant)) throw new FirewallError(`${FIREWALL_ENV}=iptables but iptables-restore/-save are not installed`);
        return { backend: iptablesVariantName(variant) };
      }
      case 'iptables-nft':
      case 'iptables-legacy': {
        const variant = override === 'iptables-nft' ? 'nft' : 'legacy';
        if (!has(variant)) throw new FirewallError(`${FIREWALL_ENV}=${override} but ${override}-restore/-save are not installed`);
        return { backend: override };
      }
      default:
        throw new FirewallError(`${FIREWALL_ENV}=${override}: expected nftables, iptables, iptables-nft, iptables-legacy or off`);
    }
  }
  if (t.nft === null && !t.iptablesNft && !t.iptablesLegacy) {
    return { backend: null, reason: 'neither nft nor iptables is installed: no masquerade, isolation or bypass of host firewalls' };
  }
  const legacyUsed = t.iptablesLegacy && iptablesInUse(await runTool(findTool('iptables-legacy-save')!, []).catch(() => ''));
  const iptNftUsed = t.iptablesNft && iptablesInUse(await runTool(findTool('iptables-nft-save')!, []).catch(() => ''));
  const nftUsed = t.nft !== null && nftablesInUse(await runTool(t.nft, ['-j', 'list', 'ruleset']).catch(() => '{}'));
  const iptUsed = legacyUsed || iptNftUsed;
  if (iptUsed && !nftUsed) return { backend: legacyUsed ? 'iptables-legacy' : 'iptables-nft' };
  if (t.nft !== null) return { backend: 'nftables' };
  const variant = t.plainIptables !== null && has(t.plainIptables) ? t.plainIptables : t.iptablesNft ? 'nft' : 'legacy';
  return { backend: iptablesVariantName(variant) };
}
