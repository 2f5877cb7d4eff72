/**
 * The global device's configuration decisions and the host-adapter decision.
 */
import { describe, expect, it } from 'vitest';
import { hostAdapterFailureFatal, localEndpointFor, rootlessForcesUnspecified, rootlessFromEnvironment } from '../../src/overlay/build-config.js';

describe('localEndpointFor', () => {
  it('build_config_uses_matching_physical_egress_ipv4', () => {
    expect(localEndpointFor('10.200.0.1', 51820, { address: '192.0.2.10' }, false)).toEqual({ family: 4, address: '192.0.2.10', port: 51820 });
  });

  it('build_config_falls_back_to_unspecified_when_none', () => {
    expect(localEndpointFor('10.200.0.1', 51820, null, false)).toEqual({ family: 4, address: '0.0.0.0', port: 51820 });
  });

  it('build_config_falls_back_to_unspecified_on_family_mismatch (v6 overlay, v4 egress → [::]:51820), with a warning', () => {
    const warnings: string[] = [];
    expect(localEndpointFor('fd00::1', 51820, { address: '192.0.2.10' }, false, (m) => warnings.push(m))).toEqual({ family: 6, address: '::', port: 51820 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/192\.0\.2\.10.*fd00::1/);
    expect(localEndpointFor('10.200.0.1', 51820, { address: '2001:db8::5' }, false)).toEqual({ family: 4, address: '0.0.0.0', port: 51820 });
  });

  it('matching IPv6 egress is used for an IPv6 overlay', () => {
    expect(localEndpointFor('fd00::1', 51821, { address: '2001:db8::5' }, false)).toEqual({ family: 6, address: '2001:db8::5', port: 51821 });
  });

  it('rootless forces the unspecified address even with a matching egress', () => {
    expect(localEndpointFor('10.200.0.1', 51820, { address: '192.0.2.10' }, true)).toEqual({ family: 4, address: '0.0.0.0', port: 51820 });
    expect(localEndpointFor('fd00::1', 51820, { address: '2001:db8::5' }, true)).toEqual({ family: 6, address: '::', port: 51820 });
  });

  it('rootless_forces_unspecified_decision', () => {
    expect(rootlessForcesUnspecified(true)).toBe(true);
    expect(rootlessForcesUnspecified(false)).toBe(false);
  });

  it('rootless from the environment: TSWG_ROOTLESS or ZLAYER_ROOTLESS, set at all', () => {
    expect(rootlessFromEnvironment({})).toBe(false);
    expect(rootlessFromEnvironment({ TSWG_ROOTLESS: '' })).toBe(true);
    expect(rootlessFromEnvironment({ ZLAYER_ROOTLESS: '1' })).toBe(true);
  });

  it('refuses a non-IP overlay or egress address', () => {
    expect(() => localEndpointFor('nope', 1, null, false)).toThrow(/overlay IP nope is not an IP address/);
    expect(() => localEndpointFor('10.0.0.1', 1, { address: 'eth0' }, false)).toThrow(/physical egress address eth0 is not an IP address/);
  });
});

describe('hostAdapterFailureFatal (host_adapter_failure_fatal_decision)', () => {
  it('non-mandatory: fatal exactly on Linux; mandatory: fatal everywhere', () => {
    expect(hostAdapterFailureFatal(false)).toBe(process.platform === 'linux');
    expect(hostAdapterFailureFatal(true)).toBe(true);
    expect(hostAdapterFailureFatal(false, 'linux')).toBe(true);
    expect(hostAdapterFailureFatal(false, 'darwin')).toBe(false);
    expect(hostAdapterFailureFatal(false, 'win32')).toBe(false);
    expect(hostAdapterFailureFatal(true, 'darwin')).toBe(true);
    expect(hostAdapterFailureFatal(true, 'win32')).toBe(true);
  });
});
