/**
 * The node's record of attached containers (`<data-dir>/attachments.json`,
 * atomic writes, mode 0600). A record is written in state "attaching"
 * before the kernel is touched and turns "attached" when every step is
 * done, so after a crash at any point the next start knows which links and
 * addresses were (or may have been) made and can remove or adopt them.
 * No keys are stored: a guest keeps its own private key.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { ATTACHMENTS_FILE_NAME, STATE_FILE_MODE } from '../constants.js';
import { OverlayError } from '../errors.js';
import type { AttachHandle } from '../protocol.js';
import { readJsonFile } from '../state-store.js';

export interface AttachmentRecord {
  /** "pid:<n>", "guest:<id>" or "host:<id>": one record per handle. */
  key: string;
  handle: AttachHandle;
  service: string;
  ip: string;
  /** Which pool `ip` came from: the service's bridge, or the node slice. */
  ipPool: 'service' | 'slice';
  globalIp: string | null;
  ephemeral: boolean;
  isolationNetwork: string | null;
  dnsServer: string | null;
  dnsDomain: string | null;
  state: 'attaching' | 'attached';
  /** A guest's public key and the device its peer was added to ("global" or the dedicated service). */
  guestPublicKey?: string;
  guestScope?: string;
}

interface AttachmentsDocument {
  version: 1;
  attachments: AttachmentRecord[];
}

export function handleKey(handle: AttachHandle): string {
  if ('linuxPid' in handle) return `pid:${handle.linuxPid}`;
  if ('guestManaged' in handle) return `guest:${handle.guestManaged}`;
  return `host:${handle.hostShared}`;
}

function validate(value: unknown, path: string): AttachmentRecord[] {
  const bad = (what: string): never => {
    throw new OverlayError(`${path} is corrupt: ${what}; move it away (attached containers are then swept by name)`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad('not a JSON object');
  const doc = value as Record<string, unknown>;
  if (doc.version !== 1 || !Array.isArray(doc.attachments)) bad('not a version 1 attachment list');
  for (const [i, entry] of (doc.attachments as unknown[]).entries()) {
    const r = entry as Record<string, unknown>;
    if (typeof r !== 'object' || r === null || typeof r.key !== 'string' || typeof r.service !== 'string' || typeof r.ip !== 'string') bad(`attachments[${i}] is incomplete`);
    if (typeof r.handle !== 'object' || r.handle === null) bad(`attachments[${i}].handle is not an object`);
    if (r.state !== 'attaching' && r.state !== 'attached') bad(`attachments[${i}].state is not attaching or attached`);
  }
  return doc.attachments as AttachmentRecord[];
}

export class AttachmentStore {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, ATTACHMENTS_FILE_NAME);
  }

  load(): AttachmentRecord[] {
    const saved = readJsonFile<unknown>(this.path);
    return saved === null ? [] : validate(saved, this.path);
  }

  save(records: Iterable<AttachmentRecord>): void {
    const doc: AttachmentsDocument = { version: 1, attachments: [...records] };
    writeFileAtomic(this.path, `${JSON.stringify(doc, null, 2)}\n`, STATE_FILE_MODE);
  }
}
