/**
 * Orphan bridge selection for PruneOrphanBridges (with exact live /
 * protected / link sets),
 * mapping a name back to its service, the -b/-d/-sh name helpers, and the
 * owner-key namespaces (isolation_owner_key_distinct_from_service_owner_key).
 */
import { describe, expect, it } from 'vitest';
import { MAX_IFNAME_LEN } from '../../src/overlay/constants.js';
import { dedicatedInterfaceName, globalInterfaceName, makeInterfaceName, serviceBridgeName, sharedBridgeName } from '../../src/overlay/naming.js';
import { isOrphanServiceBridge, selectOrphanBridges, serviceForInterface } from '../../src/overlay/services/orphan-bridges.js';
import { ownerKey, parseOwnerKey } from '../../src/overlay/services/owner-keys.js';

describe('orphan bridge selection', () => {
  it('orphan_bridge_selection', () => {
    // Two live per-service bridges the daemon says should exist.
    const live = new Set(['zl-prod-0-web-b', 'zl-prod-0-api-b']);
    // The global device, the shared bridge and a live dedicated device are protected.
    const protectedNames = new Set(['zl-prod-0-g', 'zl-prod-0-shared-sh', 'zl-prod-0-db-d']);
    const hostLinks = [
      // live: keep
      'zl-prod-0-web-b',
      'zl-prod-0-api-b',
      // protected global / shared / live dedicated device: keep
      'zl-prod-0-g',
      'zl-prod-0-shared-sh',
      'zl-prod-0-db-d',
      // orphan bridges: reclaim
      'zl-1ca4568944-b',
      'zl-81c6bc17c7-b',
      // orphan dedicated device: reclaim
      'zl-prod-0-gone-d',
      // container veths belong to the PID-keyed sweep: skip
      'veth-4242-s',
      'vc-4242-g',
      // unrelated host links: skip
      'eth0',
      'lo',
      'docker0',
      'zl-not-a-bridge',
    ];
    expect(selectOrphanBridges(hostLinks, live, protectedNames)).toEqual(['zl-1ca4568944-b', 'zl-81c6bc17c7-b', 'zl-prod-0-gone-d']);
    expect(hostLinks.filter((n) => isOrphanServiceBridge(n, live, protectedNames))).toEqual([
      'zl-1ca4568944-b',
      'zl-81c6bc17c7-b',
      'zl-prod-0-gone-d',
    ]);
  });

  it('with nothing live or protected, every zl-…-b/-d is an orphan and nothing else is', () => {
    const none = new Set<string>();
    expect(isOrphanServiceBridge('zl-prod-0-web-b', none, none)).toBe(true);
    expect(isOrphanServiceBridge('zl-prod-0-db-d', none, none)).toBe(true);
    expect(isOrphanServiceBridge('zl-prod-0-g', none, none)).toBe(false);
    expect(isOrphanServiceBridge('zl-prod-0-shared-sh', none, none)).toBe(false);
    expect(isOrphanServiceBridge('br-web-b', none, none)).toBe(false);
    expect(isOrphanServiceBridge('zl-webb', none, none)).toBe(false);
  });

  it('the name helpers give the -b, -d, -sh and -g names, and the shared bridge is never an orphan', () => {
    expect(serviceBridgeName('prod', '0', 'web')).toBe('zl-prod-0-web-b');
    expect(dedicatedInterfaceName('prod', '0', 'db')).toBe('zl-prod-0-db-d');
    // "zl-" + dep + "-" + inst + "-shared-sh" is over 15 bytes for any real pair, so the shared bridge name is hashed.
    expect(sharedBridgeName('prod', '0')).toMatch(/^zl-[0-9a-f]{1,9}-sh$/);
    expect(sharedBridgeName('prod', '0')).toBe(makeInterfaceName(['prod', '0', 'shared'], 'sh'));
    expect(sharedBridgeName('production', 'a1b2c3d4')).toBe(makeInterfaceName(['production', 'a1b2c3d4', 'shared'], 'sh'));
    const none = new Set<string>();
    for (const [dep, inst] of [['prod', '0'], ['production', 'a1b2c3d4']] as const) {
      const shared = sharedBridgeName(dep, inst);
      expect(shared.length).toBeLessThanOrEqual(MAX_IFNAME_LEN);
      expect(shared.endsWith('-sh')).toBe(true);
      expect(isOrphanServiceBridge(shared, none, none)).toBe(false);
      expect(isOrphanServiceBridge(globalInterfaceName(dep, inst), none, none)).toBe(false);
    }
  });

  it('serviceForInterface maps short and hashed -b/-d names back to their service', () => {
    const services = ['web', 'api', 'a-very-long-service-name'];
    expect(serviceForInterface('zl-prod-0-web-b', 'prod', '0', services)).toEqual({ service: 'web', kind: 'bridge' });
    expect(serviceForInterface('zl-prod-0-api-d', 'prod', '0', services)).toEqual({ service: 'api', kind: 'dedicated' });
    const hashedBridge = serviceBridgeName('production', 'a1b2c3d4', 'a-very-long-service-name');
    const hashedDevice = dedicatedInterfaceName('production', 'a1b2c3d4', 'a-very-long-service-name');
    expect(hashedBridge).toMatch(/^zl-[0-9a-f]{1,10}-b$/);
    expect(serviceForInterface(hashedBridge, 'production', 'a1b2c3d4', new Set(services))).toEqual({
      service: 'a-very-long-service-name',
      kind: 'bridge',
    });
    expect(serviceForInterface(hashedDevice, 'production', 'a1b2c3d4', services)).toEqual({
      service: 'a-very-long-service-name',
      kind: 'dedicated',
    });
    // Another deployment or instance, or an unknown service: no match.
    expect(serviceForInterface('zl-prod-0-web-b', 'prod', '1', services)).toBeNull();
    expect(serviceForInterface('zl-prod-0-gone-d', 'prod', '0', services)).toBeNull();
    expect(serviceForInterface('zl-prod-0-web-b', 'prod', '0', [])).toBeNull();
  });
});

describe('owner keys', () => {
  it('isolation_owner_key_distinct_from_service_owner_key', () => {
    const iso = ownerKey('iso', 'alpha');
    const svc = ownerKey('service', 'alpha');
    expect(iso).not.toBe(svc);
    expect(iso).toBe('iso:alpha');
    expect(svc).toBe('service:alpha');
  });

  it('parseOwnerKey inverts ownerKey and refuses other keys', () => {
    expect(parseOwnerKey('service:alpha')).toEqual({ kind: 'service', name: 'alpha' });
    expect(parseOwnerKey('iso:net:a')).toEqual({ kind: 'iso', name: 'net:a' });
    for (const other of ['alpha', 'service:', 'base:x', ':alpha', '']) expect(parseOwnerKey(other)).toBeNull();
  });
});
