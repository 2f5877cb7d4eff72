/**
 * Every firewall rule of a namespace, for before/after comparisons: both
 * iptables variants' save output and `nft list ruleset`, without counters
 * or timestamps.
 */
import { execIn } from './netns.js';

function withoutCounters(text: string): string {
  return text
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .join('\n')
    .replace(/\[\d+:\d+\]/g, '[0:0]')
    .replace(/counter packets \d+ bytes \d+/g, 'counter');
}

export function iptablesRules(namespace: string, variant: 'nft' | 'legacy'): string {
  return withoutCounters(execIn(namespace, `iptables-${variant}-save`));
}

export function nftRules(namespace: string): string {
  return withoutCounters(execIn(namespace, 'nft', ['list', 'ruleset']));
}

export function firewallRules(namespace: string): string {
  return ['== iptables-nft', iptablesRules(namespace, 'nft'), '== iptables-legacy', iptablesRules(namespace, 'legacy'), '== nft', nftRules(namespace)].join('\n');
}
