/**
 * `tswg node --config FILE`: the node's settings and its peers in one YAML
 * or JSON file, so a small mesh comes up with no orchestrator.
 *
 *   deployment: demo                 # required: part of the interface name
 *   instanceId: node1                # optional: default the data dir's random id
 *   clusterCidr: 10.200.0.0/16       # optional: default 10.200.0.0/16
 *   sliceCidr: 10.200.1.0/26         # optional: this node's slice (node IP = base + 1)
 *   wgPort: 51820                    # optional: default 51820
 *   hostAdapterMandatory: false      # optional
 *   nat: { enabled: true, stunServers: ["192.0.2.1:3478"] }   # optional NatConfigSpec
 *   dnsDomain: prod.internal         # optional: the resolver's zone; default <deployment>.internal
 *   peers:
 *     - publicKey: <base64>
 *       endpoint: 192.0.2.2:51820    # optional: default roaming
 *       allowedIps: [10.200.2.0/26]  # or "10.200.2.0/26,10.200.3.0/26"
 *       persistentKeepaliveSecs: 25
 *   membership:                      # optional: slices and peers from etcd (membership/config.ts)
 *     etcd: { endpoints: [http://10.0.0.5:2379], prefix: /tswg, leaseTtlSeconds: 30 }
 *
 * YAML is parsed with the `yaml` package (YAML 1.2 core schema; a JSON
 * document is valid YAML, so one parser reads both). Every field is checked
 * with the control API's schema, so errors read the same:
 *   node.yaml: peers[1].endpoint: invalid peer endpoint 1.2.3.4: …
 * Unknown fields and duplicate keys are refused.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_CLUSTER_CIDR, DEFAULT_WG_PORT } from './constants.js';
import { OverlayError } from './errors.js';
import { parseMembershipConfig, type MembershipConfig } from './membership/config.js';
import { peerSpecToInfo } from './peer-spec.js';
import {
  checkCidr,
  nameField,
  objectAt,
  optionalDnsDomainField,
  parseNatSpec,
  parsePeerSpec,
  ProtocolError,
  type AddPeerRequest,
  type NatConfigSpec,
  type PeerSpec,
  type SetupGlobalOverlayRequest,
} from './protocol.js';
import { errorMessage } from '../platform/index.js';

export interface NodeConfig {
  deployment: string;
  instanceId?: string;
  clusterCidr: string;
  sliceCidr?: string;
  wgPort?: number;
  nat?: NatConfigSpec;
  hostAdapterMandatory?: boolean;
  dnsDomain?: string;
  peers: PeerSpec[];
  /** Absent: static membership (this file and the control API). */
  membership?: MembershipConfig;
}

/** Check a parsed document; throws ProtocolError naming the field (no file name). */
function validateNodeConfig(document: unknown): NodeConfig {
  const reader = objectAt(document, '');
  const config: NodeConfig = {
    deployment: nameField(reader, 'deployment'),
    clusterCidr: DEFAULT_CLUSTER_CIDR,
    peers: [],
  };
  if (reader.raw('instanceId') !== undefined && reader.raw('instanceId') !== null) config.instanceId = nameField(reader, 'instanceId');
  const cluster = reader.optionalString('clusterCidr');
  if (cluster !== undefined) config.clusterCidr = checkCidr(cluster, 'clusterCidr');
  const slice = reader.optionalString('sliceCidr');
  if (slice !== undefined) config.sliceCidr = checkCidr(slice, 'sliceCidr');
  if (reader.raw('wgPort') !== undefined && reader.raw('wgPort') !== null) config.wgPort = reader.integer('wgPort', 0, 65_535);
  if (reader.raw('hostAdapterMandatory') !== undefined && reader.raw('hostAdapterMandatory') !== null) {
    config.hostAdapterMandatory = reader.boolean('hostAdapterMandatory');
  }
  const nat = reader.raw('nat');
  if (nat !== undefined && nat !== null) config.nat = parseNatSpec(nat, 'nat');
  const dnsDomain = optionalDnsDomainField(reader, 'dnsDomain');
  if (dnsDomain !== undefined) config.dnsDomain = dnsDomain;
  const peers = reader.raw('peers');
  if (peers !== undefined && peers !== null) {
    if (!Array.isArray(peers)) throw new ProtocolError(`peers: expected a list of peers, got ${typeof peers}`);
    config.peers = peers.map((peer, i) => {
      const spec = parsePeerSpec(peer, `peers[${i}]`);
      try {
        peerSpecToInfo(spec);
      } catch (error) {
        if (error instanceof OverlayError) throw new ProtocolError(`peers[${i}]: ${error.message}`);
        throw error;
      }
      return spec;
    });
    const seen = new Map<string, number>();
    config.peers.forEach((peer, i) => {
      const first = seen.get(peer.publicKey);
      if (first !== undefined) throw new ProtocolError(`peers[${i}].publicKey: the same key as peers[${first}]`);
      seen.set(peer.publicKey, i);
    });
  }
  const membership = reader.raw('membership');
  if (membership !== undefined && membership !== null) config.membership = parseMembershipConfig(membership, 'membership');
  reader.rejectUnknown();
  return config;
}

/** Parse a config document's text (YAML or JSON); `source` names it in errors. Throws OverlayError. */
export function parseNodeConfig(text: string, source: string): NodeConfig {
  let document: unknown;
  try {
    document = parseYaml(text, { prettyErrors: true, uniqueKeys: true, maxAliasCount: 100 });
  } catch (error) {
    // The parser's message quotes the file; a file that is not ours (a key, a password file) must not reach a log.
    throw new OverlayError(`${source}: not valid YAML or JSON: ${yamlErrorPlace(error)}`);
  }
  // Not a mapping at all: likely not a config file, so none of it is quoted back.
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new OverlayError(`${source}: expected a YAML mapping or JSON object at the top level, got ${Array.isArray(document) ? 'a list' : document === null ? 'nothing' : `a ${typeof document}`}`);
  }
  try {
    return validateNodeConfig(document);
  } catch (error) {
    if (error instanceof ProtocolError) throw new OverlayError(`${source}: ${error.message}`);
    throw error;
  }
}

/** A YAML parse error as its code and place ("BAD_INDENT at line 3, column 5"), without the file's text. */
function yamlErrorPlace(error: unknown): string {
  const { code, linePos } = (error ?? {}) as { code?: unknown; linePos?: Array<{ line: number; col: number }> };
  const place = linePos?.[0] === undefined ? '' : ` at line ${linePos[0].line}, column ${linePos[0].col}`;
  return `${typeof code === 'string' ? code : 'parse error'}${place}`;
}

/** Read and check `--config FILE`; throws OverlayError naming the file (and the field). */
export function loadNodeConfig(path: string): NodeConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new OverlayError(`cannot read config ${path}: ${errorMessage(error)}`);
  }
  return parseNodeConfig(text, path);
}

/** The SetupGlobalOverlay a config asks for; `defaultInstanceId` (the data dir's) when the file names none. */
export function setupRequestFromConfig(config: NodeConfig, defaultInstanceId: string): SetupGlobalOverlayRequest {
  const request: SetupGlobalOverlayRequest = {
    type: 'SetupGlobalOverlay',
    deployment: config.deployment,
    instanceId: config.instanceId ?? defaultInstanceId,
    clusterCidr: config.clusterCidr,
    wgPort: config.wgPort ?? DEFAULT_WG_PORT,
    hostAdapterMandatory: config.hostAdapterMandatory ?? false,
  };
  if (config.sliceCidr !== undefined) request.sliceCidr = config.sliceCidr;
  if (config.nat !== undefined) request.nat = config.nat;
  if (config.dnsDomain !== undefined) request.dnsDomain = config.dnsDomain;
  return request;
}

/** One global-scope AddPeer per configured peer, in file order. */
export function addPeerRequestsFromConfig(config: NodeConfig): AddPeerRequest[] {
  return config.peers.map((peer) => ({ type: 'AddPeer', peer, scope: 'global' }));
}
