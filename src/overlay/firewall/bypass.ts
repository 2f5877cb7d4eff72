/**
 * Other tools' nftables tables. An nftables accept is not final: a packet
 * is dropped if any base chain of its hook, in any table, drops it. So in
 * every foreign base chain of the forward and input hooks (families ip,
 * ip6, inet) the node keeps a few accept rules for overlay traffic at the
 * head, each with a "tswg: …" comment: forwarded traffic from the overlay
 * interfaces and replies into them; on input, WireGuard's UDP ports and DNS
 * on the node IP. Nothing else of those chains (rules, policy) changes.
 *
 * iptables-nft's own tables (ip/ip6 filter, nat, …; upper-case built-in
 * chains) are left to the iptables-nft backend, which owns them; our own
 * tables are skipped. Every change is one `nft -f -` transaction: our rules
 * deleted by handle, then inserted at the head in order.
 */
import { DNS_PORT, FIREWALL_COMMENT_PREFIX, FIREWALL_TABLE, OVERLAY_IFNAME_WILDCARDS_NFT } from '../constants.js';
import { runTool } from './exec.js';
import type { FirewallBackend } from './firewall.js';
import type { RulePlan } from './rules.js';

interface NftChain {
  family: string;
  table: string;
  name: string;
  handle: number;
  type?: string;
  hook?: string;
}

interface NftRule {
  family: string;
  table: string;
  chain: string;
  handle: number;
  comment?: string;
}

interface NftObjects {
  tables: Array<{ family: string; name: string }>;
  chains: NftChain[];
  rules: NftRule[];
}

const IPTABLES_NFT_TABLES = new Set(['filter', 'nat', 'mangle', 'raw', 'security']);
const BYPASS_FAMILIES = new Set(['ip', 'ip6', 'inet']);

/** `nft -j list ruleset` as tables, chains and rules (in listing order, which is rule order). */
export function parseNftJson(text: string): NftObjects {
  const doc = JSON.parse(text) as { nftables?: Array<Record<string, unknown>> };
  const out: NftObjects = { tables: [], chains: [], rules: [] };
  for (const entry of doc.nftables ?? []) {
    if ('table' in entry) out.tables.push(entry.table as NftObjects['tables'][number]);
    else if ('chain' in entry) out.chains.push(entry.chain as NftChain);
    else if ('rule' in entry) out.rules.push(entry.rule as NftRule);
  }
  return out;
}

/** Whether a table belongs to iptables-nft: its name is an iptables table and its chains are upper-case built-ins or user chains. */
export function isIptablesNftTable(objects: NftObjects, family: string, table: string): boolean {
  if ((family !== 'ip' && family !== 'ip6') || !IPTABLES_NFT_TABLES.has(table)) return false;
  const bases = objects.chains.filter((ch) => ch.family === family && ch.table === table && ch.hook !== undefined);
  return bases.every((ch) => ch.name === ch.name.toUpperCase());
}

/** Foreign base chains of the forward and input hooks. */
export function foreignChains(objects: NftObjects): NftChain[] {
  return objects.chains.filter(
    (ch) =>
      (ch.hook === 'forward' || ch.hook === 'input') &&
      (ch.type ?? 'filter') === 'filter' &&
      BYPASS_FAMILIES.has(ch.family) &&
      ch.table !== FIREWALL_TABLE &&
      !isIptablesNftTable(objects, ch.family, ch.table),
  );
}

/** Our accept rules for one foreign chain, in head order: [comment, rule text]. */
export function bypassRules(plan: RulePlan, hook: string, tableFamily: string): Array<[string, string]> {
  const p = plan.family === 6 ? 'ip6' : 'ip';
  const addressRulesFit = tableFamily === 'inet' || tableFamily === p;
  const c = (text: string): string => `${FIREWALL_COMMENT_PREFIX}: ${text}`;
  if (hook === 'forward') {
    return [
      ...OVERLAY_IFNAME_WILDCARDS_NFT.map((w): [string, string] => [c(`accept traffic from ${w}`), `iifname ${JSON.stringify(w)} accept`]),
      ...OVERLAY_IFNAME_WILDCARDS_NFT.map((w): [string, string] => [c(`accept replies into ${w}`), `oifname ${JSON.stringify(w)} ct state established,related accept`]),
    ];
  }
  const rules: Array<[string, string]> = [[c('accept WireGuard'), `udp dport ${plan.wgPorts.first}-${plan.wgPorts.last} accept`]];
  if (addressRulesFit) {
    rules.push([c('accept DNS (udp) on the node IP'), `${p} daddr ${plan.nodeIp} udp dport ${DNS_PORT} accept`]);
    rules.push([c('accept DNS (tcp) on the node IP'), `${p} daddr ${plan.nodeIp} tcp dport ${DNS_PORT} accept`]);
  }
  return rules;
}

const isOurs = (rule: NftRule): boolean => rule.comment?.startsWith(`${FIREWALL_COMMENT_PREFIX}:`) === true;

/**
 * The transaction that puts `plan`'s bypass rules at the head of every
 * foreign chain where they are not already exactly there; null when all
 * are in place. With `plan` null it only removes ours.
 */
export function renderBypass(objects: NftObjects, plan: RulePlan | null): string | null {
  const lines: string[] = [];
  const chains = plan === null ? objects.chains.filter((ch) => ch.table !== FIREWALL_TABLE && !isIptablesNftTable(objects, ch.family, ch.table)) : foreignChains(objects);
  for (const chain of chains) {
    const rules = objects.rules.filter((r) => r.family === chain.family && r.table === chain.table && r.chain === chain.name);
    const ours = rules.filter(isOurs);
    const wanted = plan === null || chain.hook === undefined ? [] : bypassRules(plan, chain.hook, chain.family);
    const inPlace = ours.length === wanted.length && wanted.every(([comment], i) => rules[i]?.comment === comment);
    if (inPlace) continue;
    // nft's grammar takes bare identifiers here; a chain named otherwise cannot be addressed in a batch.
    if (!/^[A-Za-z_][A-Za-z0-9_.\-/]*$/.test(chain.name) || !/^[A-Za-z_][A-Za-z0-9_.\-/]*$/.test(chain.table)) continue;
    const where = `${chain.family} ${chain.table} ${chain.name}`;
    for (const rule of ours) lines.push(`delete rule ${where} handle ${rule.handle}`);
    // insert prepends: the last wanted rule goes in first.
    for (const [comment, text] of [...wanted].reverse()) lines.push(`insert rule ${where} ${text} comment ${JSON.stringify(comment)}`);
  }
  return lines.length === 0 ? null : `${lines.join('\n')}\n`;
}

/** Where our bypass rules sit now: a change (foreign rule ahead, flush, new table) changes this. */
export function bypassSnapshot(objects: NftObjects): string {
  const out: string[] = [];
  for (const chain of foreignChains(objects)) {
    const rules = objects.rules.filter((r) => r.family === chain.family && r.table === chain.table && r.chain === chain.name);
    const positions = rules.flatMap((r, i) => (isOurs(r) ? [`${i}:${r.comment}`] : []));
    out.push(`${chain.family} ${chain.table} ${chain.name} ${chain.hook}: ${positions.join(', ')}`);
  }
  return out.join('\n');
}

export class NftBypass implements FirewallBackend {
  readonly name = 'nftables (foreign tables)';

  constructor(private readonly nft: string) {}

  private async objects(): Promise<NftObjects> {
    return parseNftJson(await runTool(this.nft, ['-j', 'list', 'ruleset']));
  }

  async apply(plan: RulePlan): Promise<void> {
    const batch = renderBypass(await this.objects(), plan);
    if (batch !== null) await runTool(this.nft, ['-f', '-'], batch);
  }

  async snapshot(): Promise<string> {
    return bypassSnapshot(await this.objects());
  }

  async remove(): Promise<void> {
    const batch = renderBypass(await this.objects(), null);
    if (batch !== null) await runTool(this.nft, ['-f', '-'], batch);
  }
}
