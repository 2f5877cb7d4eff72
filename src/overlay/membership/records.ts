/**
 * The keys and records the etcd backend keeps under <prefix>/<deployment>/:
 *
 *   config          {clusterCidr, sliceLength, version}     written once, by the first node
 *   slices/<cidr>   {nodeId, publicKey, version}            the slice's owner (long allocation lease)
 *   nodes/<nodeId>  {publicKey, slice, endpoint, candidates, serviceSubnets, isolation, version}   (presence lease)
 *
 * `isolation` maps each isolation network with members on that node to
 * their addresses; the other nodes' firewalls fence them too.
 *
 * Records are JSON. Parsing is strict about what the overlay relies on (a
 * 32-byte key, CIDRs, an endpoint) and lenient about the rest (unknown fields
 * are ignored, so a newer node's record still reads); a bad record throws
 * RecordError naming its key, and the caller ignores it.
 */
import { AddressError, formatCidr, parseCidr, parseEndpoint, type Cidr } from '../../device/index.js';
import { decodeKey } from '../../noise/index.js';
import { MAX_ADVERTISED_CANDIDATES, MEMBERSHIP_RECORD_VERSION } from '../constants.js';
import { parseIsolationNetworks, ProtocolError, type CandidateWire } from '../protocol.js';
import { errorMessage } from '../../platform/index.js';

/** Isolation network → member addresses on one node. */
export type IsolationMembers = Record<string, string[]>;

export class RecordError extends Error {
  override readonly name = 'RecordError';
}

/** Where everything of one deployment lives. */
export class KeyLayout {
  /** "<prefix>/<deployment>/" */
  readonly root: string;
  readonly config: string;
  readonly slices: string;
  readonly nodes: string;

  constructor(prefix: string, deployment: string) {
    this.root = `${prefix.replace(/\/+$/, '')}/${deployment}/`;
    this.config = `${this.root}config`;
    this.slices = `${this.root}slices/`;
    this.nodes = `${this.root}nodes/`;
  }

  sliceKey(cidr: string): string {
    return `${this.slices}${cidr}`;
  }

  nodeKey(nodeId: string): string {
    return `${this.nodes}${nodeId}`;
  }
}

export interface ClusterRecord {
  clusterCidr: string;
  sliceLength: number;
}

export interface SliceRecord {
  nodeId: string;
  publicKey: string;
}

export interface NodeRecord {
  publicKey: string;
  /** Canonical CIDR text. */
  slice: string;
  /** null: roaming. */
  endpoint: string | null;
  candidates: CandidateWire[];
  /** Canonical CIDR texts. */
  serviceSubnets: string[];
  isolation: IsolationMembers;
  version: number;
}

// ---- encoding (stable field order: equal records are equal strings) --------------

export function encodeClusterRecord(record: ClusterRecord): string {
  return JSON.stringify({ clusterCidr: record.clusterCidr, sliceLength: record.sliceLength, version: MEMBERSHIP_RECORD_VERSION });
}

export function encodeSliceRecord(record: SliceRecord): string {
  return JSON.stringify({ nodeId: record.nodeId, publicKey: record.publicKey, version: MEMBERSHIP_RECORD_VERSION });
}

export function encodeNodeRecord(record: Omit<NodeRecord, 'version' | 'isolation'> & { isolation?: IsolationMembers }): string {
  return JSON.stringify({
    publicKey: record.publicKey,
    slice: record.slice,
    endpoint: record.endpoint,
    candidates: record.candidates.slice(0, MAX_ADVERTISED_CANDIDATES),
    serviceSubnets: record.serviceSubnets,
    isolation: record.isolation ?? {},
    version: MEMBERSHIP_RECORD_VERSION,
  });
}

// ---- parsing ---------------------------------------------------------------------

function objectOf(text: string, key: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new RecordError(`${key}: not JSON: ${JSON.stringify(text.slice(0, 80))}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RecordError(`${key}: expected a JSON object`);
  return value as Record<string, unknown>;
}

function stringField(object: Record<string, unknown>, field: string, key: string): string {
  const value = object[field];
  if (typeof value !== 'string' || value === '') throw new RecordError(`${key}: ${field}: expected a non-empty string`);
  return value;
}

/** Canonical text of a CIDR with an explicit prefix length; RecordError otherwise. */
function canonicalCidr(text: unknown, where: string): string {
  if (typeof text !== 'string' || !text.includes('/')) throw new RecordError(`${where}: expected a CIDR like 10.200.1.0/26, got ${JSON.stringify(text)}`);
  try {
    return formatCidr(parseCidr(text));
  } catch (error) {
    if (error instanceof AddressError) throw new RecordError(`${where}: ${error.message}`);
    throw error;
  }
}

function checkPublicKey(text: unknown, where: string): string {
  if (typeof text !== 'string') throw new RecordError(`${where}: expected a base64 public key`);
  try {
    decodeKey(text);
  } catch {
    throw new RecordError(`${where}: ${JSON.stringify(text.slice(0, 60))} is not a 32-byte base64 WireGuard key`);
  }
  return text;
}

export function parseClusterRecord(text: string, key: string): ClusterRecord {
  const object = objectOf(text, key);
  const clusterCidr = canonicalCidr(object.clusterCidr, `${key}: clusterCidr`);
  const sliceLength = object.sliceLength;
  if (typeof sliceLength !== 'number' || !Number.isInteger(sliceLength)) throw new RecordError(`${key}: sliceLength: expected an integer`);
  return { clusterCidr, sliceLength };
}

export function parseSliceRecord(text: string, key: string): SliceRecord {
  const object = objectOf(text, key);
  return { nodeId: stringField(object, 'nodeId', key), publicKey: checkPublicKey(object.publicKey, `${key}: publicKey`) };
}

export function parseNodeRecord(text: string, key: string): NodeRecord {
  const object = objectOf(text, key);
  const publicKey = checkPublicKey(object.publicKey, `${key}: publicKey`);
  const slice = canonicalCidr(object.slice, `${key}: slice`);
  let endpoint: string | null = null;
  if (object.endpoint !== null && object.endpoint !== undefined) {
    if (typeof object.endpoint !== 'string') throw new RecordError(`${key}: endpoint: expected "ip:port" or null`);
    try {
      parseEndpoint(object.endpoint);
    } catch (error) {
      throw new RecordError(`${key}: endpoint: ${errorMessage(error)}`);
    }
    endpoint = object.endpoint;
  }
  const candidates = object.candidates ?? [];
  if (!Array.isArray(candidates)) throw new RecordError(`${key}: candidates: expected a list`);
  const subnets = object.serviceSubnets ?? [];
  if (!Array.isArray(subnets)) throw new RecordError(`${key}: serviceSubnets: expected a list of CIDRs`);
  const version = typeof object.version === 'number' ? object.version : 0;
  let isolation: IsolationMembers = {};
  if (object.isolation !== undefined && object.isolation !== null) {
    try {
      isolation = parseIsolationNetworks(object.isolation, `${key}: isolation`);
    } catch (error) {
      if (error instanceof ProtocolError) throw new RecordError(error.message);
      throw error;
    }
  }
  return {
    publicKey,
    slice,
    endpoint,
    // Checked when they become an AddPeer (the NAT module drops bad entries itself).
    candidates: (candidates as CandidateWire[]).slice(0, MAX_ADVERTISED_CANDIDATES),
    serviceSubnets: subnets.map((subnet, i) => canonicalCidr(subnet, `${key}: serviceSubnets[${i}]`)),
    isolation,
    version,
  };
}

// ---- CIDR arithmetic ---------------------------------------------------------------

function toBigInt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

/** Whether `inner` lies entirely inside `outer`. */
export function cidrInside(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.prefixLength < outer.prefixLength) return false;
  const bits = outer.bytes.length * 8;
  const shift = BigInt(bits - outer.prefixLength);
  return toBigInt(outer.bytes) >> shift === toBigInt(inner.bytes) >> shift;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrInside(a, b) || cidrInside(b, a);
}

/**
 * The slices of length `sliceLength` inside `cluster`, in address order
 * (lazily: an IPv6 cluster has more than anyone could list).
 */
export function* slicesOf(cluster: Cidr, sliceLength: number): Generator<string> {
  const bits = cluster.bytes.length * 8;
  const count = 1n << BigInt(sliceLength - cluster.prefixLength);
  const step = 1n << BigInt(bits - sliceLength);
  const base = toBigInt(cluster.bytes);
  for (let i = 0n; i < count; i++) {
    let value = base + i * step;
    const bytes = new Uint8Array(cluster.bytes.length);
    for (let j = bytes.length - 1; j >= 0; j--) {
      bytes[j] = Number(value & 0xffn);
      value >>= 8n;
    }
    yield formatCidr({ family: cluster.family, bytes, prefixLength: sliceLength });
  }
}
