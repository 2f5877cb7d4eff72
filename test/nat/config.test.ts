/**
 * NatConfig defaults and the wire spec conversion (defaults filled in, the
 * rest copied), plus the errors a
 * malformed spec gets and a fuzz run over random JSON-ish specs.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../helpers/fuzz.js';
import {
  DEFAULT_HOLE_PUNCH_TIMEOUT_SECS,
  DEFAULT_MAX_CANDIDATE_PAIRS,
  DEFAULT_STUN_REFRESH_INTERVAL_SECS,
  DEFAULT_STUN_SERVER,
} from '../../src/nat/constants.js';
import { NatConfigError, defaultNatConfig, natConfigFromSpec, natConfigToSpec, type NatConfigSpec } from '../../src/nat/config.js';

describe('defaultNatConfig', () => {
  it('is enabled with Google STUN and the documented numbers', () => {
    const config = defaultNatConfig();
    expect(config.enabled).toBe(true);
    expect(config.stunServers.map((server) => server.address)).toEqual(['stun.l.google.com:19302']);
    expect(DEFAULT_STUN_SERVER).toBe('stun.l.google.com:19302');
    expect(config.turnServers).toEqual([]);
    expect(config.holePunchTimeoutSecs).toBe(10);
    expect(config.stunRefreshIntervalSecs).toBe(30);
    expect(config.maxCandidatePairs).toBe(10);
    expect(config.relayServer).toBeUndefined();
  });

  it('hands out independent copies', () => {
    const a = defaultNatConfig();
    a.stunServers.push({ address: 'x:1' });
    expect(defaultNatConfig().stunServers).toHaveLength(1);
  });
});

describe('natConfigFromSpec', () => {
  it('fills zero and empty fields with defaults and copies the rest (nat_config_spec_to_config_fills_defaults_and_copies)', () => {
    const spec: NatConfigSpec = {
      enabled: true,
      stunServers: [],
      turnServers: [{ addr: 'turn.example:3478', username: 'u', credential: 'p' }],
      holePunchTimeoutSecs: 0,
      stunRefreshIntervalSecs: 0,
      maxCandidatePairs: 0,
      relayServer: { listenPort: 3479, externalAddr: '203.0.113.5:3479', maxSessions: 0, authCredential: 'cluster-secret-0123456789' },
    };
    const config = natConfigFromSpec(spec);
    expect(config.enabled).toBe(true);
    expect(config.stunServers).toEqual(defaultNatConfig().stunServers);
    expect(config.holePunchTimeoutSecs).toBe(DEFAULT_HOLE_PUNCH_TIMEOUT_SECS);
    expect(config.stunRefreshIntervalSecs).toBe(DEFAULT_STUN_REFRESH_INTERVAL_SECS);
    expect(config.maxCandidatePairs).toBe(DEFAULT_MAX_CANDIDATE_PAIRS);
    expect(config.turnServers).toEqual([{ address: 'turn.example:3478', username: 'u', credential: 'p' }]);
    expect(config.relayServer).toEqual({ listenPort: 3479, externalAddr: '203.0.113.5:3479', maxSessions: 100 });
    expect(config.relayServer).not.toHaveProperty('authCredential');
    expect(config.clusterRelayCredential).toBe('cluster-secret-0123456789');
  });

  it('copies non-zero values verbatim', () => {
    const config = natConfigFromSpec({
      enabled: false,
      stunServers: ['198.51.100.1:3478', '[2001:db8::1]:3478'],
      holePunchTimeoutSecs: 3,
      stunRefreshIntervalSecs: 7,
      maxCandidatePairs: 2,
      relayServer: { listenPort: 0, externalAddr: '198.51.100.2:4000', maxSessions: 9, authCredential: 'verbatim-relay-secret' },
      relays: ['198.51.100.2:4000'],
    });
    expect(config.enabled).toBe(false);
    expect(config.stunServers).toEqual([{ address: '198.51.100.1:3478' }, { address: '[2001:db8::1]:3478' }]);
    expect([config.holePunchTimeoutSecs, config.stunRefreshIntervalSecs, config.maxCandidatePairs]).toEqual([3, 7, 2]);
    expect(config.relayServer).toEqual({ listenPort: 0, externalAddr: '198.51.100.2:4000', maxSessions: 9 });
    expect(config.clusterRelayCredential).toBe('verbatim-relay-secret');
    expect(config.relays).toEqual(['198.51.100.2:4000']);
  });

  it('an empty spec is disabled but keeps the default STUN server', () => {
    const config = natConfigFromSpec({});
    expect(config.enabled).toBe(false);
    expect(config.stunServers).toEqual(defaultNatConfig().stunServers);
    expect(config.turnServers).toEqual([]);
    expect(config.relayServer).toBeUndefined();
  });

  it('round-trips through natConfigToSpec', () => {
    const config = natConfigFromSpec({
      enabled: true,
      stunServers: ['a:1'],
      turnServers: [{ addr: 't:2', username: 'u', credential: 'c' }],
      holePunchTimeoutSecs: 4,
      stunRefreshIntervalSecs: 5,
      maxCandidatePairs: 6,
      relayServer: { listenPort: 7, externalAddr: 'r:7', maxSessions: 8, authCredential: 'round-trip-relay-secret' },
      relays: ['r:7'],
    });
    expect(natConfigFromSpec(JSON.parse(JSON.stringify(natConfigToSpec(config))))).toEqual(config);
  });

  it.each([
    [null, /must be an object/],
    [[], /must be an object/],
    [{ enabled: 'yes' }, /enabled must be a boolean/],
    [{ stunServers: 'stun:1' }, /stunServers must be an array/],
    [{ stunServers: [1] }, /stunServers\[0\] must be a non-empty string/],
    [{ holePunchTimeoutSecs: -1 }, /holePunchTimeoutSecs must be a non-negative integer/],
    [{ maxCandidatePairs: 1.5 }, /maxCandidatePairs must be a non-negative integer/],
    [{ stunRefreshIntervalSecs: '30' }, /stunRefreshIntervalSecs must be a non-negative integer/],
    [{ turnServers: [{ addr: 'x:1', username: 'u' }] }, /turnServers\[0\]\.credential is missing/],
    [{ turnServers: {} }, /turnServers must be an array/],
    [{ relayServer: 5 }, /relayServer must be an object/],
    [{ relayServer: { listenPort: 70000, externalAddr: 'x:1', maxSessions: 1, authCredential: 'a-long-enough-secret' } }, /relayServer\.listenPort must be 0\.\.65535/],
    [{ relayServer: { listenPort: 1, externalAddr: 2, maxSessions: 1 } }, /relayServer\.externalAddr must be a string/],
    [{ relayServer: { listenPort: 1, externalAddr: 'x:1', maxSessions: 1, authCredential: 3 } }, /relayServer\.authCredential must be a string/],
    // A relay port is open to anyone: no relay server without a real secret.
    [{ relayServer: { listenPort: 1, externalAddr: 'x:1', maxSessions: 1 } }, /relayServer\.authCredential is not set \(a relay server needs a shared secret of at least 16 bytes\)/],
    [{ relayServer: { listenPort: 1, externalAddr: 'x:1', maxSessions: 1, authCredential: null } }, /relayServer\.authCredential is not set/],
    [{ relayServer: { listenPort: 1, externalAddr: 'x:1', maxSessions: 1, authCredential: '' } }, /relayServer\.authCredential is not set/],
    [{ relayServer: { listenPort: 1, externalAddr: 'x:1', maxSessions: 1, authCredential: 'cluster-secret' } }, /relayServer\.authCredential is 14 bytes; at least 16/],
  ])('refuses %j naming the field', (spec, message) => {
    expect(() => natConfigFromSpec(spec)).toThrowError(NatConfigError);
    expect(() => natConfigFromSpec(spec)).toThrowError(message);
  });

  it('never throws anything but NatConfigError on random input (fuzz)', () => {
    const values: unknown[] = [0, 1, -1, 2.5, 'x', '', true, false, null, undefined, [], ['a'], [1], {}, { addr: 'a', username: 'b', credential: 'c' }];
    const keys = ['enabled', 'stunServers', 'turnServers', 'holePunchTimeoutSecs', 'stunRefreshIntervalSecs', 'maxCandidatePairs', 'relayServer', 'relays'];
    const rng = new Rng(12345);
    const random = (n: number): number => rng.int(n);
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const spec: Record<string, unknown> = {};
      for (const key of keys) if (random(4) === 0) spec[key] = values[random(values.length)];
      if (random(4) === 0) spec.relayServer = { listenPort: values[random(values.length)], externalAddr: values[random(values.length)], maxSessions: values[random(values.length)] };
      try {
        const config = natConfigFromSpec(spec);
        accepted++;
        expect(config.stunServers.length).toBeGreaterThan(0);
        expect(config.holePunchTimeoutSecs).toBeGreaterThan(0);
      } catch (error) {
        expect(error).toBeInstanceOf(NatConfigError);
      }
    }
    expect(accepted).toBeGreaterThan(0);
  });
});
