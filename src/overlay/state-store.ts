/**
 * The node's state in its data directory: identity (keys, instance id),
 * the global overlay's settings and the IP assignments, so a restarted node
 * keeps its key, interface name and IP (issue 7).
 *
 * Writes are atomic: the JSON goes to a temporary file in the same
 * directory (mode 0600, it holds the private key), is fsynced, renamed over
 * the real file, and the directory is fsynced so the rename itself survives
 * a crash. A crash at any point leaves either the old file or the new one;
 * a temporary file left behind is never read.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { encodeKey, generatePrivateKey, publicKeyOf, decodeKey } from '../noise/keys.js';
import { INSTANCE_ID_BYTES, STATE_FILE_MODE, STATE_FILE_NAME, STATE_VERSION } from './constants.js';
import { OverlayError } from './errors.js';

export interface NodeState {
  version: 1;
  /** Base64 private key of the global device. */
  privateKey: string;
  /** Base64 public key (derived from privateKey; stored for people reading the file). */
  publicKey: string;
  /** Stable per-host id: keeps the zl-{deployment}-{instanceId}-g name across restarts. */
  instanceId: string;
  deployment?: string;
  interfaceName?: string;
  wgPort?: number;
  clusterCidr?: string;
  sliceCidr?: string;
  nodeIp?: string;
  /** ip → service it was allocated to. */
  assignments: Record<string, string>;
  localNodeId?: number;
}

/** Prefix of temporary files; what readJsonFile never reads and writeJsonAtomic may leave after a crash. */
export const TEMP_FILE_PREFIX = '.tmp-';

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Write `value` as JSON to `path` atomically (temp file + fsync + rename + directory fsync), mode 0600. */
export function writeJsonAtomic(path: string, value: unknown): void {
  const directory = dirname(path);
  const temp = join(directory, `${TEMP_FILE_PREFIX}${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  const text = `${JSON.stringify(value, null, 2)}\n`;
  try {
    const fd = openSync(temp, 'wx', STATE_FILE_MODE);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw new OverlayError(`cannot write ${path}: ${errorText(error)}`);
  }
  // The rename is durable only once the directory entry is on disk.
  try {
    const dirFd = openSync(directory, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the data file itself is synced.
  }
}

/** The parsed JSON of `path`; null when it does not exist; OverlayError naming the file when it cannot be read or is not JSON. */
export function readJsonFile<T>(path: string): T | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new OverlayError(`cannot read ${path}: ${errorText(error)}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new OverlayError(`${path} is corrupt (not valid JSON: ${errorText(error)}); move it away to start with a fresh identity`);
  }
}

/** A fresh identity: new keys and a random instance id. */
export function newNodeState(): NodeState {
  const privateKey = generatePrivateKey();
  return {
    version: STATE_VERSION,
    privateKey: encodeKey(privateKey),
    publicKey: encodeKey(publicKeyOf(privateKey)),
    instanceId: randomBytes(INSTANCE_ID_BYTES).toString('hex'),
    assignments: {},
  };
}

const OPTIONAL_STRINGS = ['deployment', 'interfaceName', 'clusterCidr', 'sliceCidr', 'nodeIp'] as const;
const OPTIONAL_NUMBERS = ['wgPort', 'localNodeId'] as const;

/** Check a parsed state file; throws OverlayError naming the file and the field. */
export function validateNodeState(value: unknown, path: string): NodeState {
  const bad = (what: string): never => {
    throw new OverlayError(`${path} is corrupt: ${what}; move it away to start with a fresh identity`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad('not a JSON object');
  const state = value as Record<string, unknown>;
  if (state.version !== STATE_VERSION) bad(`unsupported version ${JSON.stringify(state.version)} (expected ${STATE_VERSION})`);
  if (typeof state.privateKey !== 'string') bad('privateKey is missing');
  let privateKey: Uint8Array;
  try {
    privateKey = decodeKey(state.privateKey as string, 'privateKey');
  } catch {
    return bad('privateKey is not a base64 WireGuard key');
  }
  if (typeof state.instanceId !== 'string' || state.instanceId === '') bad('instanceId is missing');
  for (const field of OPTIONAL_STRINGS) {
    if (state[field] !== undefined && typeof state[field] !== 'string') bad(`${field} is not a string`);
  }
  for (const field of OPTIONAL_NUMBERS) {
    if (state[field] !== undefined && (typeof state[field] !== 'number' || !Number.isSafeInteger(state[field]))) bad(`${field} is not an integer`);
  }
  const assignments = state.assignments ?? {};
  if (typeof assignments !== 'object' || assignments === null || Array.isArray(assignments)) bad('assignments is not an object');
  for (const [ip, service] of Object.entries(assignments as Record<string, unknown>)) {
    if (typeof service !== 'string') bad(`assignments[${JSON.stringify(ip)}] is not a string`);
  }
  // The public key is always re-derived: a hand-edited file cannot make the two disagree.
  return { ...(state as unknown as NodeState), publicKey: encodeKey(publicKeyOf(privateKey)), assignments: { ...(assignments as Record<string, string>) } };
}

export class StateStore {
  /** The state file: <dataDir>/node-state.json. */
  readonly path: string;

  constructor(readonly dataDir: string) {
    this.path = join(dataDir, STATE_FILE_NAME);
  }

  /** The saved state; on first run (no file) a fresh identity is created and saved. Corrupt file → OverlayError. */
  load(): NodeState {
    const saved = readJsonFile<unknown>(this.path);
    if (saved !== null) return validateNodeState(saved, this.path);
    const state = newNodeState();
    this.save(state);
    return state;
  }

  save(state: NodeState): void {
    try {
      mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new OverlayError(`cannot create data directory ${this.dataDir}: ${errorText(error)}`);
    }
    writeJsonAtomic(this.path, state);
  }
}
