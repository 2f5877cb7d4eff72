/**
 * Vitest global setup: before any test, remove the namespaces and links that
 * an earlier, killed run (SIGKILL, a CI timeout) left behind, so they neither
 * pile up nor get in the way of this run. Only names whose process is gone go.
 */
import { NAME_PREFIX } from '../../scripts/lib/netns.js';
import { reapLeftovers } from '../../scripts/lib/reap-leftovers.js';

export default function setup(): void {
  // Without root no test made any, and none could be removed.
  if (process.getuid?.() !== 0) return;
  reapLeftovers(NAME_PREFIX);
}
