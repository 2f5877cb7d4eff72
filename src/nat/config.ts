/**
 * NAT traversal configuration: the in-memory NatConfig, its defaults, and the
 * wire form NatConfigSpec (camelCase JSON, as the control plane sends it)
 * with the conversion rules the control plane expects:
 *  - zero or empty stunServers, holePunchTimeoutSecs,
 *    stunRefreshIntervalSecs and maxCandidatePairs take the defaults;
 *  - relayServer.maxSessions 0 → 100;
 *  - enabled and the TURN list are copied verbatim (so an empty spec gives
 *    enabled = false but keeps the default STUN server);
 *  - relayServer.authCredential is stripped off into clusterRelayCredential.
 * A spec with a wrongly typed field is refused with an error naming the field.
 * Stricter than the control plane: a relayServer needs an authCredential of at least 16
 * bytes: its port is open to anyone, and an empty credential made it an open
 * relay.
 *
 * An addition to the control plane's spec: `relays`, the built-in relay servers
 * this node registers with (and advertises as relay candidates). relayServer is a
 * relay this node *runs*; a node behind NAT needs to know one it can *use*.
 */
import {
  DEFAULT_HOLE_PUNCH_TIMEOUT_SECS,
  DEFAULT_MAX_CANDIDATE_PAIRS,
  DEFAULT_MAX_RELAY_SESSIONS,
  DEFAULT_STUN_REFRESH_INTERVAL_SECS,
  DEFAULT_STUN_SERVER,
  DEFAULT_STUN_SERVER_LABEL,
} from './constants.js';
import { relayCredentialProblem } from './relay/auth.js';
import { MIN_CREDENTIAL_BYTES } from './relay/constants.js';

export interface StunServerConfig {
  /** "host:port" (a name or an IP; IPv6 as [addr]:port). */
  address: string;
  label?: string;
}

export interface TurnServerConfig {
  /** "host:port" of the TURN server (UDP). */
  address: string;
  username: string;
  credential: string;
  region?: string;
}

/** A built-in relay server this node runs. */
export interface RelayServerConfig {
  /** UDP port to listen on; 0 picks a free one. */
  listenPort: number;
  /** "ip:port" peers use to reach it (what it advertises). */
  externalAddr: string;
  maxSessions: number;
}

export interface NatConfig {
  enabled: boolean;
  stunServers: StunServerConfig[];
  turnServers: TurnServerConfig[];
  holePunchTimeoutSecs: number;
  stunRefreshIntervalSecs: number;
  maxCandidatePairs: number;
  relayServer?: RelayServerConfig;
  /** The shared secret of built-in relays (client and server): at least 16 random bytes; a relay server refuses to start without it. */
  clusterRelayCredential?: string;
  /** Built-in relay servers ("host:port") to register with and advertise (a tswg addition to the spec). */
  relays?: string[];
}

/** Enabled, Google's public STUN server, no TURN, no relay. */
export function defaultNatConfig(): NatConfig {
  return {
    enabled: true,
    stunServers: [{ address: DEFAULT_STUN_SERVER, label: DEFAULT_STUN_SERVER_LABEL }],
    turnServers: [],
    holePunchTimeoutSecs: DEFAULT_HOLE_PUNCH_TIMEOUT_SECS,
    stunRefreshIntervalSecs: DEFAULT_STUN_REFRESH_INTERVAL_SECS,
    maxCandidatePairs: DEFAULT_MAX_CANDIDATE_PAIRS,
  };
}

// ---- the wire form ----------------------------------------------------------

export interface TurnServerSpec {
  addr: string;
  username: string;
  credential: string;
}

export interface RelayServerSpec {
  listenPort: number;
  externalAddr: string;
  maxSessions: number;
  authCredential?: string | null;
}

/** What the control plane sends (the NatConfigSpec of ZLayer's control plane, in camelCase). Missing fields read as zero / empty. */
export interface NatConfigSpec {
  enabled?: boolean;
  stunServers?: string[];
  turnServers?: TurnServerSpec[];
  holePunchTimeoutSecs?: number;
  stunRefreshIntervalSecs?: number;
  maxCandidatePairs?: number;
  relayServer?: RelayServerSpec | null;
  /** Extension: built-in relays to use (see the file comment). */
  relays?: string[];
}

export class NatConfigError extends Error {
  override readonly name = 'NatConfigError';
}

/** Convert a spec (already JSON-parsed, so untrusted) to a NatConfig by the rules above; throws NatConfigError naming the bad field. */
export function natConfigFromSpec(spec: unknown): NatConfig {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new NatConfigError('NAT config spec must be an object');
  const s = spec as Record<string, unknown>;
  const defaults = defaultNatConfig();
  const stunServers = stringList(s.stunServers, 'stunServers');
  const config: NatConfig = {
    enabled: optionalBoolean(s.enabled, 'enabled') ?? false,
    stunServers: stunServers.length === 0 ? defaults.stunServers : stunServers.map((address) => ({ address })),
    turnServers: turnList(s.turnServers),
    holePunchTimeoutSecs: positiveOr(s.holePunchTimeoutSecs, 'holePunchTimeoutSecs', defaults.holePunchTimeoutSecs),
    stunRefreshIntervalSecs: positiveOr(s.stunRefreshIntervalSecs, 'stunRefreshIntervalSecs', defaults.stunRefreshIntervalSecs),
    maxCandidatePairs: positiveOr(s.maxCandidatePairs, 'maxCandidatePairs', defaults.maxCandidatePairs),
  };
  const relays = stringList(s.relays, 'relays');
  if (relays.length > 0) config.relays = relays;
  if (s.relayServer !== undefined && s.relayServer !== null) {
    const relay = s.relayServer;
    if (typeof relay !== 'object' || Array.isArray(relay)) throw new NatConfigError('relayServer must be an object');
    const r = relay as Record<string, unknown>;
    const listenPort = nonNegativeInteger(r.listenPort, 'relayServer.listenPort') ?? 0;
    if (listenPort > 65_535) throw new NatConfigError(`relayServer.listenPort must be 0..65535, got ${listenPort}`);
    const maxSessions = nonNegativeInteger(r.maxSessions, 'relayServer.maxSessions') ?? 0;
    config.relayServer = {
      listenPort,
      externalAddr: optionalString(r.externalAddr, 'relayServer.externalAddr') ?? '',
      maxSessions: maxSessions === 0 ? DEFAULT_MAX_RELAY_SESSIONS : maxSessions,
    };
    const credential = r.authCredential === null ? undefined : optionalString(r.authCredential, 'relayServer.authCredential');
    const problem = relayCredentialProblem(credential);
    if (problem !== null) throw new NatConfigError(`relayServer.authCredential ${problem} (a relay server needs a shared secret of at least ${MIN_CREDENTIAL_BYTES} bytes)`);
    config.clusterRelayCredential = credential;
  }
  return config;
}

/** The spec that natConfigFromSpec turns back into `config` (credential included). */
export function natConfigToSpec(config: NatConfig): NatConfigSpec {
  const spec: NatConfigSpec = {
    enabled: config.enabled,
    stunServers: config.stunServers.map((server) => server.address),
    turnServers: config.turnServers.map((server) => ({ addr: server.address, username: server.username, credential: server.credential })),
    holePunchTimeoutSecs: config.holePunchTimeoutSecs,
    stunRefreshIntervalSecs: config.stunRefreshIntervalSecs,
    maxCandidatePairs: config.maxCandidatePairs,
  };
  if (config.relays !== undefined && config.relays.length > 0) spec.relays = [...config.relays];
  if (config.relayServer !== undefined) {
    spec.relayServer = { ...config.relayServer };
    if (config.clusterRelayCredential !== undefined) spec.relayServer.authCredential = config.clusterRelayCredential;
  }
  return spec;
}

// ---- field readers ----------------------------------------------------------

function optionalBoolean(value: unknown, field: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw new NatConfigError(`${field} must be a boolean, got ${describe(value)}`);
  return value;
}

function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new NatConfigError(`${field} must be a string, got ${describe(value)}`);
  return value;
}

function nonNegativeInteger(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new NatConfigError(`${field} must be a non-negative integer, got ${describe(value)}`);
  }
  return value;
}

/** Zero or missing → the default (a zero means "not set" on the wire). */
function positiveOr(value: unknown, field: string, fallback: number): number {
  const n = nonNegativeInteger(value, field);
  return n === undefined || n === 0 ? fallback : n;
}

function stringList(value: unknown, field: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new NatConfigError(`${field} must be an array of strings, got ${describe(value)}`);
  return value.map((item, i) => {
    if (typeof item !== 'string' || item === '') throw new NatConfigError(`${field}[${i}] must be a non-empty string, got ${describe(item)}`);
    return item;
  });
}

function turnList(value: unknown): TurnServerConfig[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new NatConfigError(`turnServers must be an array, got ${describe(value)}`);
  return value.map((item, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new NatConfigError(`turnServers[${i}] must be an object`);
    const t = item as Record<string, unknown>;
    const read = (key: string): string => {
      const text = optionalString(t[key], `turnServers[${i}].${key}`);
      if (text === undefined) throw new NatConfigError(`turnServers[${i}].${key} is missing`);
      return text;
    };
    return { address: read('addr'), username: read('username'), credential: read('credential') };
  });
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return typeof value === 'number' || typeof value === 'boolean' ? `${typeof value} ${String(value)}` : typeof value;
}
