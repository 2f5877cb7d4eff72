/**
 * The nftables backend: one `inet tswg` table (forward, input, postrouting
 * base chains) and, for isolation on bridges, one `bridge tswg` table,
 * applied in one `nft -f -` transaction: each table is declared, deleted
 * and declared again with its contents, so whatever was there (ours, half
 * flushed, or nothing) is replaced atomically and the result is the same
 * bytes every time. A kernel that refuses a rule fails the whole
 * transaction: nothing is half-applied, and the error quotes the rule.
 *
 * With an iptables backend the bridge table is still applied through nft
 * (iptables cannot see bridged frames); then `inet` is false.
 */
import { FIREWALL_PRIORITY_OFFSET, FIREWALL_TABLE, DNS_PORT, OVERLAY_IFNAME_WILDCARDS_NFT } from '../constants.js';
import { isMissing, runTool } from './exec.js';
import { FirewallError, type FirewallBackend } from './firewall.js';
import { COMMENTS, hexMark, type RulePlan } from './rules.js';

const q = (text: string): string => JSON.stringify(text);

function priority(base: 'filter' | 'srcnat'): string {
  return FIREWALL_PRIORITY_OFFSET < 0 ? `${base} - ${-FIREWALL_PRIORITY_OFFSET}` : `${base} + ${FIREWALL_PRIORITY_OFFSET}`;
}

function addrType(plan: RulePlan): string {
  return plan.family === 6 ? 'ipv6_addr' : 'ipv4_addr';
}

function l3(plan: RulePlan): string {
  return plan.family === 6 ? 'ip6' : 'ip';
}

/** The isolation sets (iso_all and one per network) and their drop rules. */
function isolation(plan: RulePlan): { sets: string[]; rules: string[] } {
  if (plan.networks.length === 0) return { sets: [], rules: [] };
  const set = (name: string, members: string[]): string => `  set ${name} { type ${addrType(plan)}; elements = { ${members.join(', ')} } }`;
  const sets = [set('iso_all', plan.isolated), ...plan.networks.map((n) => set(`iso_${n.index}`, n.members))];
  const rules = plan.networks.map(
    (n) => `    ${l3(plan)} saddr @iso_${n.index} ${l3(plan)} daddr @iso_all ${l3(plan)} daddr != @iso_${n.index} drop comment ${q(COMMENTS.isolation(n.name))}`,
  );
  return { sets, rules };
}

/** declare, delete, declare: replaces the table whatever state it was in. */
function replaceTable(family: string, body: string[] | null): string[] {
  const head = [`table ${family} ${FIREWALL_TABLE}`, `delete table ${family} ${FIREWALL_TABLE}`];
  return body === null ? head : [...head, `table ${family} ${FIREWALL_TABLE} {`, ...body, '}'];
}

/** The `inet tswg` table's body. */
function renderInetTable(plan: RulePlan): string[] {
  const { sets, rules } = isolation(plan);
  const p = l3(plan);
  const overlay = OVERLAY_IFNAME_WILDCARDS_NFT;
  return [
    ...sets,
    '  chain forward {',
    `    type filter hook forward priority ${priority('filter')}; policy accept;`,
    ...rules,
    ...overlay.map((w) => `    oifname ${q(w)} tcp flags syn / syn,rst tcp option maxseg size set rt mtu comment ${q(COMMENTS.mss)}`),
    ...overlay.map((w) => `    iifname ${q(w)} tcp flags syn / syn,rst tcp option maxseg size set rt mtu comment ${q(COMMENTS.mss)}`),
    `    ${p} saddr ${plan.clusterCidr} ${p} daddr != ${plan.clusterCidr} oifname != ${q(overlay[0]!)} meta mark set meta mark | ${hexMark(plan.mark)} comment ${q(COMMENTS.mark)}`,
    '  }',
    '  chain input {',
    `    type filter hook input priority ${priority('filter')}; policy accept;`,
    `    udp dport ${plan.wgPorts.first}-${plan.wgPorts.last} accept comment ${q(COMMENTS.wireguard)}`,
    `    ${p} daddr ${plan.nodeIp} udp dport ${DNS_PORT} accept comment ${q(COMMENTS.dns)}`,
    `    ${p} daddr ${plan.nodeIp} tcp dport ${DNS_PORT} accept comment ${q(COMMENTS.dns)}`,
    '  }',
    '  chain postrouting {',
    `    type nat hook postrouting priority ${priority('srcnat')}; policy accept;`,
    `    meta mark & ${hexMark(plan.mark)} == ${hexMark(plan.mark)} masquerade comment ${q(COMMENTS.masquerade)}`,
    '  }',
  ];
}

/** The `bridge tswg` table's body, null when there is nothing to isolate (the table is removed). */
export function renderBridgeTable(plan: RulePlan): string[] | null {
  const { sets, rules } = isolation(plan);
  if (rules.length === 0) return null;
  return [...sets, '  chain forward {', `    type filter hook forward priority ${priority('filter')}; policy accept;`, ...rules, '  }'];
}

/** The whole `nft -f` transaction. */
export function renderNftRuleset(plan: RulePlan, options: { inet: boolean }): string {
  const lines = [...(options.inet ? replaceTable('inet', renderInetTable(plan)) : []), ...replaceTable('bridge', renderBridgeTable(plan))];
  return `${lines.join('\n')}\n`;
}

export class NftablesBackend implements FirewallBackend {
  readonly name: string;

  constructor(
    private readonly nft: string,
    private readonly options: { inet: boolean },
  ) {
    this.name = options.inet ? 'nftables' : 'nftables (bridge isolation)';
  }

  async apply(plan: RulePlan): Promise<void> {
    const ruleset = renderNftRuleset(plan, this.options);
    try {
      await runTool(this.nft, ['-f', '-'], ruleset);
    } catch (error) {
      throw new FirewallError(`nft refused the node's rules (nothing was applied): ${(error as Error).message}`);
    }
  }

  async snapshot(): Promise<string> {
    const parts: string[] = [];
    for (const family of this.options.inet ? ['inet', 'bridge'] : ['bridge']) {
      try {
        parts.push(await runTool(this.nft, ['list', 'table', family, FIREWALL_TABLE]));
      } catch (error) {
        if (!isMissing(error)) throw error;
        parts.push(`(no ${family} table)\n`);
      }
    }
    return parts.join('');
  }

  async remove(): Promise<void> {
    const lines = [...(this.options.inet ? replaceTable('inet', null) : []), ...replaceTable('bridge', null)];
    await runTool(this.nft, ['-f', '-'], `${lines.join('\n')}\n`);
  }
}
