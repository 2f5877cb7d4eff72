/**
 * The `membership` section of the node's config file:
 *
 *   membership:
 *     etcd:
 *       endpoints: [http://10.0.0.5:2379, http://10.0.0.6:2379]   # required, http:// or https://
 *       prefix: /tswg              # optional: keys live under <prefix>/<deployment>/
 *       leaseTtlSeconds: 30        # optional: presence lease; a dead node is removed after about this long
 *       sliceLength: 26            # optional: prefix length of the slices handed out (first node's value wins)
 *       username: node             # optional: etcd auth (then password too)
 *       password: secret
 *       advertiseEndpoint: 192.0.2.7:51820   # optional: default the address that reaches etcd, at wgPort
 *       tls:                       # optional, https:// endpoints only: PEM file paths
 *         ca: /etc/tswg/etcd-ca.pem        # the CA that signed etcd's certificate (default: the system's)
 *         cert: /etc/tswg/node.pem         # a client certificate, for etcd's --client-cert-auth (with key)
 *         key: /etc/tswg/node-key.pem
 *
 * Errors name the field, like the rest of the file ("membership.etcd.endpoints[1]: …").
 */
import { readFileSync } from 'node:fs';
import { parseEndpoint } from '../../device/index.js';
import { DEFAULT_ETCD_PREFIX, DEFAULT_PRESENCE_LEASE_TTL_SECS, DEFAULT_SLICE_PREFIX_LEN, MIN_PRESENCE_LEASE_TTL_SECS } from '../constants.js';
import { OverlayError } from '../errors.js';
import { objectAt, ProtocolError } from '../protocol.js';
import type { EtcdTlsMaterial } from './etcd-transport.js';

/** PEM file paths, read when the node starts (readEtcdTls). */
export interface EtcdTlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

export interface EtcdMembershipConfig {
  endpoints: string[];
  prefix: string;
  leaseTtlSeconds: number;
  sliceLength: number;
  username?: string;
  password?: string;
  advertiseEndpoint?: string;
  tls?: EtcdTlsFiles;
}

export interface MembershipConfig {
  etcd: EtcdMembershipConfig;
}

/** The longest presence TTL accepted: a day (longer means dead nodes linger for days). */
const MAX_PRESENCE_LEASE_TTL_SECS = 86_400;

export function parseMembershipConfig(value: unknown, path: string): MembershipConfig {
  const reader = objectAt(value, path);
  const etcdValue = reader.raw('etcd');
  reader.rejectUnknown();
  if (etcdValue === undefined || etcdValue === null) throw new ProtocolError(`${reader.fieldPath('etcd')}: required (the only membership backend besides the default static one)`);
  const etcd = objectAt(etcdValue, reader.fieldPath('etcd'));

  const endpointsPath = etcd.fieldPath('endpoints');
  const rawEndpoints = etcd.raw('endpoints');
  if (!Array.isArray(rawEndpoints) || rawEndpoints.length === 0) throw new ProtocolError(`${endpointsPath}: expected a non-empty list of URLs like http://10.0.0.5:2379`);
  const endpoints = rawEndpoints.map((entry, i) => checkEndpointUrl(entry, `${endpointsPath}[${i}]`));

  const prefix = etcd.optionalString('prefix', { nonEmpty: true }) ?? DEFAULT_ETCD_PREFIX;
  if (!prefix.startsWith('/')) throw new ProtocolError(`${etcd.fieldPath('prefix')}: expected a key prefix starting with "/", got ${JSON.stringify(prefix)}`);
  const config: EtcdMembershipConfig = {
    endpoints,
    prefix,
    leaseTtlSeconds: etcd.integer('leaseTtlSeconds', MIN_PRESENCE_LEASE_TTL_SECS, MAX_PRESENCE_LEASE_TTL_SECS, DEFAULT_PRESENCE_LEASE_TTL_SECS),
    sliceLength: etcd.integer('sliceLength', 1, 127, DEFAULT_SLICE_PREFIX_LEN),
  };
  const username = etcd.optionalString('username', { nonEmpty: true });
  const password = etcd.optionalString('password');
  if (password !== undefined && username === undefined) throw new ProtocolError(`${etcd.fieldPath('password')}: given without ${etcd.fieldPath('username')}`);
  if (username !== undefined) config.username = username;
  if (password !== undefined) config.password = password;
  const advertise = etcd.optionalString('advertiseEndpoint', { nonEmpty: true });
  if (advertise !== undefined) {
    try {
      parseEndpoint(advertise);
    } catch (error) {
      throw new ProtocolError(`${etcd.fieldPath('advertiseEndpoint')}: ${(error as Error).message}`);
    }
    config.advertiseEndpoint = advertise;
  }
  const tls = etcd.raw('tls');
  if (tls !== undefined && tls !== null) {
    config.tls = parseTlsFiles(tls, etcd.fieldPath('tls'));
    const plain = endpoints.findIndex((url) => url.startsWith('http:'));
    if (plain >= 0) throw new ProtocolError(`${etcd.fieldPath('tls')}: given, but ${endpointsPath}[${plain}] is ${endpoints[plain]}: use https:// endpoints with tls`);
  }
  etcd.rejectUnknown();
  return { etcd: config };
}

function parseTlsFiles(value: unknown, path: string): EtcdTlsFiles {
  const reader = objectAt(value, path);
  const files: EtcdTlsFiles = {};
  for (const field of ['ca', 'cert', 'key'] as const) {
    const file = reader.optionalString(field, { nonEmpty: true });
    if (file !== undefined) files[field] = file;
  }
  reader.rejectUnknown();
  if ((files.cert === undefined) !== (files.key === undefined)) {
    throw new ProtocolError(`${path}: ${files.cert === undefined ? 'key' : 'cert'} given without ${files.cert === undefined ? 'cert' : 'key'} (a client certificate needs both)`);
  }
  if (files.ca === undefined && files.cert === undefined) throw new ProtocolError(`${path}: expected ca, or cert and key, or all three`);
  return files;
}

/** Read the PEM files `tls` names; an OverlayError naming the field and file when one cannot be read. */
export function readEtcdTls(tls: EtcdTlsFiles): EtcdTlsMaterial {
  const material: EtcdTlsMaterial = {};
  for (const field of ['ca', 'cert', 'key'] as const) {
    const file = tls[field];
    if (file === undefined) continue;
    try {
      material[field] = readFileSync(file);
    } catch (error) {
      throw new OverlayError(`membership.etcd.tls.${field}: cannot read ${file}: ${(error as Error).message}`);
    }
  }
  return material;
}

function checkEndpointUrl(value: unknown, path: string): string {
  if (typeof value !== 'string') throw new ProtocolError(`${path}: expected a URL like http://10.0.0.5:2379, got ${JSON.stringify(value)}`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ProtocolError(`${path}: ${JSON.stringify(value)} is not a URL (like http://10.0.0.5:2379)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ProtocolError(`${path}: ${JSON.stringify(value)}: expected http:// or https://`);
  if (url.pathname !== '/' || url.search !== '' || url.username !== '') throw new ProtocolError(`${path}: ${JSON.stringify(value)}: expected scheme://host:port only (credentials go in username/password)`);
  return `${url.protocol}//${url.host}`;
}
