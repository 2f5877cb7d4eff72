/**
 * What the node remembers about its service overlays and its runtime-added
 * peers across restarts (`<data-dir>/services.json`, atomic writes, mode
 * 0600): each service's mode and subnet, a dedicated service's interface,
 * port and public key (its private key is in its own key file), the
 * addresses AllocateIp handed out of a service's pool. The next
 * SetupGlobalOverlay rebuilds the overlays from it.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { SERVICES_FILE_NAME, STATE_FILE_MODE } from '../constants.js';
import { OverlayError } from '../errors.js';
import { OVERLAY_MODES, type OverlayMode } from '../protocol.js';
import { readJsonFile } from '../state-store.js';

export interface SavedDedicated {
  interfaceName: string;
  port: number;
  publicKey: string;
  overlayIp: string;
}

export interface SavedService {
  name: string;
  mode: OverlayMode;
  subnet: string;
  /** The registry key the subnet was assigned under. */
  nodeKey: string;
  dedicated?: SavedDedicated;
  /** Addresses AllocateIp handed out of this service's pool. */
  allocated: string[];
}

export interface ServicesDocument {
  version: 1;
  services: SavedService[];
}

function emptyServicesDocument(): ServicesDocument {
  return { version: 1, services: [] };
}

function validate(value: unknown, path: string): ServicesDocument {
  const bad = (what: string): never => {
    throw new OverlayError(`${path} is corrupt: ${what}; move it away (service overlays are then set up afresh)`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad('not a JSON object');
  const doc = value as Record<string, unknown>;
  if (doc.version !== 1) bad(`unsupported version ${JSON.stringify(doc.version)}`);
  if (!Array.isArray(doc.services)) bad('services is not an array');
  for (const [i, entry] of (doc.services as unknown[]).entries()) {
    const s = entry as Record<string, unknown>;
    if (typeof s !== 'object' || s === null) bad(`services[${i}] is not an object`);
    if (typeof s.name !== 'string' || typeof s.subnet !== 'string' || typeof s.nodeKey !== 'string') bad(`services[${i}] lacks name, subnet or nodeKey`);
    if (!OVERLAY_MODES.includes(s.mode as OverlayMode)) bad(`services[${i}].mode is not a mode`);
    if (!Array.isArray(s.allocated) || !(s.allocated as unknown[]).every((ip) => typeof ip === 'string')) bad(`services[${i}].allocated is not a list of addresses`);
    const d = s.dedicated as Record<string, unknown> | undefined;
    if (d !== undefined && (typeof d.interfaceName !== 'string' || typeof d.port !== 'number' || typeof d.publicKey !== 'string' || typeof d.overlayIp !== 'string')) {
      bad(`services[${i}].dedicated is incomplete`);
    }
  }
  return value as ServicesDocument;
}

export class ServiceStore {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, SERVICES_FILE_NAME);
  }

  load(): ServicesDocument {
    const saved = readJsonFile<unknown>(this.path);
    return saved === null ? emptyServicesDocument() : validate(saved, this.path);
  }

  save(doc: ServicesDocument): void {
    writeFileAtomic(this.path, `${JSON.stringify(doc, null, 2)}\n`, STATE_FILE_MODE);
  }
}
