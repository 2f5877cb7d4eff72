/**
 * The firewall's rule building, without touching the kernel: the plan from
 * the node's state, the nft ruleset and iptables-restore text rendered from
 * it, the foreign-chain bypass batch, and backend detection.
 */
import { describe, expect, it } from 'vitest';
import { bypassRules, bypassSnapshot, foreignChains, parseNftJson, renderBypass } from '../../src/overlay/firewall/bypass.js';
import { detectBackend, iptablesInUse, nftablesInUse, type HostTools } from '../../src/overlay/firewall/detect.js';
import { parseSave, renderFilterRules, renderNatRules, renderRemoveTable, renderRestoreTable } from '../../src/overlay/firewall/iptables.js';
import { renderBridgeTable, renderNftRuleset } from '../../src/overlay/firewall/nftables.js';
import { buildPlan, samePlan } from '../../src/overlay/firewall/rules.js';

const input = {
  clusterCidr: '10.200.0.0/16',
  nodeIp: '10.200.1.1',
  wgPorts: { first: 51820, last: 51884 },
  members: [
    { ip: '10.200.5.3', network: 'red' },
    { ip: '10.200.5.2', network: 'red' },
    { ip: '10.200.5.9', network: 'blue' },
    { ip: 'fd00::9', network: 'blue' },
  ],
  masquerade: true,
};

describe('buildPlan', () => {
  it('groups members by network in name order, sorted, one address family', () => {
    const plan = buildPlan(input);
    expect(plan.family).toBe(4);
    expect(plan.networks).toEqual([
      { index: 0, name: 'blue', members: ['10.200.5.9'] },
      { index: 1, name: 'red', members: ['10.200.5.2', '10.200.5.3'] },
    ]);
    expect(plan.isolated).toEqual(['10.200.5.2', '10.200.5.3', '10.200.5.9']);
    expect(plan.mark).toBe(0x1000000);
    // Member order does not matter: the same state is the same plan.
    expect(samePlan(plan, buildPlan({ ...input, members: [...input.members].reverse() }))).toBe(true);
  });

  it('names the bad field', () => {
    expect(() => buildPlan({ ...input, clusterCidr: 'nope' })).toThrow(/invalid cluster CIDR nope/);
    expect(() => buildPlan({ ...input, wgPorts: { first: 9, last: 1 } })).toThrow(/invalid WireGuard port range 9-1/);
  });

  it('the mark bit avoids Tailscale (0xff0000) and kube-proxy (0x4000, 0x8000)', () => {
    const mark = buildPlan(input).mark;
    expect(mark & 0xff0000).toBe(0);
    expect(mark & 0xc000).toBe(0);
  });
});

describe('nftables rendering', () => {
  it('declares, deletes and redeclares each table in one transaction; every rule has a comment', () => {
    const text = renderNftRuleset(buildPlan(input), { inet: true });
    const lines = text.split('\n');
    expect(lines.slice(0, 3)).toEqual(['table inet tswg', 'delete table inet tswg', 'table inet tswg {']);
    expect(text).toContain('table bridge tswg\ndelete table bridge tswg\ntable bridge tswg {');
    const rules = lines.filter((l) => /^ {4}\S/.test(l) && !l.trim().startsWith('type '));
    expect(rules.length).toBeGreaterThan(5);
    for (const rule of rules) expect(rule).toMatch(/comment "tswg: /);
    expect(text).toContain('ip saddr @iso_1 ip daddr @iso_all ip daddr != @iso_1 drop comment "tswg: isolation network red');
    expect(text).toContain('meta mark set meta mark | 0x01000000');
    expect(text).toContain('meta mark & 0x01000000 == 0x01000000 masquerade');
    expect(text).toContain('tcp flags syn / syn,rst tcp option maxseg size set rt mtu');
    expect(text).toContain('udp dport 51820-51884 accept');
    expect(text).toContain('ip daddr 10.200.1.1 udp dport 53 accept');
    // Never a policy other than accept in our own chains.
    expect(text).not.toMatch(/policy drop/);
    // Rendering is deterministic.
    expect(renderNftRuleset(buildPlan(input), { inet: true })).toBe(text);
  });

  it('without isolation members the bridge table is only removed', () => {
    const plan = buildPlan({ ...input, members: [] });
    expect(renderBridgeTable(plan)).toBeNull();
    expect(renderNftRuleset(plan, { inet: false })).toBe('table bridge tswg\ndelete table bridge tswg\n');
  });
});

describe('iptables rendering', () => {
  const plan = buildPlan(input);

  it('per-network chains drop the other networks\' members; mark and masquerade use the mark bit only', () => {
    const rules = renderFilterRules(plan);
    expect(rules).toContain('-A TSWG-FORWARD -d 10.200.5.9/32 -m comment --comment "tswg: isolation network blue reaches no other isolation network" -j TSWG-ISO-0');
    expect(rules.filter((r) => r.startsWith('-A TSWG-ISO-0 '))).toHaveLength(2);
    expect(rules.filter((r) => r.startsWith('-A TSWG-ISO-1 '))).toEqual([
      '-A TSWG-ISO-1 -s 10.200.5.9/32 -m comment --comment "tswg: isolation network red reaches no other isolation network" -j DROP',
    ]);
    expect(rules).toContain('-A TSWG-FORWARD -s 10.200.0.0/16 ! -d 10.200.0.0/16 ! -o zl-+ -m comment --comment "tswg: mark container traffic leaving the cluster for masquerade" -j MARK --set-xmark 0x01000000/0x01000000');
    for (const rule of rules) expect(rule).toContain('--comment "tswg: ');
    expect(renderNatRules(plan)).toEqual(['-A TSWG-POSTROUTING -m mark --mark 0x01000000/0x01000000 -m comment --comment "tswg: masquerade marked container traffic" -j MASQUERADE']);
  });

  it('the bypass role (the other iptables variant) holds only the accepts', () => {
    const rules = renderFilterRules(plan, true);
    expect(rules.every((r) => r.endsWith('-j ACCEPT'))).toBe(true);
    expect(rules.some((r) => r.includes('TSWG-ISO-') || r.includes('MARK') || r.includes('TCPMSS'))).toBe(false);
  });

  it('puts the jump at position 1 only when it is not already there, and deletes stale chains', () => {
    const wanted = new Map([['TSWG-FORWARD', ['-A TSWG-FORWARD -j ACCEPT']], ['TSWG-INPUT', []]]);
    const fresh = renderRestoreTable('filter', wanted, parseSave('*filter\n:FORWARD DROP [0:0]\n:INPUT ACCEPT [0:0]\nCOMMIT\n').get('filter'));
    expect(fresh).toContain('-I FORWARD 1 -m comment --comment "tswg: overlay rules" -j TSWG-FORWARD');
    expect(fresh).toContain('-I INPUT 1 -m comment --comment "tswg: overlay rules" -j TSWG-INPUT');
    const inPlace = parseSave(
      [
        '*filter',
        ':FORWARD DROP [0:0]',
        ':INPUT ACCEPT [0:0]',
        ':TSWG-FORWARD - [0:0]',
        ':TSWG-ISO-4 - [0:0]',
        '-A FORWARD -m comment --comment "tswg: overlay rules" -j TSWG-FORWARD',
        '-A FORWARD -j DROP',
        '-A INPUT -j DROP',
        '-A INPUT -m comment --comment "tswg: overlay rules" -j TSWG-INPUT',
        'COMMIT',
      ].join('\n'),
    ).get('filter');
    const lines = renderRestoreTable('filter', wanted, inPlace);
    expect(lines.some((l) => l.startsWith('-I FORWARD'))).toBe(false);
    // INPUT's jump is second: deleted by number and inserted at 1.
    expect(lines).toContain('-D INPUT 2');
    expect(lines).toContain('-I INPUT 1 -m comment --comment "tswg: overlay rules" -j TSWG-INPUT');
    expect(lines).toContain(':TSWG-ISO-4 - [0:0]');
    expect(lines).toContain('-X TSWG-ISO-4');
    expect(lines.at(-1)).toBe('COMMIT');
  });

  it('removal deletes our jumps by number (highest first) and our chains, and leaves the rest', () => {
    const table = parseSave(
      '*filter\n:FORWARD DROP [0:0]\n:TSWG-FORWARD - [0:0]\n-A FORWARD -j TSWG-FORWARD\n-A FORWARD -j DROP\n-A FORWARD -m comment --comment "tswg: overlay rules" -j TSWG-FORWARD\n-A TSWG-FORWARD -j ACCEPT\nCOMMIT\n',
    ).get('filter')!;
    expect(renderRemoveTable('filter', table)).toEqual(['*filter', '-D FORWARD 3', '-D FORWARD 1', ':TSWG-FORWARD - [0:0]', '-X TSWG-FORWARD', 'COMMIT']);
    expect(renderRemoveTable('filter', parseSave('*filter\n:FORWARD DROP [0:0]\n-A FORWARD -j DROP\nCOMMIT\n').get('filter')!)).toBeNull();
  });
});

describe('bypass of foreign nftables chains', () => {
  const plan = buildPlan(input);
  const ruleset = (rules: Array<{ chain: string; handle: number; comment?: string }>): string =>
    JSON.stringify({
      nftables: [
        { table: { family: 'inet', name: 'fw', handle: 1 } },
        { chain: { family: 'inet', table: 'fw', name: 'forward', handle: 1, type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } },
        { chain: { family: 'inet', table: 'fw', name: 'input', handle: 2, type: 'filter', hook: 'input', prio: 0, policy: 'drop' } },
        { chain: { family: 'inet', table: 'fw', name: 'helper', handle: 3 } },
        { table: { family: 'ip', name: 'filter', handle: 2 } },
        { chain: { family: 'ip', table: 'filter', name: 'FORWARD', handle: 1, type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } },
        { table: { family: 'inet', name: 'tswg', handle: 3 } },
        { chain: { family: 'inet', table: 'tswg', name: 'forward', handle: 1, type: 'filter', hook: 'forward', prio: -10, policy: 'accept' } },
        ...rules.map((r) => ({ rule: { family: 'inet', table: 'fw', ...r } })),
      ],
    });

  it('picks foreign base chains of forward and input, not iptables-nft\'s tables or ours', () => {
    const chains = foreignChains(parseNftJson(ruleset([])));
    expect(chains.map((c) => `${c.family} ${c.table} ${c.name}`)).toEqual(['inet fw forward', 'inet fw input']);
  });

  it('inserts the accept rules at the head, in order, only where they are not already exactly there', () => {
    const batch = renderBypass(parseNftJson(ruleset([{ chain: 'forward', handle: 9 }])), plan)!;
    const inserts = batch.split('\n').filter((l) => l.startsWith('insert rule inet fw forward'));
    // insert prepends, so the first wanted rule is inserted last.
    expect(inserts.at(-1)).toBe('insert rule inet fw forward iifname "zl-*" accept comment "tswg: accept traffic from zl-*"');
    expect(batch).toContain('insert rule inet fw input udp dport 51820-51884 accept comment "tswg: accept WireGuard"');
    const forward = bypassRules(plan, 'forward', 'inet');
    const input = bypassRules(plan, 'input', 'inet');
    const inPlace = [
      ...forward.map(([comment], i) => ({ chain: 'forward', handle: 20 + i, comment })),
      { chain: 'forward', handle: 9 },
      ...input.map(([comment], i) => ({ chain: 'input', handle: 40 + i, comment })),
    ];
    expect(renderBypass(parseNftJson(ruleset(inPlace)), plan)).toBeNull();
    // A foreign rule put ahead of ours: ours are deleted by handle and inserted again at the head.
    const displaced = [{ chain: 'forward', handle: 8 }, ...inPlace];
    const repair = renderBypass(parseNftJson(ruleset(displaced)), plan)!;
    expect(repair).toContain('delete rule inet fw forward handle 20');
    expect(repair).not.toContain('inet fw input');
    expect(bypassSnapshot(parseNftJson(ruleset(displaced)))).not.toBe(bypassSnapshot(parseNftJson(ruleset(inPlace))));
    // Removal: only ours, by handle.
    const removal = renderBypass(parseNftJson(ruleset(inPlace)), null)!;
    expect(removal.split('\n').filter(Boolean).every((l) => l.startsWith('delete rule inet fw '))).toBe(true);
    expect(removal).not.toContain('handle 9\n');
  });
});

describe('backend detection', () => {
  const tools: HostTools = { nft: null, iptablesNft: false, iptablesLegacy: false, plainIptables: null };

  it('an override wins; off and unknown values are named', async () => {
    expect(await detectBackend({ TSWG_FIREWALL: 'off' }, tools)).toEqual({ backend: null, reason: 'TSWG_FIREWALL=off' });
    await expect(detectBackend({ TSWG_FIREWALL: 'pf' }, tools)).rejects.toThrow(/TSWG_FIREWALL=pf: expected nftables, iptables/);
    await expect(detectBackend({ TSWG_FIREWALL: 'nftables' }, tools)).rejects.toThrow(/nft is not installed/);
    expect(await detectBackend({ TSWG_FIREWALL: 'iptables' }, { ...tools, iptablesLegacy: true, plainIptables: 'legacy' })).toEqual({ backend: 'iptables-legacy' });
  });

  it('no tool at all: no backend, and the reason says what is off', async () => {
    const detection = await detectBackend({}, tools);
    expect(detection.backend).toBeNull();
    expect(detection.reason).toMatch(/neither nft nor iptables is installed: no masquerade, isolation/);
  });

  it('what counts as "in use": foreign rules and policies, not ours and not iptables-nft\'s tables in nft', () => {
    expect(iptablesInUse('*filter\n:FORWARD ACCEPT [0:0]\n:TSWG-FORWARD - [0:0]\n-A FORWARD -j TSWG-FORWARD\nCOMMIT\n')).toBe(false);
    expect(iptablesInUse('*filter\n:FORWARD DROP [0:0]\nCOMMIT\n')).toBe(true);
    expect(iptablesInUse('*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n')).toBe(true);
    const table = (family: string, name: string, chain: string): string =>
      JSON.stringify({ nftables: [{ chain: { family, table: name, name: chain, handle: 1, type: 'filter', hook: 'forward', prio: 0, policy: 'accept' } }] });
    expect(nftablesInUse(table('ip', 'filter', 'FORWARD'))).toBe(false);
    expect(nftablesInUse(table('inet', 'tswg', 'forward'))).toBe(false);
    expect(nftablesInUse(table('inet', 'firewalld', 'filter_FORWARD'))).toBe(true);
    expect(nftablesInUse(table('ip', 'filter', 'forward'))).toBe(true);
  });
});
