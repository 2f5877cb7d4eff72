/**
 * The node's state in its data directory: identity (keys, instance id),
 * the global overlay's settings and the IP assignments, so a restarted node
 * keeps its key, interface name and IP.
 *
 * Writes are atomic: the JSON goes to a temporary file in the same
 * directory (mode 0600, it holds the private key), is fsynced, renamed over
 * the real file, and the directory is fsynced so the rename itself survives
 * a crash. A crash at any point leaves either the old file or the new one;
 * a temporary file left behind is never read.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { encodeKey, generatePrivateKey, publicKeyOf, decodeKey } from '../noise/index.js';
import { DATA_DIR_MODE, INSTANCE_ID_BYTES, STATE_FILE_MODE, STATE_FILE_NAME, STATE_VERSION } from './constants.js';
import { errorMessage, makeDirectory } from '../platform/index.js';
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

export { TEMP_FILE_PREFIX } from './atomic-file.js';

/** Write `value` as JSON to `path` atomically, mode 0600 (see atomic-file.ts: a full disk never truncates the old file). */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, STATE_FILE_MODE);
}

/** The parsed JSON of `path`; null when it does not exist; OverlayError naming the file when it cannot be read or is not JSON. */
export function readJsonFile<T>(path: string): T | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new OverlayError(`cannot read ${path}: ${errorMessage(error)}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    // JSON.parse's message quotes the file; a foreign file's bytes never reach a log or a client.
    throw new OverlayError(`${path} is corrupt (${jsonErrorPlace(text, error)}); move it away to start with a fresh identity`);
  }
}

/** Where JSON.parse gave up, as "not valid JSON at byte N" (no content of the file). */
function jsonErrorPlace(text: string, error: unknown): string {
  const position = /at position (\d+)/.exec(errorMessage(error));
  if (position !== null) return `not valid JSON at byte ${Buffer.byteLength(text.slice(0, Number(position[1])), 'utf8')}`;
  if (/end of JSON input/i.test(errorMessage(error))) return `not valid JSON: it ends early, at byte ${Buffer.byteLength(text, 'utf8')}`;
  return 'not valid JSON';
}

/** A fresh identity: new keys and a random instance id. */
function newNodeState(): NodeState {
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
function validateNodeState(value: unknown, path: string): NodeState {
  const bad = (what: string): never => {
    throw new OverlayError(`${path} is corrupt: ${what}; move it away to start with a fresh identity`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad('not a JSON object');
  const state = value as Record<string, unknown>;
  // Values from the file are never quoted back (it may not be ours): only which field is wrong.
  if (state.version !== STATE_VERSION) bad(`unsupported version (expected ${STATE_VERSION})`);
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
  Object.values(assignments as Record<string, unknown>).forEach((service, i) => {
    if (typeof service !== 'string') bad(`assignment #${i + 1} is not a string`);
  });
  // The public key is always re-derived: a hand-edited file cannot make the two disagree.
  return { ...(state as unknown as NodeState), publicKey: encodeKey(publicKeyOf(privateKey)), assignments: { ...(assignments as Record<string, string>) } };
}

/**
 * Refuse a data directory that others could tamper with: a symbolic link
 * (it can be re-pointed), something that is not a directory, or one that is
 * group- or world-writable (others could swap the state file). A missing one
 * is fine (save creates it, 0700).
 */
export function checkDataDir(dataDir: string): void {
  let stats;
  try {
    stats = lstatSync(dataDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new OverlayError(`cannot use data directory ${dataDir}: ${errorMessage(error)}`);
  }
  if (stats.isSymbolicLink()) throw new OverlayError(`data directory ${dataDir} is a symbolic link; give the real directory`);
  if (!stats.isDirectory()) throw new OverlayError(`data directory ${dataDir} is not a directory`);
  if ((stats.mode & 0o022) !== 0) {
    const mode = (stats.mode & 0o777).toString(8).padStart(4, '0');
    throw new OverlayError(`data directory ${dataDir} is group- or world-writable (mode ${mode}); chmod 700 it (it holds the node's private key)`);
  }
}

export class StateStore {
  /** The state file: <dataDir>/node-state.json. */
  readonly path: string;

  constructor(readonly dataDir: string) {
    this.path = join(dataDir, STATE_FILE_NAME);
  }

  /** The saved state; on first run (no file) a fresh identity is created and saved. Corrupt file or unsafe directory → OverlayError. */
  load(): NodeState {
    checkDataDir(this.dataDir);
    const saved = readJsonFile<unknown>(this.path);
    if (saved !== null) return validateNodeState(saved, this.path);
    const state = newNodeState();
    this.save(state);
    return state;
  }

  /** Write the state; throws OverlayError (and keeps the previous file) when it cannot. */
  save(state: NodeState): void {
    checkDataDir(this.dataDir);
    try {
      makeDirectory(this.dataDir, DATA_DIR_MODE);
    } catch (error) {
      throw new OverlayError(`cannot create data directory ${this.dataDir}: ${errorMessage(error)}`);
    }
    writeJsonAtomic(this.path, state);
  }
}
