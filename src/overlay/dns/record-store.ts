/**
 * Registered names survive a restart: `<data-dir>/dns-records.json` (atomic
 * writes, mode 0600) holds each domain's names and addresses, so a node set
 * up again under another domain keeps the first domain's records for later.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { DNS_RECORDS_FILE_NAME, DNS_RECORDS_VERSION, STATE_FILE_MODE } from '../constants.js';
import { OverlayError } from '../errors.js';
import { readJsonFile } from '../state-store.js';

/** Full name → addresses. */
export type ZoneEntries = Record<string, string[]>;

interface RecordsDocument {
  version: typeof DNS_RECORDS_VERSION;
  /** Domain → its names. */
  zones: Record<string, ZoneEntries>;
}

function isEntries(value: unknown): value is ZoneEntries {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  return Object.values(value).every((addresses) => Array.isArray(addresses) && addresses.every((a) => typeof a === 'string'));
}

export class DnsRecordStore {
  readonly path: string;
  private zones: Record<string, ZoneEntries> | null = null;

  constructor(dataDir: string) {
    this.path = join(dataDir, DNS_RECORDS_FILE_NAME);
  }

  /** The names saved for `domain` (none when the file is missing); OverlayError naming the file when it is corrupt. */
  load(domain: string): ZoneEntries {
    return { ...(this.all()[domain] ?? {}) };
  }

  /** Replace `domain`'s names (the other domains' are kept). */
  save(domain: string, entries: ZoneEntries): void {
    const zones = { ...this.all() };
    if (Object.keys(entries).length === 0) delete zones[domain];
    else zones[domain] = entries;
    const doc: RecordsDocument = { version: DNS_RECORDS_VERSION, zones };
    writeFileAtomic(this.path, `${JSON.stringify(doc, null, 2)}\n`, STATE_FILE_MODE);
    this.zones = zones;
  }

  private all(): Record<string, ZoneEntries> {
    if (this.zones !== null) return this.zones;
    const saved = readJsonFile<unknown>(this.path);
    if (saved === null) return (this.zones = {});
    const doc = saved as Partial<RecordsDocument>;
    if (typeof doc !== 'object' || doc === null || doc.version !== DNS_RECORDS_VERSION || typeof doc.zones !== 'object' || doc.zones === null) {
      throw new OverlayError(`${this.path} is corrupt: not a version ${DNS_RECORDS_VERSION} records file; move it away to start with no names`);
    }
    for (const [domain, entries] of Object.entries(doc.zones)) {
      if (!isEntries(entries)) throw new OverlayError(`${this.path} is corrupt: zones[${JSON.stringify(domain)}] is not a map of names to address lists`);
    }
    return (this.zones = doc.zones);
  }
}
