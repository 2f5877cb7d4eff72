/**
 * Keeping the rules true. After each apply every backend's rules are read
 * back (a snapshot, no counters); a reconcile reads them again and, where
 * they differ (another tool flushed a table, deleted a chain, put a rule
 * ahead of our jump, a new foreign table appeared), applies the plan again
 * and counts one repair. Apply replaces rather than adds, so a repair never
 * duplicates a rule, and a reconcile with nothing changed changes nothing.
 * Each repair is logged once, naming the backend; a reconcile that keeps
 * failing logs its error once until it changes.
 */
import type { Logger } from '../../device/index.js';
import type { FirewallBackend } from './firewall.js';
import type { RulePlan } from './rules.js';

export class Reconciler {
  private readonly snapshots = new Map<FirewallBackend, string>();
  repairs = 0;
  /** Unix seconds of the last reconcile (0: none yet). */
  lastReconcile = 0;
  private lastError: string | null = null;

  constructor(private readonly log: Logger) {}

  /** Apply `plan` to every backend in order and remember what each holds afterwards. */
  async applyAll(backends: readonly FirewallBackend[], plan: RulePlan): Promise<void> {
    for (const backend of backends) await backend.apply(plan);
    for (const backend of backends) this.snapshots.set(backend, await backend.snapshot());
  }

  /** Re-apply to each backend whose rules drifted; returns the backends repaired. */
  async reconcile(backends: readonly FirewallBackend[], plan: RulePlan): Promise<string[]> {
    const repaired: string[] = [];
    try {
      for (const backend of backends) {
        const now = await backend.snapshot();
        if (now === this.snapshots.get(backend)) continue;
        await backend.apply(plan);
        this.snapshots.set(backend, await backend.snapshot());
        this.repairs++;
        repaired.push(backend.name);
      }
      if (repaired.length > 0) this.log.error(`firewall: rules changed by another tool were put back (${repaired.join(', ')})`);
      this.lastError = null;
    } catch (error) {
      const message = (error as Error).message;
      if (message !== this.lastError) this.log.error(`firewall: reconcile failed: ${message}`);
      this.lastError = message;
    }
    this.lastReconcile = Math.floor(Date.now() / 1000);
    return repaired;
  }

  forget(): void {
    this.snapshots.clear();
  }
}
