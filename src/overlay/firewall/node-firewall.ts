/**
 * The node's firewall, as the engine sees it: start (after global setup),
 * update (isolation members came or went), reconcile (timer, NAT tick),
 * stop (teardown, Shutdown, exit) and a status view.
 *
 * Start: the backend is detected once; leftovers of a crashed run are
 * removed from every tool present (nft tables, iptables chains and jumps in
 * both variants, bypass rules, rp_filter, drop-ins); then the rules go in:
 * the active backend's own rules, the filter chains in the other iptables
 * variant where its filter table exists, accept rules at the head of
 * foreign nft chains, and (iptables backends) the nft bridge table. If any
 * of that fails everything is removed again and the error names the rule.
 *
 * Every operation runs through one queue: the reconcile timer never
 * interleaves with an update from a control request.
 */
import type { Logger } from '../../device/index.js';
import { FIREWALL_RECONCILE_MS, HOST_CONFIG_ROOT_ENV } from '../constants.js';
import { findTool } from './exec.js';
import { detectBackend, type Detection } from './detect.js';
import { emptyFirewallState, FirewallStateFile, type FirewallState } from './firewall-state.js';
import type { BackendName, FirewallBackend, FirewallInput, FirewallStatusView } from './firewall.js';
import { loosenRpFilter, pruneRpFilter, removeDropIns, restoreRpFilter, writeUnmanagedDropIns } from './host-settings.js';
import { IptablesBackend } from './iptables.js';
import { NftBypass } from './bypass.js';
import { NftablesBackend } from './nftables.js';
import { Reconciler } from './reconcile.js';
import { buildPlan, samePlan, type RulePlan } from './rules.js';
import { errorMessage } from '../../platform/index.js';

export interface NodeFirewallOptions {
  dataDir: string;
  log: Logger;
  /** Why the firewall is off (rootless, --no-firewall); null: on. */
  disabledReason?: string | null;
  env?: NodeJS.ProcessEnv;
  reconcileMs?: number;
}

/** The backends for a detected tool, the active one first. */
function backendsFor(name: BackendName): FirewallBackend[] {
  const nft = findTool('nft');
  const backends: FirewallBackend[] = [];
  if (name === 'nftables') backends.push(new NftablesBackend(nft!, { inet: true }));
  else backends.push(new IptablesBackend(name === 'iptables-nft' ? 'nft' : 'legacy', { nat: true }));
  for (const variant of ['nft', 'legacy'] as const) {
    const active = (name === 'iptables-nft' && variant === 'nft') || (name === 'iptables-legacy' && variant === 'legacy');
    if (!active && IptablesBackend.available(variant)) backends.push(new IptablesBackend(variant, { nat: false }));
  }
  if (nft !== null) {
    if (name !== 'nftables') backends.push(new NftablesBackend(nft, { inet: false }));
    backends.push(new NftBypass(nft));
  }
  return backends;
}

/** Every backend that could hold leftovers, whatever is active. */
function allBackends(): FirewallBackend[] {
  const nft = findTool('nft');
  const backends: FirewallBackend[] = [];
  for (const variant of ['nft', 'legacy'] as const) if (IptablesBackend.available(variant)) backends.push(new IptablesBackend(variant, { nat: true }));
  if (nft !== null) backends.push(new NftablesBackend(nft, { inet: true }), new NftBypass(nft));
  return backends;
}

export class NodeFirewall {
  private readonly log: Logger;
  private readonly env: NodeJS.ProcessEnv;
  private readonly stateFile: FirewallStateFile;
  private readonly reconcileMs: number;
  private readonly disabledReason: string | null;
  private detection: Detection | null = null;
  private backends: FirewallBackend[] = [];
  private plan: RulePlan | null = null;
  private state: FirewallState = emptyFirewallState();
  private readonly reconciler: Reconciler;
  private timer: NodeJS.Timeout | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: NodeFirewallOptions) {
    this.log = options.log;
    this.env = options.env ?? process.env;
    this.stateFile = new FirewallStateFile(options.dataDir);
    this.reconcileMs = options.reconcileMs ?? FIREWALL_RECONCILE_MS;
    this.disabledReason = options.disabledReason ?? null;
    this.reconciler = new Reconciler(this.log);
  }

  get active(): boolean {
    return this.plan !== null;
  }

  status(): FirewallStatusView {
    const reason = this.disabledReason ?? this.detection?.reason;
    return {
      backend: this.plan === null ? null : (this.detection?.backend ?? null),
      ...(reason === undefined ? {} : { reason }),
      lastReconcile: this.reconciler.lastReconcile,
      repairs: this.reconciler.repairs,
    };
  }

  /**
   * At daemon start-up, before any setup: a crashed run's rules, rp_filter
   * values and drop-ins go now, not only when the global overlay next comes up.
   */
  removeCrashLeftovers(): Promise<void> {
    return this.serial(async () => {
      if (this.disabledReason !== null || this.plan !== null) return;
      await this.removeLeftovers();
    });
  }

  /** Leftovers out, rules in; throws (with everything removed) when a tool refuses a rule. */
  start(input: FirewallInput): Promise<void> {
    return this.serial(async () => {
      if (this.disabledReason !== null) return;
      if (this.plan !== null) {
        await this.applyIfChanged(buildPlan(input));
        return;
      }
      const plan = buildPlan(input);
      if (this.detection === null) {
        try {
          this.detection = await detectBackend(this.env);
        } catch (error) {
          this.detection = { backend: null, reason: errorMessage(error) };
        }
        if (this.detection.backend !== null && this.detection.backend !== 'nftables' && findTool('nft') === null) {
          // iptables cannot see frames switched inside a bridge; only nft's bridge family can.
          this.detection.reason = 'nft is not installed: isolation networks are not fenced between members on one bridge';
        }
        if (this.detection.backend === null) this.log.error(`firewall off: ${this.detection.reason}`);
        else this.log.verbose(`firewall: ${this.detection.backend}${this.detection.reason === undefined ? '' : ` (${this.detection.reason})`}`);
      }
      await this.removeLeftovers();
      const name = this.detection.backend;
      if (name === null) return;
      this.backends = backendsFor(name);
      this.state = emptyFirewallState();
      try {
        this.state.dropIns = writeUnmanagedDropIns(this.env[HOST_CONFIG_ROOT_ENV] ?? '/');
        loosenRpFilter(this.state.rpFilterBefore);
        this.stateFile.save(this.state);
        await this.reconciler.applyAll(this.backends, plan);
        this.saveCreatedTables();
      } catch (error) {
        await this.removeAll().catch((undo: unknown) => this.log.error(`firewall: removing after a failed apply: ${errorMessage(undo)}`));
        this.backends = [];
        throw error;
      }
      this.plan = plan;
      this.timer = setInterval(() => void this.reconcile(), this.reconcileMs);
      this.timer.unref();
    });
  }

  /** New isolation members (or other input): re-apply when the rules change. */
  update(input: FirewallInput): Promise<void> {
    return this.serial(async () => {
      if (this.plan === null) return;
      await this.applyIfChanged(buildPlan(input));
    });
  }

  /** Put back what another tool changed; new zl-* interfaces get loose rp_filter. */
  reconcile(): Promise<void> {
    return this.serial(async () => {
      if (this.plan === null) return;
      pruneRpFilter(this.state.rpFilterBefore);
      if (loosenRpFilter(this.state.rpFilterBefore).length > 0) this.stateFile.save(this.state);
      await this.reconciler.reconcile(this.backends, this.plan);
    });
  }

  /** Remove everything; idempotent. */
  stop(): Promise<void> {
    return this.serial(async () => {
      if (this.timer !== null) clearInterval(this.timer);
      this.timer = null;
      if (this.plan === null) return;
      this.plan = null;
      await this.removeAll();
      this.backends = [];
    });
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async applyIfChanged(plan: RulePlan): Promise<void> {
    if (samePlan(plan, this.plan)) return;
    try {
      await this.reconciler.applyAll(this.backends, plan);
    } catch (error) {
      // Keep the last good rules in place: re-apply them (atomic per table, so this restores what the failed one did not).
      if (this.plan !== null) await this.reconciler.applyAll(this.backends, this.plan).catch(() => undefined);
      throw error;
    }
    this.plan = plan;
    this.saveCreatedTables();
  }

  private saveCreatedTables(): void {
    const created = this.backends.flatMap((b) => (b instanceof IptablesBackend && b.variant === 'nft' ? [...b.created] : []));
    if (created.join() !== this.state.created.join()) {
      this.state.created = created;
      this.stateFile.save(this.state);
    }
  }

  /** Our rules from every backend, then the host settings, then the state file. */
  private async removeAll(): Promise<void> {
    const errors: string[] = [];
    for (const backend of [...this.backends].reverse()) {
      await backend.remove().catch((error: unknown) => errors.push(`${backend.name}: ${errorMessage(error)}`));
    }
    this.reconciler.forget();
    restoreRpFilter(this.state.rpFilterBefore);
    removeDropIns(this.state.dropIns);
    this.state = emptyFirewallState();
    this.stateFile.remove();
    if (errors.length > 0) throw new Error(`firewall: removing rules: ${errors.join('; ')}`);
  }

  /** What a crashed run left: rules in every tool present, and what its state file remembers. */
  private async removeLeftovers(): Promise<void> {
    const saved = this.stateFile.load();
    const backends = allBackends();
    for (const backend of backends) {
      if (backend instanceof IptablesBackend && backend.variant === 'nft') for (const entry of saved.created) backend.created.add(entry);
      await backend.remove().catch((error: unknown) => this.log.error(`firewall: removing leftovers (${backend.name}): ${errorMessage(error)}`));
    }
    restoreRpFilter(saved.rpFilterBefore);
    removeDropIns(saved.dropIns);
    this.stateFile.remove();
  }
}
