/**
 * Forwarding for attached containers, and exactly what it changed so it can
 * be put back: IPv4 through net.ipv4.ip_forward (its value before is kept
 * once, restored on revert), IPv6 only per interface (the bridge and the
 * host veth). net.ipv6.conf.all.forwarding is never touched: it turns off
 * router advertisements and autoconfiguration on the host's own uplink,
 * which drops its default route.
 *
 * A failure here never fails an attach: a container without forwarding
 * still reaches its node; it is logged.
 */
import type { Logger } from '../../device/index.js';
import { readSysctl, setIpv6Forwarding, setSysctl } from '../../platform/network-config.js';
import { IPV4_FORWARD_KEY } from '../constants.js';
import { errorMessage } from '../../platform/index.js';

export class ForwardingLedger {
  private ipv4Before: string | null = null;
  private readonly ipv6Interfaces = new Set<string>();

  constructor(private readonly log: Logger) {}

  async enable(family: 4 | 6, interfaces: readonly string[]): Promise<void> {
    try {
      if (family === 4) {
        if (this.ipv4Before !== null) return;
        let before = '0';
        try {
          before = await readSysctl(IPV4_FORWARD_KEY);
        } catch {
          // Unreadable reads as "0", so revert writes 0 back.
        }
        this.ipv4Before = before;
        if (before !== '1') await setSysctl(IPV4_FORWARD_KEY, '1');
        return;
      }
      for (const ifname of interfaces) {
        if (this.ipv6Interfaces.has(ifname)) continue;
        await setIpv6Forwarding(ifname, true);
        this.ipv6Interfaces.add(ifname);
      }
    } catch (error) {
      this.log.error(`enabling IPv${family} forwarding for ${interfaces.join(', ')}: ${errorMessage(error)}`);
    }
  }

  /** An interface that is gone no longer needs its flag reset. */
  forget(ifname: string): void {
    this.ipv6Interfaces.delete(ifname);
  }

  async revert(): Promise<void> {
    const before = this.ipv4Before;
    this.ipv4Before = null;
    if (before !== null && before !== '1') {
      await setSysctl(IPV4_FORWARD_KEY, before).catch((error: unknown) => this.log.error(`restoring ${IPV4_FORWARD_KEY}=${before}: ${errorMessage(error)}`));
    }
    for (const ifname of [...this.ipv6Interfaces]) {
      await setIpv6Forwarding(ifname, false).catch(() => undefined);
    }
    this.ipv6Interfaces.clear();
  }
}
