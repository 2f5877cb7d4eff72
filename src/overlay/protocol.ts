/**
 * The control API of `tswg node`: one JSON object per line each way, the
 * requests and answers of ZLayer's overlay daemon with camelCase fields.
 *
 * A request is `{"type": "<Variant>", …fields}`; parseRequest checks it
 * against a schema written out below (no schema library: the shapes are
 * small and the messages must name the field), so a malformed line becomes a
 * ProtocolError such as
 *   SetupGlobalOverlay.wgPort: expected an integer 0..65535, got "x"
 * and never anything else. Unknown fields are refused (a typo would
 * otherwise be silently ignored). Semantic checks that need no state are
 * done here too (CIDRs, IP addresses, keys, the NAT spec); what needs the
 * node's state is the engine's.
 *
 * Defaults on parse (the wire may leave them out): SetupGlobalOverlay.wgPort
 * 51820, .hostAdapterMandatory false; AllocateIp.joinGlobal false;
 * scope "global"; PeerSpec.endpoint "0.0.0.0:0" (roaming), .allowedIps "",
 * .persistentKeepaliveSecs 0, .candidates []. PeerSpec.allowedIps may also be
 * sent as an array of strings; it is joined with "," (the string form).
 */
import { isIP } from 'node:net';
import { AddressError, parseCidr } from '../device/index.js';
import { type CandidateWire, NatConfigError, natConfigFromSpec, type NatConfigSpec, type NatStatusWire } from '../nat/index.js';
import { decodeKey } from '../noise/index.js';
import { DEFAULT_WG_PORT, MAX_CONTROL_LINE_BYTES, MAX_CONTROL_RESPONSE_BYTES, MAX_NAME_LENGTH, MAX_PID, ROAMING_ENDPOINT } from './constants.js';
import type { FirewallStatusView } from './firewall/firewall.js';
import { errorMessage } from '../platform/index.js';

export type { NatConfigSpec } from '../nat/index.js';
export type { NatStatusWire, NatPeerStatusWire } from '../nat/index.js';
export type { CandidateWire } from '../nat/index.js';

/** A malformed control line; the message names the field and is sent back as Err{message}. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

// ---- shared shapes -------------------------------------------------------------

/** Which device a peer request is for: the node's global device (default) or a service's dedicated device. */
export type PeerScope = 'global' | { service: string };

/** A peer as the control plane describes it (zlayer PeerSpec in camelCase). */
export interface PeerSpec {
  /** Base64 WireGuard public key. */
  publicKey: string;
  /** "ip:port" or "[ipv6]:port"; "0.0.0.0:0" = not known yet (roaming). */
  endpoint: string;
  /** Comma-separated CIDRs, e.g. "10.200.0.5/32,10.200.1.0/24" ("" = none). */
  allowedIps: string;
  /** 0 = off. */
  persistentKeepaliveSecs: number;
  /** NAT candidates the peer advertised; entries of unknown type or bad address are dropped later, not refused. */
  candidates: CandidateWire[];
}

/** One peer in a Status answer. */
export interface PeerStatusView {
  /** Base64 public key. */
  publicKey: string;
  /** "ip:port", null when the device has none. */
  endpoint: string | null;
  allowedIps: string[];
  /** Unix seconds of the latest handshake; 0 = never. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  /** direct / hole-punched / relayed, when the NAT tick connected this peer. */
  connectionType?: string;
}

/** The Status answer: the global overlay's snapshot. */
export interface StatusSnapshot {
  /** Name of the global device; null before setup. */
  interface: string | null;
  nodeIp: string | null;
  /** The global device's public key (base64); null before setup. */
  publicKey: string | null;
  /** The cluster CIDR (reported before setup too: the default). */
  overlayCidr: string | null;
  sliceCidr: string | null;
  peerCount: number;
  serviceCount: number;
  peers: PeerStatusView[];
  /** Every service overlay on this node (auto, shared and dedicated). */
  services: ServiceStatusView[];
  /** The dedicated ones' own WireGuard devices. */
  dedicatedServices: DedicatedServiceStatusView[];
  /** "ok", or "degraded: <reason>" while the global device is dead; absent from older nodes. */
  health?: string;
  /** The node's resolver; absent from nodes older than it. */
  dns?: DnsStatusView;
  /** Where the node's peers come from; absent from older nodes. */
  membership?: MembershipStatusView;
  /** The firewall backend, or why there is none (absent before setup). */
  firewall?: FirewallStatusView;
}

/** The node's resolver in a Status answer; the counts are since the daemon started. */
export interface DnsStatusView {
  /** "ip:port" it answers on; null while the global overlay is down or the port could not be bound. */
  listening: string | null;
  /** The zone's domain (default <deployment>.internal); null while the global overlay is down. */
  domain: string | null;
  /** Registered addresses. */
  records: number;
  /** Answered from the zone. */
  answered: number;
  /** Sent to an upstream resolver. */
  forwarded: number;
  /** Refused: too many forwards in flight. */
  refused: number;
  /** Dropped: not a DNS query. */
  malformed: number;
}

/** What a container's /etc/resolv.conf should say; the runtime writes it (the container has its own mount namespace). */
export interface ResolvConfView {
  nameserver: string;
  search: string[];
  options: string[];
}

/** The membership backend in a Status answer. */
export interface MembershipStatusView {
  backend: 'static' | 'etcd';
  /** false while etcd is unreachable (known peers are kept meanwhile). */
  healthy: boolean;
  /** Whether this node's own record is published. */
  member: boolean;
  /** The etcd revision the node's view is at; null for static. */
  revision: number | null;
}

/** How a service's containers are networked on a node. */
export type OverlayMode = 'auto' | 'shared' | 'dedicated';
export const OVERLAY_MODES: readonly OverlayMode[] = Object.freeze(['auto', 'shared', 'dedicated']);

/** One service overlay in a Status answer. */
export interface ServiceStatusView {
  name: string;
  mode: OverlayMode;
  bridge: string;
  subnet: string;
  /** Containers attached to it on this node. */
  members: number;
}

/** A dedicated service's device in a Status answer. */
export interface DedicatedServiceStatusView {
  service: string;
  interface: string;
  publicKey: string;
  listenPort: number;
  overlayIp: string;
  subnet: string;
  peerCount: number;
}

/** SetupServiceOverlay's answer; the WireGuard fields are null unless the mode is dedicated. */
export interface ServiceOverlayInfo {
  name: string;
  mode: OverlayMode;
  bridge: string;
  /** The service's subnet on this node: other nodes route it to this node's key. */
  subnet: string;
  wgPublicKey: string | null;
  wgPort: number | null;
  overlayIp: string | null;
}

/** Which container an attach is for. */
export type AttachHandle = { linuxPid: number } | { guestManaged: string } | { hostShared: string };

/** AttachContainer's answer for a Linux process or a host-shared container. */
export interface AttachResult {
  ip: string;
  /** eth1's address on the node slice when joinGlobal was asked for; null otherwise. */
  globalIp: string | null;
  /** The container's resolv.conf when the attach named dnsServer or dnsDomain; null otherwise (absent from older nodes). */
  resolvConf?: ResolvConfView | null;
}

/** AttachContainer's answer for a VM that runs its own WireGuard (guestManaged). */
export interface GuestOverlayConfig {
  overlayIp: string;
  prefixLen: number;
  privateKey: string;
  publicKey: string;
  listenPort: number;
  peers: PeerSpec[];
  dnsServer: string | null;
  dnsDomain: string | null;
}

// ---- requests ------------------------------------------------------------------

export interface SetLocalNodeIdRequest {
  type: 'SetLocalNodeId';
  nodeId: number;
}
export interface SetLocalWgPubkeyRequest {
  type: 'SetLocalWgPubkey';
  pubkey: string;
}
export interface SetupGlobalOverlayRequest {
  type: 'SetupGlobalOverlay';
  deployment: string;
  instanceId: string;
  clusterCidr: string;
  sliceCidr?: string;
  wgPort: number;
  nat?: NatConfigSpec;
  hostAdapterMandatory: boolean;
  /** The DNS zone's domain; default <deployment>.internal. */
  dnsDomain?: string;
}
export interface TeardownGlobalOverlayRequest {
  type: 'TeardownGlobalOverlay';
}
export interface AllocateIpRequest {
  type: 'AllocateIp';
  service: string;
  joinGlobal: boolean;
}
export interface ReleaseIpRequest {
  type: 'ReleaseIp';
  ip: string;
}
export interface AddPeerRequest {
  type: 'AddPeer';
  peer: PeerSpec;
  scope: PeerScope;
}
export interface RemovePeerRequest {
  type: 'RemovePeer';
  pubkey: string;
  scope: PeerScope;
}
export interface AddAllowedIpRequest {
  type: 'AddAllowedIp';
  pubkey: string;
  cidr: string;
  scope: PeerScope;
}
export interface RemoveAllowedIpRequest {
  type: 'RemoveAllowedIp';
  pubkey: string;
  cidr: string;
  scope: PeerScope;
}
export interface SetupServiceOverlayRequest {
  type: 'SetupServiceOverlay';
  service: string;
  mode: OverlayMode;
}
export interface TeardownServiceOverlayRequest {
  type: 'TeardownServiceOverlay';
  service: string;
}
export interface AttachContainerRequest {
  type: 'AttachContainer';
  handle: AttachHandle;
  service: string;
  joinGlobal: boolean;
  dnsServer: string | null;
  dnsDomain: string | null;
  ephemeral: boolean;
  isolationNetwork: string | null;
}
export interface DetachContainerRequest {
  type: 'DetachContainer';
  handle: AttachHandle;
}
export interface PruneOrphanBridgesRequest {
  type: 'PruneOrphanBridges';
  liveBridgeNames: string[];
}
export interface StatusRequest {
  type: 'Status';
}
export interface NatTickRequest {
  type: 'NatTick';
}
export interface NatStatusRequest {
  type: 'NatStatus';
}
export interface ShutdownRequest {
  type: 'Shutdown';
}
/** A name (its domain appended when left out) gets `ip` as an A or AAAA record; repeated calls add addresses. */
export interface RegisterDnsRequest {
  type: 'RegisterDns';
  name: string;
  ip: string;
}
/** Every record of a name goes (Ok when it had none). */
export interface UnregisterDnsRequest {
  type: 'UnregisterDns';
  name: string;
}
/**
 * The isolation-network members another node (by its global public key)
 * hosts: network name → addresses. Replaces what was known of that node;
 * `{}` forgets it. The firewall fences them like local members.
 */
export interface SetRemoteIsolationRequest {
  type: 'SetRemoteIsolation';
  node: string;
  networks: Record<string, string[]>;
}

export type Request =
  | SetLocalNodeIdRequest
  | SetLocalWgPubkeyRequest
  | SetupGlobalOverlayRequest
  | TeardownGlobalOverlayRequest
  | AllocateIpRequest
  | ReleaseIpRequest
  | AddPeerRequest
  | RemovePeerRequest
  | AddAllowedIpRequest
  | RemoveAllowedIpRequest
  | SetupServiceOverlayRequest
  | TeardownServiceOverlayRequest
  | AttachContainerRequest
  | DetachContainerRequest
  | PruneOrphanBridgesRequest
  | StatusRequest
  | NatTickRequest
  | NatStatusRequest
  | ShutdownRequest
  | RegisterDnsRequest
  | UnregisterDnsRequest
  | SetRemoteIsolationRequest;

export type RequestType = Request['type'];

// ---- responses -----------------------------------------------------------------

export type Response =
  | { type: 'Ok' }
  | { type: 'Err'; message: string }
  | { type: 'BridgeName'; name: string }
  | { type: 'Ip'; ip: string }
  | ({ type: 'ServiceOverlay' } & ServiceOverlayInfo)
  | ({ type: 'Attached' } & AttachResult)
  | ({ type: 'GuestConfig' } & GuestOverlayConfig)
  | { type: 'PrunedBridges'; reclaimed: string[] }
  | ({ type: 'Status' } & StatusSnapshot)
  | ({ type: 'NatStatus' } & NatStatusWire);

export type ResponseType = Response['type'];

// ---- the schema reader ---------------------------------------------------------

type JsonObject = Record<string, unknown>;

/** A value as an error message shows it: JSON, shortened. */
function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

function fail(path: string, expected: string, value: unknown): never {
  throw new ProtocolError(`${path === '' ? '' : `${path}: `}expected ${expected}, got ${describeValue(value)}`);
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads fields of one JSON object, naming each as `path.field` in errors, and refuses fields it was not asked about. */
export class ObjectReader {
  private readonly seen = new Set<string>();

  constructor(
    private readonly object: JsonObject,
    readonly path: string,
  ) {}

  private value(key: string): unknown {
    this.seen.add(key);
    return Object.hasOwn(this.object, key) ? this.object[key] : undefined;
  }

  /** `path.key`; just `key` at the top of a document (path ""). */
  fieldPath(key: string): string {
    return this.path === '' ? key : `${this.path}.${key}`;
  }

  /** The raw value (undefined when absent); for fields with their own reader. */
  raw(key: string): unknown {
    return this.value(key);
  }

  string(key: string, options: { nonEmpty?: boolean; pattern?: RegExp; patternText?: string; maxLength?: number } = {}): string {
    const value = this.value(key);
    return checkString(value, this.fieldPath(key), options);
  }

  optionalString(key: string, options: { nonEmpty?: boolean } = {}): string | undefined {
    const value = this.value(key);
    if (value === undefined || value === null) return undefined;
    return checkString(value, this.fieldPath(key), options);
  }

  integer(key: string, min: number, max: number, fallback?: number): number {
    const value = this.value(key);
    if ((value === undefined || value === null) && fallback !== undefined) return fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      fail(this.fieldPath(key), `an integer ${min}..${max}`, value);
    }
    return value;
  }

  boolean(key: string, fallback?: boolean): boolean {
    const value = this.value(key);
    if ((value === undefined || value === null) && fallback !== undefined) return fallback;
    if (typeof value !== 'boolean') fail(this.fieldPath(key), 'true or false', value);
    return value;
  }

  /** Throws when the object has a field nobody read (a typo, or a field of another variant). */
  rejectUnknown(): void {
    for (const key of Object.keys(this.object)) {
      if (!this.seen.has(key)) throw new ProtocolError(`${this.path === '' ? '' : `${this.path}: `}unknown field ${describeValue(key)}`);
    }
  }
}

function checkString(value: unknown, path: string, options: { nonEmpty?: boolean; pattern?: RegExp; patternText?: string; maxLength?: number }): string {
  if (typeof value !== 'string') fail(path, options.patternText ?? (options.nonEmpty ? 'a non-empty string' : 'a string'), value);
  if (options.nonEmpty && value === '') fail(path, 'a non-empty string', value);
  if (options.maxLength !== undefined && value.length > options.maxLength) fail(path, `at most ${options.maxLength} characters`, value);
  if (options.pattern && !options.pattern.test(value)) fail(path, options.patternText ?? `a string matching ${options.pattern}`, value);
  return value;
}

export function objectAt(value: unknown, path: string): ObjectReader {
  if (!isObject(value)) fail(path, 'an object', value);
  return new ObjectReader(value, path);
}

/** A 44-character base64 WireGuard key. */
function checkKey(value: string, path: string): string {
  try {
    decodeKey(value);
  } catch {
    fail(path, 'a base64 WireGuard public key (44 characters)', value);
  }
  return value;
}

/** "invalid CIDR …", the wording clients know from AddAllowedIp; prefixed with the field. */
export function checkCidr(value: string, path: string): string {
  try {
    parseCidr(value.trim());
  } catch (error) {
    if (!(error instanceof AddressError)) throw error;
    throw new ProtocolError(`${path}: invalid CIDR ${value}: ${error.message}`);
  }
  if (!value.includes('/')) throw new ProtocolError(`${path}: invalid CIDR ${value}: a prefix length is required (e.g. ${value}/32)`);
  return value.trim();
}

/** Names of deployments, instances and services become parts of interface names: no dots (sysctl paths), slashes or spaces. */
const NAME_PATTERN = /^[A-Za-z0-9_-]+$/;
const NAME_TEXT = 'a name of letters, digits, "-" and "_"';

/** A domain name: dot-separated labels of letters, digits, "-" and "_" (a trailing dot allowed). */
const DNS_DOMAIN_PATTERN = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$/;
const DNS_DOMAIN_TEXT = 'a domain name (labels of letters, digits, "-" and "_", 1..63 characters, joined by dots)';

/** An optional domain-name field (absent or null → undefined). */
export function optionalDnsDomainField(reader: ObjectReader, key: string): string | undefined {
  const value = reader.optionalString(key, { nonEmpty: true });
  if (value === undefined) return undefined;
  return checkString(value, reader.fieldPath(key), { pattern: DNS_DOMAIN_PATTERN, patternText: DNS_DOMAIN_TEXT, maxLength: MAX_NAME_LENGTH });
}

export function nameField(reader: ObjectReader, key: string): string {
  return reader.string(key, { nonEmpty: true, pattern: NAME_PATTERN, patternText: NAME_TEXT, maxLength: MAX_NAME_LENGTH });
}

/** "global" (any case; the default) or {"service": "name"}. */
function parseScope(value: unknown, path: string): PeerScope {
  if (value === undefined || value === null) return 'global';
  if (typeof value === 'string' && value.toLowerCase() === 'global') return 'global';
  if (isObject(value)) {
    const reader = new ObjectReader(value, path);
    const service = reader.string('service', { nonEmpty: true, maxLength: MAX_NAME_LENGTH });
    reader.rejectUnknown();
    return { service };
  }
  fail(path, '"global" or {"service": "<name>"}', value);
}

function parseCandidateWire(value: unknown, path: string): CandidateWire {
  const reader = objectAt(value, path);
  const candidate: CandidateWire = {
    candidateType: reader.string('candidateType'),
    address: reader.string('address'),
    priority: reader.integer('priority', 0, Number.MAX_SAFE_INTEGER),
  };
  reader.rejectUnknown();
  return candidate;
}

function allowedIpsField(value: unknown, path: string): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) {
    return value
      .map((item, i) => {
        if (typeof item !== 'string') fail(`${path}[${i}]`, 'a CIDR string', item);
        return item;
      })
      .join(',');
  }
  if (typeof value !== 'string') fail(path, 'a comma-separated CIDR list (string) or an array of CIDR strings', value);
  return value;
}

/** A PeerSpec's shape (types, key, defaults); the endpoint and CIDRs are checked by peerSpecToInfo. */
export function parsePeerSpec(value: unknown, path: string): PeerSpec {
  const reader = objectAt(value, path);
  const publicKey = checkKey(reader.string('publicKey'), reader.fieldPath('publicKey'));
  const endpoint = reader.optionalString('endpoint') ?? ROAMING_ENDPOINT;
  const allowedIps = allowedIpsField(reader.raw('allowedIps'), reader.fieldPath('allowedIps'));
  const persistentKeepaliveSecs = reader.integer('persistentKeepaliveSecs', 0, 65_535, 0);
  const rawCandidates = reader.raw('candidates');
  let candidates: CandidateWire[] = [];
  if (rawCandidates !== undefined && rawCandidates !== null) {
    if (!Array.isArray(rawCandidates)) fail(reader.fieldPath('candidates'), 'an array of candidates', rawCandidates);
    candidates = rawCandidates.map((item, i) => parseCandidateWire(item, `${reader.fieldPath('candidates')}[${i}]`));
  }
  reader.rejectUnknown();
  return { publicKey, endpoint, allowedIps, persistentKeepaliveSecs, candidates };
}

/** A NatConfigSpec, validated by the NAT module's own conversion (errors re-worded to name the field). */
export function parseNatSpec(value: unknown, path: string): NatConfigSpec {
  if (!isObject(value)) fail(path, 'a NAT config object', value);
  try {
    natConfigFromSpec(value);
  } catch (error) {
    if (error instanceof NatConfigError) throw new ProtocolError(`${path}.${error.message}`);
    throw error;
  }
  return value as NatConfigSpec;
}

/** "auto" (the default), "shared" or "dedicated", in any case. */
function parseMode(value: unknown, path: string): OverlayMode {
  if (value === undefined || value === null) return 'auto';
  if (typeof value === 'string') {
    const mode = value.toLowerCase() as OverlayMode;
    if (OVERLAY_MODES.includes(mode)) return mode;
  }
  fail(path, '"auto", "shared" or "dedicated"', value);
}

/** {"linuxPid": N}, {"guestManaged": "<id>"} or {"hostShared": "<id>"}. */
function parseAttachHandle(value: unknown, path: string): AttachHandle {
  const expected = '{"linuxPid": <pid>}, {"guestManaged": "<id>"} or {"hostShared": "<id>"}';
  if (!isObject(value) || Object.keys(value).length !== 1) fail(path, expected, value);
  const reader = new ObjectReader(value, path);
  const [kind] = Object.keys(value);
  let handle: AttachHandle;
  switch (kind) {
    case 'linuxPid':
      handle = { linuxPid: reader.integer('linuxPid', 1, MAX_PID) };
      break;
    case 'guestManaged':
      handle = { guestManaged: nameField(reader, 'guestManaged') };
      break;
    case 'hostShared':
      handle = { hostShared: nameField(reader, 'hostShared') };
      break;
    default:
      throw new ProtocolError(`${path}: unknown handle kind ${describeValue(kind)} (expected ${expected})`);
  }
  reader.rejectUnknown();
  return handle;
}

function optionalIpField(reader: ObjectReader, key: string): string | null {
  const value = reader.optionalString(key);
  if (value === undefined) return null;
  if (isIP(value) === 0) fail(reader.fieldPath(key), 'an IP address', value);
  return value;
}

function stringList(value: unknown, path: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) fail(path, 'an array of strings', value);
  return value.map((item, i) => {
    if (typeof item !== 'string') fail(`${path}[${i}]`, 'a string', item);
    return item;
  });
}

/** {"<network>": ["<ip>", …], …}: names as isolation networks take them, each address an IP. */
export function parseIsolationNetworks(value: unknown, path: string): Record<string, string[]> {
  if (!isObject(value)) fail(path, 'an object of network name → list of IP addresses', value);
  const networks: Record<string, string[]> = {};
  for (const [name, members] of Object.entries(value)) {
    if (name === '' || name.length > MAX_NAME_LENGTH || !NAME_PATTERN.test(name)) fail(`${path} key`, NAME_TEXT, name);
    networks[name] = stringList(members, `${path}.${name}`).map((ip, i) => {
      if (isIP(ip) === 0) fail(`${path}.${name}[${i}]`, 'an IP address', ip);
      return ip;
    });
  }
  return networks;
}

// ---- parsing requests ----------------------------------------------------------

type RequestParser = (reader: ObjectReader) => Request;

const REQUEST_PARSERS: Record<RequestType, RequestParser> = {
  SetLocalNodeId: (r) => ({ type: 'SetLocalNodeId', nodeId: r.integer('nodeId', 0, Number.MAX_SAFE_INTEGER) }),
  SetLocalWgPubkey: (r) => ({ type: 'SetLocalWgPubkey', pubkey: checkKey(r.string('pubkey'), r.fieldPath('pubkey')) }),
  SetupGlobalOverlay: (r) => {
    const request: SetupGlobalOverlayRequest = {
      type: 'SetupGlobalOverlay',
      deployment: nameField(r, 'deployment'),
      instanceId: nameField(r, 'instanceId'),
      clusterCidr: checkCidr(r.string('clusterCidr'), r.fieldPath('clusterCidr')),
      wgPort: r.integer('wgPort', 0, 65_535, DEFAULT_WG_PORT),
      hostAdapterMandatory: r.boolean('hostAdapterMandatory', false),
    };
    const slice = r.optionalString('sliceCidr');
    if (slice !== undefined) request.sliceCidr = checkCidr(slice, r.fieldPath('sliceCidr'));
    const nat = r.raw('nat');
    if (nat !== undefined && nat !== null) request.nat = parseNatSpec(nat, r.fieldPath('nat'));
    const dnsDomain = optionalDnsDomainField(r, 'dnsDomain');
    if (dnsDomain !== undefined) request.dnsDomain = dnsDomain;
    return request;
  },
  TeardownGlobalOverlay: () => ({ type: 'TeardownGlobalOverlay' }),
  AllocateIp: (r) => ({ type: 'AllocateIp', service: r.string('service', { maxLength: MAX_NAME_LENGTH }), joinGlobal: r.boolean('joinGlobal', false) }),
  ReleaseIp: (r) => {
    const ip = r.string('ip');
    if (isIP(ip) === 0) fail(r.fieldPath('ip'), 'an IP address', ip);
    return { type: 'ReleaseIp', ip };
  },
  AddPeer: (r) => ({ type: 'AddPeer', peer: parsePeerSpec(r.raw('peer'), r.fieldPath('peer')), scope: parseScope(r.raw('scope'), r.fieldPath('scope')) }),
  RemovePeer: (r) => ({
    type: 'RemovePeer',
    pubkey: checkKey(r.string('pubkey'), r.fieldPath('pubkey')),
    scope: parseScope(r.raw('scope'), r.fieldPath('scope')),
  }),
  AddAllowedIp: (r) => ({
    type: 'AddAllowedIp',
    pubkey: checkKey(r.string('pubkey'), r.fieldPath('pubkey')),
    cidr: checkCidr(r.string('cidr'), r.fieldPath('cidr')),
    scope: parseScope(r.raw('scope'), r.fieldPath('scope')),
  }),
  RemoveAllowedIp: (r) => ({
    type: 'RemoveAllowedIp',
    pubkey: checkKey(r.string('pubkey'), r.fieldPath('pubkey')),
    cidr: checkCidr(r.string('cidr'), r.fieldPath('cidr')),
    scope: parseScope(r.raw('scope'), r.fieldPath('scope')),
  }),
  SetupServiceOverlay: (r) => ({ type: 'SetupServiceOverlay', service: nameField(r, 'service'), mode: parseMode(r.raw('mode'), r.fieldPath('mode')) }),
  TeardownServiceOverlay: (r) => ({ type: 'TeardownServiceOverlay', service: nameField(r, 'service') }),
  AttachContainer: (r) => {
    const dnsDomain = r.optionalString('dnsDomain', { nonEmpty: true }) ?? null;
    const isolation = r.raw('isolationNetwork');
    return {
      type: 'AttachContainer',
      handle: parseAttachHandle(r.raw('handle'), r.fieldPath('handle')),
      service: nameField(r, 'service'),
      joinGlobal: r.boolean('joinGlobal', false),
      dnsServer: optionalIpField(r, 'dnsServer'),
      dnsDomain,
      ephemeral: r.boolean('ephemeral', false),
      isolationNetwork: isolation === undefined || isolation === null ? null : nameField(r, 'isolationNetwork'),
    };
  },
  DetachContainer: (r) => ({ type: 'DetachContainer', handle: parseAttachHandle(r.raw('handle'), r.fieldPath('handle')) }),
  PruneOrphanBridges: (r) => ({ type: 'PruneOrphanBridges', liveBridgeNames: stringList(r.raw('liveBridgeNames'), r.fieldPath('liveBridgeNames')) }),
  Status: () => ({ type: 'Status' }),
  NatTick: () => ({ type: 'NatTick' }),
  NatStatus: () => ({ type: 'NatStatus' }),
  Shutdown: () => ({ type: 'Shutdown' }),
  RegisterDns: (r) => {
    const name = r.string('name', { nonEmpty: true, maxLength: MAX_NAME_LENGTH });
    const ip = r.string('ip');
    if (isIP(ip) === 0) fail(r.fieldPath('ip'), 'an IP address', ip);
    return { type: 'RegisterDns', name, ip };
  },
  UnregisterDns: (r) => ({ type: 'UnregisterDns', name: r.string('name', { nonEmpty: true, maxLength: MAX_NAME_LENGTH }) }),
  SetRemoteIsolation: (r) => ({
    type: 'SetRemoteIsolation',
    node: checkKey(r.string('node'), r.fieldPath('node')),
    networks: parseIsolationNetworks(r.raw('networks'), r.fieldPath('networks')),
  }),
};

export const REQUEST_TYPES: readonly RequestType[] = Object.freeze(Object.keys(REQUEST_PARSERS) as RequestType[]);

/** Parse a JSON line without letting JSON.parse's own error type escape. */
function parseJsonObject(line: string, what: string, maxBytes = MAX_CONTROL_LINE_BYTES): JsonObject {
  if (Buffer.byteLength(line, 'utf8') > maxBytes) {
    throw new ProtocolError(`${what} line is longer than ${maxBytes} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new ProtocolError(`not a JSON object: ${(error as Error).message}`);
  }
  if (!isObject(value)) throw new ProtocolError(`not a JSON object: got ${describeValue(value)}`);
  return value;
}

function variantOf<T extends string>(object: JsonObject, known: readonly T[], what: string): T {
  const type = Object.hasOwn(object, 'type') ? object.type : undefined;
  if (type === undefined) throw new ProtocolError(`${what}.type: missing (expected one of ${known.join(', ')})`);
  if (typeof type !== 'string') fail(`${what}.type`, 'a string', type);
  if (!(known as readonly string[]).includes(type)) throw new ProtocolError(`unknown ${what.toLowerCase()} type ${describeValue(type)}`);
  return type as T;
}

/** One request line (without its newline) → a Request; throws ProtocolError naming the field. */
export function parseRequest(line: string): Request {
  const object = parseJsonObject(line, 'request');
  const type = variantOf(object, REQUEST_TYPES, 'request');
  const reader = new ObjectReader(object, type);
  reader.raw('type');
  const request = REQUEST_PARSERS[type](reader);
  reader.rejectUnknown();
  return request;
}

/** A Request as one line (no newline); what the CLI client sends. */
export function encodeRequest(request: Request): string {
  return JSON.stringify(request);
}

// ---- responses -----------------------------------------------------------------

export const RESPONSE_TYPES: readonly ResponseType[] = Object.freeze([
  'Ok',
  'Err',
  'BridgeName',
  'Ip',
  'ServiceOverlay',
  'Attached',
  'GuestConfig',
  'PrunedBridges',
  'Status',
  'NatStatus',
]);

/** A Response as one line: JSON escapes every newline inside strings, so the line never breaks. */
export function encodeResponse(response: Response): string {
  return JSON.stringify(response);
}

function checkStringFields(object: JsonObject, type: string, fields: readonly string[]): void {
  for (const field of fields) {
    if (typeof object[field] !== 'string') fail(`${type}.${field}`, 'a string', object[field]);
  }
}

function checkNullableStringFields(object: JsonObject, type: string, fields: readonly string[]): void {
  for (const field of fields) {
    const value = object[field];
    if (value !== null && typeof value !== 'string') fail(`${type}.${field}`, 'a string or null', value);
  }
}

function checkArrayFields(object: JsonObject, type: string, fields: readonly string[]): void {
  for (const field of fields) {
    if (!Array.isArray(object[field])) fail(`${type}.${field}`, 'an array', object[field]);
  }
}

/** One response line → a Response (for clients): the variant and its top-level fields are checked. */
export function parseResponse(line: string): Response {
  // Answers come from our own node: their cap only bounds memory (a Status of many peers is long).
  const object = parseJsonObject(line, 'response', MAX_CONTROL_RESPONSE_BYTES);
  const type = variantOf(object, RESPONSE_TYPES, 'response');
  switch (type) {
    case 'Err':
      checkStringFields(object, type, ['message']);
      break;
    case 'BridgeName':
      checkStringFields(object, type, ['name']);
      break;
    case 'Ip':
      checkStringFields(object, type, ['ip']);
      break;
    case 'ServiceOverlay':
      checkStringFields(object, type, ['name', 'mode', 'bridge', 'subnet']);
      checkNullableStringFields(object, type, ['wgPublicKey', 'overlayIp']);
      break;
    case 'Attached':
      checkStringFields(object, type, ['ip']);
      checkNullableStringFields(object, type, ['globalIp']);
      break;
    case 'GuestConfig':
      checkStringFields(object, type, ['overlayIp', 'privateKey', 'publicKey']);
      checkArrayFields(object, type, ['peers']);
      break;
    case 'PrunedBridges':
      checkArrayFields(object, type, ['reclaimed']);
      break;
    case 'Status':
      checkNullableStringFields(object, type, ['interface', 'nodeIp', 'publicKey', 'overlayCidr', 'sliceCidr']);
      checkArrayFields(object, type, ['peers']);
      // Older nodes answer without the service lists.
      object.services ??= [];
      object.dedicatedServices ??= [];
      checkArrayFields(object, type, ['services', 'dedicatedServices']);
      if (object.membership !== undefined) checkMembershipView(object.membership, type);
      for (const field of ['peerCount', 'serviceCount']) {
        if (typeof object[field] !== 'number') fail(`${type}.${field}`, 'a number', object[field]);
      }
      if (object.health !== undefined && typeof object.health !== 'string') fail(`${type}.health`, 'a string', object.health);
      break;
    case 'NatStatus':
      checkArrayFields(object, type, ['candidates', 'peers']);
      if (typeof object.lastRefresh !== 'number') fail(`${type}.lastRefresh`, 'a number', object.lastRefresh);
      break;
    case 'Ok':
      break;
  }
  return object as Response;
}

function checkMembershipView(value: unknown, type: string): void {
  if (!isObject(value)) fail(`${type}.membership`, 'an object', value);
  if (value.backend !== 'static' && value.backend !== 'etcd') fail(`${type}.membership.backend`, '"static" or "etcd"', value.backend);
  for (const field of ['healthy', 'member']) {
    if (typeof value[field] !== 'boolean') fail(`${type}.membership.${field}`, 'a boolean', value[field]);
  }
  if (value.revision !== null && typeof value.revision !== 'number') fail(`${type}.membership.revision`, 'a number or null', value.revision);
}

/** Err{message} for a thrown error: its message verbatim (OverlayError and ProtocolError messages are written for clients). */
export function errorResponse(error: unknown): Response {
  const message = errorMessage(error);
  return { type: 'Err', message };
}
