/**
 * The iptables backends (iptables-nft and iptables-legacy): the chains
 * TSWG-FORWARD, TSWG-INPUT (filter), TSWG-POSTROUTING (nat) and one
 * TSWG-ISO-N per isolation network, each reached by one jump at position 1
 * of the built-in chain. Everything of one table goes in one
 * `iptables-restore --noflush` commit (declaring a chain flushes it), so a
 * rule the kernel refuses leaves the table as it was; the error names the
 * rule. Policies are never touched. The nat table is touched only once
 * something needs masquerading: iptables-legacy instantiates a table on
 * first use and the kernel keeps it (empty) for good.
 *
 * The same class serves a "bypass" role: in an iptables variant that is not
 * the active backend but whose FORWARD/INPUT might drop overlay traffic
 * (both variants' hooks see every packet), TSWG-FORWARD and TSWG-INPUT hold
 * only the accept rules (the active backend drops, marks and clamps; a drop
 * anywhere is final), and only where that variant's filter table already
 * exists: reading or writing a missing legacy table would create it.
 *
 * Isolation in iptables: a packet to an isolated member jumps to its
 * network's chain, which drops sources that are members of other networks
 * (per-address rules; no ipset dependency).
 */
import {
  DNS_PORT,
  FIREWALL_CHAIN_FORWARD,
  FIREWALL_CHAIN_INPUT,
  FIREWALL_CHAIN_POSTROUTING,
  FIREWALL_ISOLATION_CHAIN_PREFIX,
  OVERLAY_IFNAME_WILDCARDS_IPT,
  XTABLES_LOCK_WAIT_SECS,
} from '../constants.js';
import { findTool, runTool, ToolError } from './exec.js';
import { FirewallError, type BackendName, type FirewallBackend } from './firewall.js';
import { COMMENTS, hexMark, type RulePlan } from './rules.js';

export type IptablesVariant = 'nft' | 'legacy';

/** One table of an iptables-save dump: chain declarations and rules per chain, in order. */
export interface SavedTable {
  chains: Map<string, { policy: string; rules: string[] }>;
}

/** Parse iptables-save output: table name → chains. */
export function parseSave(text: string): Map<string, SavedTable> {
  const tables = new Map<string, SavedTable>();
  let current: SavedTable | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('*')) {
      current = { chains: new Map() };
      tables.set(line.slice(1), current);
    } else if (current !== null && line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(' ');
      current.chains.set(name!, { policy: policy ?? '-', rules: [] });
    } else if (current !== null && line.startsWith('-A ')) {
      const name = line.split(' ')[1]!;
      const chain = current.chains.get(name) ?? { policy: '-', rules: [] };
      current.chains.set(name, chain);
      chain.rules.push(line);
    }
  }
  return tables;
}

const isOurs = (chain: string): boolean => chain.startsWith('TSWG-');
const c = (comment: string): string => `-m comment --comment ${JSON.stringify(comment)}`;

/** Our rules of the filter table (declarations excluded); `bypassOnly`: just the accepts. */
export function renderFilterRules(plan: RulePlan, bypassOnly = false): string[] {
  const rules: string[] = [];
  const F = FIREWALL_CHAIN_FORWARD;
  const suffix = plan.family === 6 ? '/128' : '/32';
  for (const network of bypassOnly ? [] : plan.networks) {
    const chain = `${FIREWALL_ISOLATION_CHAIN_PREFIX}${network.index}`;
    for (const member of network.members) rules.push(`-A ${F} -d ${member}${suffix} ${c(COMMENTS.isolation(network.name))} -j ${chain}`);
    const own = new Set(network.members);
    for (const other of plan.isolated) if (!own.has(other)) rules.push(`-A ${chain} -s ${other}${suffix} ${c(COMMENTS.isolation(network.name))} -j DROP`);
  }
  const mark = hexMark(plan.mark);
  if (!bypassOnly) {
    for (const w of OVERLAY_IFNAME_WILDCARDS_IPT) rules.push(`-A ${F} -o ${w} -p tcp --tcp-flags SYN,RST SYN ${c(COMMENTS.mss)} -j TCPMSS --clamp-mss-to-pmtu`);
    for (const w of OVERLAY_IFNAME_WILDCARDS_IPT) rules.push(`-A ${F} -i ${w} -p tcp --tcp-flags SYN,RST SYN ${c(COMMENTS.mss)} -j TCPMSS --clamp-mss-to-pmtu`);
    rules.push(`-A ${F} -s ${plan.clusterCidr} ! -d ${plan.clusterCidr} ! -o ${OVERLAY_IFNAME_WILDCARDS_IPT[0]} ${c(COMMENTS.mark)} -j MARK --set-xmark ${mark}/${mark}`);
  }
  for (const w of OVERLAY_IFNAME_WILDCARDS_IPT) rules.push(`-A ${F} -i ${w} ${c(COMMENTS.acceptFrom)} -j ACCEPT`);
  for (const w of OVERLAY_IFNAME_WILDCARDS_IPT) rules.push(`-A ${F} -o ${w} -m conntrack --ctstate RELATED,ESTABLISHED ${c(COMMENTS.acceptReplies)} -j ACCEPT`);
  const I = FIREWALL_CHAIN_INPUT;
  rules.push(`-A ${I} -p udp --dport ${plan.wgPorts.first}:${plan.wgPorts.last} ${c(COMMENTS.wireguard)} -j ACCEPT`);
  rules.push(`-A ${I} -d ${plan.nodeIp}${suffix} -p udp --dport ${DNS_PORT} ${c(COMMENTS.dns)} -j ACCEPT`);
  rules.push(`-A ${I} -d ${plan.nodeIp}${suffix} -p tcp --dport ${DNS_PORT} ${c(COMMENTS.dns)} -j ACCEPT`);
  return rules;
}

export function renderNatRules(plan: RulePlan): string[] {
  const mark = hexMark(plan.mark);
  return [`-A ${FIREWALL_CHAIN_POSTROUTING} -m mark --mark ${mark}/${mark} ${c(COMMENTS.masquerade)} -j MASQUERADE`];
}

/** Built-in chain → our chain, per table. */
const JUMPS: Record<'filter' | 'nat', Array<[string, string]>> = {
  filter: [
    ['FORWARD', FIREWALL_CHAIN_FORWARD],
    ['INPUT', FIREWALL_CHAIN_INPUT],
  ],
  nat: [['POSTROUTING', FIREWALL_CHAIN_POSTROUTING]],
};

const jumpRule = (builtin: string, target: string): string => `${builtin} ${c(COMMENTS.jump)} -j ${target}`;

/** Lines deleting our jumps from `builtin` (by number, highest first: numbers stay valid). */
function deleteJumps(table: SavedTable | undefined, builtin: string): string[] {
  const rules = table?.chains.get(builtin)?.rules ?? [];
  const numbers: number[] = [];
  rules.forEach((rule, i) => {
    if (/ -j TSWG-\S+$/.test(rule)) numbers.push(i + 1);
  });
  return numbers.reverse().map((n) => `-D ${builtin} ${n}`);
}

/** Whether the jump into `target` is at position 1 of `builtin` and nowhere else. */
function jumpInPlace(table: SavedTable | undefined, builtin: string, target: string): boolean {
  const rules = table?.chains.get(builtin)?.rules ?? [];
  const ours = rules.filter((rule) => / -j TSWG-\S+$/.test(rule));
  return ours.length === 1 && rules[0] === ours[0] && rules[0]!.endsWith(`-j ${target}`);
}

/**
 * The restore input for one table: our chains declared (flushing them),
 * stale ones of ours declared and deleted, the rules, and the jumps put at
 * position 1 unless already there (and only there).
 */
export function renderRestoreTable(tableName: 'filter' | 'nat', wanted: Map<string, string[]>, current: SavedTable | undefined): string[] {
  const lines = [`*${tableName}`];
  const stale = [...(current?.chains.keys() ?? [])].filter((name) => isOurs(name) && !wanted.has(name)).sort();
  for (const name of [...wanted.keys(), ...stale]) lines.push(`:${name} - [0:0]`);
  for (const rules of wanted.values()) lines.push(...rules);
  for (const [builtin, target] of JUMPS[tableName]) {
    if (!wanted.has(target)) continue;
    if (jumpInPlace(current, builtin, target)) continue;
    lines.push(...deleteJumps(current, builtin));
    lines.push(`-I ${jumpRule(builtin, target).replace(/^(\S+)/, '$1 1')}`);
  }
  for (const name of stale) lines.push(`-X ${name}`);
  lines.push('COMMIT');
  return lines;
}

/** The restore input removing every chain and jump of ours from one table. */
export function renderRemoveTable(tableName: string, current: SavedTable): string[] | null {
  const ours = [...current.chains.keys()].filter(isOurs).sort();
  const jumps = [...current.chains.keys()].filter((name) => !isOurs(name)).flatMap((builtin) => deleteJumps(current, builtin));
  if (ours.length === 0 && jumps.length === 0) return null;
  return [`*${tableName}`, ...jumps, ...ours.map((name) => `:${name} - [0:0]`), ...ours.map((name) => `-X ${name}`), 'COMMIT'];
}

/** Our chains' declarations: ordered map chain → rules. */
function wantedChains(plan: RulePlan, tableName: 'filter' | 'nat', bypassOnly: boolean): Map<string, string[]> {
  const wanted = new Map<string, string[]>();
  if (tableName === 'nat') {
    wanted.set(FIREWALL_CHAIN_POSTROUTING, renderNatRules(plan));
    return wanted;
  }
  const rules = renderFilterRules(plan, bypassOnly);
  const isolation = bypassOnly ? [] : plan.networks.map((n) => `${FIREWALL_ISOLATION_CHAIN_PREFIX}${n.index}`);
  const chains = [FIREWALL_CHAIN_FORWARD, FIREWALL_CHAIN_INPUT, ...isolation];
  for (const chain of chains) wanted.set(chain, rules.filter((rule) => rule.startsWith(`-A ${chain} `)));
  return wanted;
}

interface Tools {
  save: string;
  restore: string;
}

export class IptablesBackend implements FirewallBackend {
  readonly name: BackendName;
  private family: 4 | 6 = 4;
  /**
   * iptables-nft tables and built-in chains that appeared with our rules
   * ("ip nat", "ip filter INPUT"): iptables-nft creates them on first use
   * and never removes them, so revert does, once they are empty again.
   */
  readonly created = new Set<string>();
  private nftPath: string | null;

  constructor(
    readonly variant: IptablesVariant,
    private readonly role: { nat: boolean },
  ) {
    this.name = variant === 'nft' ? 'iptables-nft' : 'iptables-legacy';
    this.nftPath = findTool('nft');
  }

  /** Whether this variant's tools are installed. */
  static available(variant: IptablesVariant, family: 4 | 6 = 4): boolean {
    const base = family === 6 ? 'ip6tables' : 'iptables';
    return findTool(`${base}-${variant}-restore`) !== null && findTool(`${base}-${variant}-save`) !== null;
  }

  private tools(family: 4 | 6 = this.family): Tools {
    const base = family === 6 ? 'ip6tables' : 'iptables';
    const save = findTool(`${base}-${this.variant}-save`);
    const restore = findTool(`${base}-${this.variant}-restore`);
    if (save === null || restore === null) throw new FirewallError(`${base}-${this.variant}-save / -restore are not installed`);
    return { save, restore };
  }

  async save(family: 4 | 6 = this.family): Promise<Map<string, SavedTable>> {
    return parseSave(await runTool(this.tools(family).save, []));
  }

  private async restore(lines: string[], family: 4 | 6 = this.family): Promise<void> {
    try {
      await runTool(this.tools(family).restore, ['-w', String(XTABLES_LOCK_WAIT_SECS), '--noflush'], `${lines.join('\n')}\n`);
    } catch (error) {
      if (error instanceof ToolError) {
        const match = /line (\d+) failed/.exec(error.failure.stderr);
        const rule = match === null ? undefined : lines[Number(match[1]) - 1];
        throw new FirewallError(`${this.name} refused ${rule === undefined ? 'the node\'s rules' : `the rule "${rule}"`}: ${error.failure.stderr.trim()}`);
      }
      throw error;
    }
  }

  async apply(plan: RulePlan): Promise<void> {
    this.family = plan.family;
    const current = await this.save();
    if (!this.role.nat && !current.has('filter')) return;
    const tables: Array<'filter' | 'nat'> = this.role.nat && plan.masquerade ? ['filter', 'nat'] : ['filter'];
    const lines = tables.flatMap((table) => renderRestoreTable(table, wantedChains(plan, table, !this.role.nat), current.get(table)));
    // Masquerade no longer wanted: our nat chain goes (the table itself stays: legacy cannot drop it).
    const nat = current.get('nat');
    if (!tables.includes('nat') && nat !== undefined) lines.push(...(renderRemoveTable('nat', nat) ?? []));
    const before = await this.nftObjects();
    await this.restore(lines);
    const after = await this.nftObjects();
    if (before !== null && after !== null) for (const name of after) if (!before.has(name) && !/ TSWG-/.test(name)) this.created.add(name);
  }

  /** iptables-nft's tables and chains as nft sees them ("ip filter", "ip filter FORWARD"); null without nft or for legacy. */
  private async nftObjects(): Promise<Set<string> | null> {
    if (this.variant !== 'nft' || this.nftPath === null) return null;
    const doc = JSON.parse(await runTool(this.nftPath, ['-j', 'list', 'chains'])) as { nftables?: Array<{ chain?: { family: string; table: string; name: string } }> };
    const names = new Set<string>();
    for (const entry of doc.nftables ?? []) {
      const ch = entry.chain;
      if (ch === undefined || (ch.family !== 'ip' && ch.family !== 'ip6')) continue;
      names.add(`${ch.family} ${ch.table}`);
      names.add(`${ch.family} ${ch.table} ${ch.name}`);
    }
    return names;
  }

  async snapshot(): Promise<string> {
    const tables = await this.save();
    // The table list too: a filter table that appears later (another tool's first rule) needs our chains.
    const out: string[] = [`tables: ${[...tables.keys()].sort().join(',')}`];
    for (const [name, table] of [...tables].sort(([x], [y]) => (x < y ? -1 : 1))) {
      for (const [chain, { rules }] of table.chains) {
        if (isOurs(chain)) out.push(`${name} :${chain}`, ...rules);
        else rules.forEach((rule, i) => rule.includes(' -j TSWG-') && out.push(`${name} #${i + 1} ${rule}`));
      }
    }
    return out.join('\n');
  }

  /** Remove our chains and jumps in both families; "not there" is done. */
  async remove(): Promise<void> {
    for (const family of [4, 6] as const) {
      if (!IptablesBackend.available(this.variant, family)) continue;
      const tables = await this.save(family);
      for (const [name, table] of tables) {
        const lines = renderRemoveTable(name, table);
        if (lines !== null) await this.restore(lines, family);
      }
    }
    if (this.variant === 'nft') await this.dropCreated();
  }

  /** Chains, then tables, that our rules brought into being, if they are empty again ("does not exist" is done). */
  private async dropCreated(): Promise<void> {
    if (this.nftPath === null || this.created.size === 0) return;
    const entries = [...this.created].sort((x, y) => y.split(' ').length - x.split(' ').length);
    for (const entry of entries) {
      const [family, table, chain] = entry.split(' ');
      try {
        if (chain !== undefined) {
          // Fails (and keeps the chain) when someone else's rules are in it.
          await runTool(this.nftPath, ['delete', 'chain', family!, table!, chain]);
        } else {
          const doc = JSON.parse(await runTool(this.nftPath, ['-j', 'list', 'table', family!, table!])) as { nftables?: Array<Record<string, unknown>> };
          if (!(doc.nftables ?? []).some((e) => 'chain' in e)) await runTool(this.nftPath, ['delete', 'table', family!, table!]);
        }
      } catch {
        // Gone already, or in use by someone else: either way not ours to remove.
      }
      this.created.delete(entry);
    }
  }
}
