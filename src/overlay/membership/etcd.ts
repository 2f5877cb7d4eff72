/**
 * The etcd backend. start() joins: the deployment's config record (created by
 * the first node, checked by the others), the allocation lease and the slice
 * (slice-allocation.ts), the presence lease, then a first listing of the
 * deployment's keys. From then on:
 *
 *   - a watch from the listing's revision + 1 (with previous values) keeps the
 *     view current; the resume revision advances with every message, so a
 *     reconnect (to any endpoint) misses nothing; a compacted revision means
 *     list again and diff;
 *   - every view change is turned into AddPeer/RemovePeer for the difference
 *     between the peers the view asks for (peer-set.ts) and those applied;
 *   - the presence lease is renewed every third of its TTL, the allocation
 *     lease every SLICE_LEASE_RENEW_SECS; a lease found expired is granted
 *     again and the records on it rewritten;
 *   - this node's record is written only when it differs from what etcd holds.
 *
 * etcd unreachable: nothing is removed (the view just stops changing), status
 * says unhealthy, and everything is retried with backoff. The slice, leases
 * and last applied peers are saved in the data dir, so a node restarted during
 * an outage comes up with its slice and peers and joins once etcd is back.
 */
import { parseCidr, type Cidr, type Logger } from '../../device/index.js';
import {
  ETCD_RETRY_MAX_MS,
  ETCD_RETRY_MIN_MS,
  MEMBERSHIP_REVOKE_TIMEOUT_MS,
  MEMBERSHIP_SAVE_DELAY_MS,
  MEMBERSHIP_START_TIMEOUT_MS,
  PRESENCE_KEEPALIVE_FRACTION,
  ROAMING_ENDPOINT,
  SLICE_LEASE_RENEW_SECS,
  SLICE_LEASE_TTL_SECS,
} from '../constants.js';
import { OverlayError } from '../errors.js';
import { readEtcdTls, type EtcdMembershipConfig } from './config.js';
import { EtcdClient, EtcdError, EtcdUnavailableError, type EtcdClientOptions, type KeyValue, type WatchMessage } from './etcd-client.js';
import type { LocalRecord, Membership, MembershipStatusView, NodeInfo, PeerSink } from './membership.js';
import { MembershipStore, type SavedMembership } from './membership-store.js';
import { desiredPeers, sameSpec, type MemberPeer } from './peer-set.js';
import { encodeClusterRecord, encodeNodeRecord, KeyLayout, parseClusterRecord } from './records.js';
import { allocateSlice, checkSliceFits } from './slice-allocation.js';
import { errorMessage } from '../../platform/index.js';

export interface EtcdMembershipOptions {
  config: EtcdMembershipConfig;
  dataDir: string;
  log: Logger;
  /** Tests pass their own (shorter timeouts); default one built from the config. */
  client?: EtcdClient;
  /** How long start() keeps trying when nothing is saved; default MEMBERSHIP_START_TIMEOUT_MS. */
  startTimeoutMs?: number;
  random?: () => number;
  /** The allocation lease's TTL and renewal period; default SLICE_LEASE_TTL_SECS and SLICE_LEASE_RENEW_SECS (tests shorten them). */
  allocationLease?: { ttlSecs: number; renewMs: number };
}

/** The client a config asks for (reads the TLS files: an OverlayError names one that cannot be read). */
function clientOptions(config: EtcdMembershipConfig): EtcdClientOptions {
  const options: EtcdClientOptions = { endpoints: config.endpoints };
  if (config.username !== undefined) options.username = config.username;
  if (config.password !== undefined) options.password = config.password;
  if (config.tls !== undefined) options.tls = readEtcdTls(config.tls);
  return options;
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

export class EtcdMembership implements Membership {
  private readonly client: EtcdClient;
  /** Built here (not passed in): its connections are closed on stop. */
  private readonly ownsClient: boolean;
  private readonly store: MembershipStore;
  private readonly log: Logger;
  private readonly config: EtcdMembershipConfig;

  private node: NodeInfo | null = null;
  private layout: KeyLayout | null = null;
  private cluster: Cidr | null = null;
  private slice: string | null = null;
  private allocationLease: string | null = null;
  private presenceLease: string | null = null;
  private joined = false;

  /** The deployment's keys as last seen, and the revision of that view (0: never listed). */
  private readonly view = new Map<string, KeyValue>();
  private revision = 0;
  private needList = true;
  private watchUp = false;
  private leaseUp = false;
  /** nodeId → what was handed to the sink (saved in the data dir). */
  private readonly applied = new Map<string, MemberPeer>();
  /** nodeId → JSON of the isolation members handed to the sink. */
  private readonly appliedIsolation = new Map<string, string>();
  /** nodeId → JSON of a spec the sink refused: not retried until the record changes. */
  private readonly refused = new Map<string, string>();
  private readonly warned = new Set<string>();
  private sink: PeerSink | null = null;
  private record: LocalRecord | null = null;
  private lastSlice: number = Date.now();

  private readonly stopController = new AbortController();
  private watchController: AbortController | null = null;
  private loops: Promise<void>[] = [];
  /** Peer changes and publishes run one at a time, in order. */
  private queue: Promise<void> = Promise.resolve();
  /** A reconcile is queued and has not started yet. */
  private reconcileQueued = false;
  private saveTimer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly options: EtcdMembershipOptions) {
    this.config = options.config;
    this.log = options.log;
    this.store = new MembershipStore(options.dataDir);
    this.ownsClient = options.client === undefined;
    this.client = options.client ?? new EtcdClient(clientOptions(options.config));
  }

  // ---- Membership ------------------------------------------------------------------

  async start(node: NodeInfo): Promise<string> {
    this.node = node;
    this.layout = new KeyLayout(this.config.prefix, node.deployment);
    this.cluster = parseCidr(node.clusterCidr);
    if (this.config.sliceLength < this.cluster.prefixLength || this.config.sliceLength > this.cluster.bytes.length * 8 - 2) {
      throw new OverlayError(`membership.etcd.sliceLength /${this.config.sliceLength} does not fit cluster ${node.clusterCidr} (between /${this.cluster.prefixLength} and /${this.cluster.bytes.length * 8 - 2})`);
    }
    const fixed = node.sliceCidr === undefined ? undefined : checkSliceFits(node.sliceCidr, this.sliceContext(), 'sliceCidr');
    const saved = this.store.load(node.deployment, node.nodeId);
    if (saved !== null) {
      this.allocationLease = saved.allocationLeaseId;
      this.presenceLease = saved.presenceLeaseId;
      // Their isolation members are in the engine's own file; the view delivers them again.
      for (const peer of saved.peers) this.applied.set(peer.nodeId, { ...peer, isolation: {} });
    }

    const deadline = Date.now() + (this.options.startTimeoutMs ?? MEMBERSHIP_START_TIMEOUT_MS);
    let backoff = ETCD_RETRY_MIN_MS;
    for (;;) {
      try {
        await this.join(fixed ?? saved?.slice ?? undefined, fixed !== undefined);
        await this.list();
        break;
      } catch (error) {
        if (!(error instanceof EtcdUnavailableError)) throw error instanceof OverlayError ? error : new OverlayError(`membership: ${errorMessage(error)}`);
        const usable = saved?.slice !== null && saved?.slice !== undefined && (fixed === undefined || fixed === saved.slice) ? saved.slice : null;
        if (usable !== null) {
          // Keep forwarding with what we had; join once etcd answers again.
          this.slice = usable;
          this.log.error(`membership: ${errorMessage(error)}; starting with the saved slice ${usable} and ${this.applied.size} saved peer(s)`);
          break;
        }
        if (Date.now() >= deadline) {
          throw new OverlayError(`membership: ${errorMessage(error)}; no slice saved in ${this.store.path} to start with`);
        }
        this.log.error(`membership: ${errorMessage(error)}; retrying`);
        await sleep(backoff, this.stopController.signal);
        backoff = Math.min(backoff * 2, ETCD_RETRY_MAX_MS);
      }
    }
    this.save();
    this.loops = [this.watchLoop(), this.maintenanceLoop()];
    return this.slice!;
  }

  async publish(record: LocalRecord): Promise<void> {
    this.record = record;
    await this.enqueue(() => this.writeOwnRecord());
  }

  async onPeers(sink: PeerSink): Promise<void> {
    this.sink = sink;
    // Saved peers first (they are all we have while etcd is away), then the view.
    await this.enqueue(async () => {
      for (const peer of this.applied.values()) await this.addPeer(peer);
    });
    await this.enqueue(() => this.reconcile());
  }

  status(): MembershipStatusView {
    return {
      backend: 'etcd',
      healthy: this.joined && this.watchUp && this.leaseUp,
      member: this.joined && this.ownRecordPublished(),
      revision: this.revision === 0 ? null : this.revision,
    };
  }

  async stop(revoke: boolean): Promise<void> {
    this.stopController.abort();
    this.watchController?.abort();
    // Requests in flight are not waited for (etcd may be away); the loops write nothing once stopped.
    await this.queue.catch(() => undefined);
    if (revoke && this.presenceLease !== null) {
      const lease = this.presenceLease;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new EtcdUnavailableError(`no answer within ${MEMBERSHIP_REVOKE_TIMEOUT_MS} ms`)), MEMBERSHIP_REVOKE_TIMEOUT_MS);
      });
      try {
        await Promise.race([this.client.leaseRevoke(lease), timeout]);
        this.presenceLease = null;
        this.log.verbose('membership: presence lease revoked');
      } catch (error) {
        this.log.error(`membership: cannot revoke the presence lease (peers drop this node when it expires): ${errorMessage(error)}`);
      } finally {
        clearTimeout(timer);
      }
    }
    if (this.saveTimer !== null) clearTimeout(this.saveTimer);
    this.saveTimer = null;
    if (this.node !== null) this.save();
    void Promise.allSettled(this.loops);
    if (this.ownsClient) this.client.close();
  }

  private get stopped(): boolean {
    return this.stopController.signal.aborted;
  }

  // ---- joining ---------------------------------------------------------------------

  private sliceContext(): { cluster: Cidr; clusterText: string; sliceLength: number } {
    return { cluster: this.cluster!, clusterText: this.node!.clusterCidr, sliceLength: this.config.sliceLength };
  }

  /** Config record, leases, slice. `slice` is preferred (or required, when `fixed`). */
  private async join(slice: string | undefined, fixed: boolean): Promise<void> {
    const node = this.node!;
    const layout = this.layout!;
    const wanted = encodeClusterRecord({ clusterCidr: node.clusterCidr, sliceLength: this.config.sliceLength });
    const claim = await this.client.createIfAbsent(layout.config, wanted);
    if (!claim.created && claim.existing !== null) {
      let existing;
      try {
        existing = parseClusterRecord(claim.existing.value, layout.config);
      } catch (error) {
        throw new OverlayError(`membership: ${errorMessage(error)}; fix or delete it`);
      }
      const ours = parseClusterRecord(wanted, layout.config);
      if (existing.clusterCidr !== ours.clusterCidr || existing.sliceLength !== ours.sliceLength) {
        throw new OverlayError(
          `membership: deployment ${node.deployment} in etcd has cluster ${existing.clusterCidr} with /${existing.sliceLength} slices (${layout.config}), ` +
            `but this node is configured with ${ours.clusterCidr} and /${ours.sliceLength}`,
        );
      }
    }
    this.allocationLease = await this.renewOrGrant(this.allocationLease, this.options.allocationLease?.ttlSecs ?? SLICE_LEASE_TTL_SECS);
    const request = {
      layout,
      ...this.sliceContext(),
      nodeId: node.nodeId,
      publicKey: node.publicKey,
      leaseId: this.allocationLease,
      ...(slice !== undefined && fixed ? { fixed: slice } : {}),
      ...(slice !== undefined && !fixed ? { saved: slice } : {}),
      ...(this.options.random === undefined ? {} : { random: this.options.random }),
    };
    const got = await allocateSlice(this.client, request);
    if (this.slice !== null && got !== this.slice) {
      // Started from the saved slice during an outage, and someone else holds it now: the device cannot change slice under its containers.
      throw new OverlayError(`membership: this node runs with slice ${this.slice}, but etcd now reserves ${got} for it; restart the node to move`);
    }
    this.slice = got;
    this.lastSlice = Date.now();
    this.presenceLease = await this.renewOrGrant(this.presenceLease, this.config.leaseTtlSeconds);
    this.leaseUp = true;
    this.joined = true;
    this.log.verbose(`membership: node ${node.nodeId} holds slice ${got} (etcd ${this.client.endpoint})`);
  }

  /** Renew a saved lease if it still exists, else grant a new one. */
  private async renewOrGrant(id: string | null, ttl: number): Promise<string> {
    if (id !== null && (await this.client.leaseKeepAlive(id)) > 0) return id;
    return (await this.client.leaseGrant(ttl)).id;
  }

  // ---- view ------------------------------------------------------------------------

  /** Replace the view with a fresh listing (first start, compaction) and apply the difference. */
  private async list(): Promise<void> {
    const { revision, kvs } = await this.client.range(this.layout!.root, { prefix: true });
    this.view.clear();
    for (const kv of kvs) this.view.set(kv.key, kv);
    this.revision = revision;
    this.needList = false;
    await this.enqueue(() => this.reconcile());
  }

  private onWatchMessage(message: WatchMessage): void {
    if (message.canceled) {
      if (message.compactRevision > 0) this.log.verbose(`membership: revision ${this.revision + 1} was compacted (now ${message.compactRevision}); listing again`);
      this.needList = true;
      return;
    }
    if (message.created) {
      this.watchUp = true;
      // A store behind our view was rebuilt: our revision means nothing there.
      if (message.revision < this.revision) {
        this.needList = true;
        this.watchController?.abort();
      }
      return;
    }
    if (message.events.length === 0) {
      // A progress notification: everything up to the header's revision was sent.
      this.revision = Math.max(this.revision, message.revision);
      return;
    }
    for (const event of message.events) {
      if (event.type === 'put') this.view.set(event.kv.key, event.kv);
      else this.view.delete(event.kv.key);
      this.revision = Math.max(this.revision, event.kv.modRevision);
    }
    this.scheduleReconcile();
  }

  /**
   * One reconcile queued at a time: it reads the view when it runs, so it
   * covers every event that came before. Queuing one per event made a join
   * storm cost O(events × members) and held the lease keep-alive (which
   * waits for the queue) behind it.
   */
  private scheduleReconcile(): void {
    if (this.reconcileQueued) return;
    this.reconcileQueued = true;
    this.enqueue(() => {
      this.reconcileQueued = false;
      return this.reconcile();
    }).catch((error: unknown) => this.log.error(`membership: applying revision ${this.revision}: ${errorMessage(error)}`));
  }

  private async watchLoop(): Promise<void> {
    const stop = this.stopController.signal;
    let backoff = ETCD_RETRY_MIN_MS;
    while (!stop.aborted) {
      try {
        if (!this.joined) {
          await sleep(backoff, stop);
          continue;
        }
        if (this.needList) await this.list();
        const controller = new AbortController();
        this.watchController = controller;
        await this.client.watch(this.layout!.root, this.revision + 1, (message) => this.onWatchMessage(message), AbortSignal.any([controller.signal, stop]));
        backoff = ETCD_RETRY_MIN_MS;
        this.watchUp = false;
      } catch (error) {
        if (stop.aborted) break;
        if (this.watchUp || backoff === ETCD_RETRY_MIN_MS) this.log.error(`membership: watch lost (${errorMessage(error)}); known peers kept, retrying`);
        this.watchUp = false;
        await sleep(backoff, stop);
        backoff = Math.min(backoff * 2, ETCD_RETRY_MAX_MS);
      }
    }
    this.watchUp = false;
  }

  // ---- leases and own record -------------------------------------------------------

  private async maintenanceLoop(): Promise<void> {
    const stop = this.stopController.signal;
    const every = (this.config.leaseTtlSeconds * 1000) / PRESENCE_KEEPALIVE_FRACTION;
    let backoff = ETCD_RETRY_MIN_MS;
    while (!stop.aborted) {
      try {
        if (!this.joined) {
          await this.join(this.slice ?? undefined, this.slice !== null);
          await this.list();
          this.save();
        } else {
          await this.renewLeases();
        }
        if (!this.leaseUp) this.log.verbose('membership: etcd reachable again');
        this.leaseUp = true;
        await this.enqueue(() => this.writeOwnRecord());
        backoff = ETCD_RETRY_MIN_MS;
        await this.nap(every);
      } catch (error) {
        if (stop.aborted) break;
        if (error instanceof OverlayError && !(error instanceof EtcdError)) this.log.error(errorMessage(error));
        else if (this.leaseUp) this.log.error(`membership: etcd unreachable (${errorMessage(error)}); known peers kept, retrying`);
        this.leaseUp = false;
        // The watch may hang on a dead connection: make it reconnect too.
        this.watchController?.abort();
        await this.nap(Math.min(backoff, every));
        backoff = Math.min(backoff * 2, ETCD_RETRY_MAX_MS);
      }
    }
  }

  /** Sleep, or less when something asks for a maintenance pass (our record vanished). */
  private nap(ms: number): Promise<void> {
    const controller = new AbortController();
    this.wake = () => controller.abort();
    return sleep(ms, AbortSignal.any([controller.signal, this.stopController.signal])).finally(() => {
      this.wake = null;
    });
  }

  private async renewLeases(): Promise<void> {
    if (this.presenceLease === null || (await this.client.leaseKeepAlive(this.presenceLease)) === 0) {
      if (this.stopped) return;
      this.log.error('membership: presence lease expired (etcd was out of reach too long); joining again');
      this.presenceLease = (await this.client.leaseGrant(this.config.leaseTtlSeconds)).id;
      this.save();
    }
    if (Date.now() - this.lastSlice >= (this.options.allocationLease?.renewMs ?? SLICE_LEASE_RENEW_SECS * 1000)) {
      if (this.allocationLease === null || (await this.client.leaseKeepAlive(this.allocationLease)) === 0) {
        this.log.error(`membership: the allocation lease of slice ${this.slice} expired; reserving it again`);
        this.allocationLease = null;
        this.joined = false;
        await this.join(this.slice!, true);
        this.save();
      }
      this.lastSlice = Date.now();
    }
  }

  private ownValue(): string | null {
    if (this.record === null || this.slice === null) return null;
    return encodeNodeRecord({ publicKey: this.node!.publicKey, slice: this.slice, ...this.record });
  }

  private ownRecordPublished(): boolean {
    const kv = this.view.get(this.layout!.nodeKey(this.node!.nodeId));
    const value = this.ownValue();
    return kv !== undefined && (value === null || kv.value === value) && kv.lease === this.presenceLease;
  }

  /** Put our node record when etcd's differs (the view is current: it includes our own writes). */
  private async writeOwnRecord(): Promise<void> {
    const value = this.ownValue();
    if (value === null || !this.joined || this.presenceLease === null || this.stopped) return;
    const key = this.layout!.nodeKey(this.node!.nodeId);
    const current = this.view.get(key);
    if (current !== undefined && current.value === value && current.lease === this.presenceLease) return;
    const revision = await this.client.put(key, value, this.presenceLease);
    // Count it as seen now; the watch event confirms it.
    this.view.set(key, { key, value, lease: this.presenceLease, createRevision: current?.createRevision ?? revision, modRevision: revision });
    this.log.verbose(`membership: published ${key}`);
  }

  // ---- peers -----------------------------------------------------------------------

  private enqueue(task: () => Promise<void>): Promise<void> {
    const next = this.queue.then(task);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Bring the sink's peers in line with the view (nothing before the first listing or without a sink). */
  private async reconcile(): Promise<void> {
    if (this.sink === null || this.revision === 0 || this.needList) return;
    const ownKey = this.layout!.nodeKey(this.node!.nodeId);
    if (this.joined && this.record !== null && !this.view.has(ownKey)) this.wake?.();
    if (this.joined && this.slice !== null && !this.view.has(this.layout!.sliceKey(this.slice))) {
      // Our reservation is gone (its lease expired or was revoked): check the lease and reserve the slice again now.
      this.lastSlice = 0;
      this.wake?.();
    }
    const desired = desiredPeers(
      this.view.values(),
      { layout: this.layout!, cluster: this.cluster!, selfNodeId: this.node!.nodeId, selfPublicKey: this.node!.publicKey },
      (key, modRevision, reason) => {
        const id = `${key}@${modRevision}`;
        if (this.warned.has(id)) return;
        this.warned.add(id);
        this.log.error(`membership: ignoring record ${key}: ${reason}`);
      },
    );
    let changed = false;
    for (const [nodeId, peer] of [...this.applied]) {
      const want = desired.get(nodeId);
      if (want !== undefined && want.spec.publicKey === peer.spec.publicKey) continue;
      try {
        await this.sink.remove(nodeId, peer.spec.publicKey);
        this.log.verbose(`membership: removed peer ${nodeId} (${peer.spec.allowedIps})`);
      } catch (error) {
        this.log.error(`membership: removing peer ${nodeId}: ${errorMessage(error)}`);
      }
      this.applied.delete(nodeId);
      this.appliedIsolation.delete(nodeId);
      changed = true;
    }
    for (const [nodeId, peer] of desired) {
      const have = this.applied.get(nodeId);
      if (have !== undefined && sameSpec(have.spec, peer.spec)) continue;
      if (this.refused.get(nodeId) === JSON.stringify(peer.spec)) continue;
      if (await this.addPeer(peer, have)) {
        this.log.verbose(`membership: ${have === undefined ? 'added' : 'updated'} peer ${nodeId} (${peer.spec.allowedIps})`);
        changed = true;
      }
    }
    for (const nodeId of this.refused.keys()) if (!desired.has(nodeId)) this.refused.delete(nodeId);
    await this.deliverIsolation(desired);
    if (changed) this.saveSoon();
  }

  /** Each applied peer's isolation members, when they differ from what the sink last got. */
  private async deliverIsolation(desired: Map<string, MemberPeer>): Promise<void> {
    const deliver = this.sink?.isolation?.bind(this.sink);
    if (deliver === undefined) return;
    for (const [nodeId, peer] of desired) {
      if (!this.applied.has(nodeId)) continue;
      const text = JSON.stringify(peer.isolation);
      if (this.appliedIsolation.get(nodeId) === text) continue;
      try {
        await deliver(nodeId, peer.spec.publicKey, peer.isolation);
      } catch (error) {
        // Not retried until the record changes: the same list would be refused again.
        this.log.error(`membership: isolation members of node ${nodeId}: ${errorMessage(error)}`);
      }
      this.appliedIsolation.set(nodeId, text);
    }
  }

  /** Save within MEMBERSHIP_SAVE_DELAY_MS (one save for a burst of peer changes). */
  private saveSoon(): void {
    if (this.saveTimer !== null) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      if (!this.stopped) this.save();
    }, MEMBERSHIP_SAVE_DELAY_MS);
    this.saveTimer.unref();
  }

  /**
   * Hand `peer` to the sink. When it replaces `before` with the same key and
   * advertised endpoint (only candidates or subnets changed), the endpoint is
   * left out: the device's may have roamed, or been punched to a candidate,
   * and the advertised one may not reach the peer at all.
   */
  private async addPeer(peer: MemberPeer, before?: MemberPeer): Promise<boolean> {
    const keepEndpoint = before !== undefined && before.spec.publicKey === peer.spec.publicKey && before.spec.endpoint === peer.spec.endpoint;
    try {
      await this.sink!.add(peer.nodeId, keepEndpoint ? { ...peer.spec, endpoint: ROAMING_ENDPOINT } : peer.spec);
      this.applied.set(peer.nodeId, peer);
      this.refused.delete(peer.nodeId);
      return true;
    } catch (error) {
      this.refused.set(peer.nodeId, JSON.stringify(peer.spec));
      this.log.error(`membership: ignoring node ${peer.nodeId}: ${errorMessage(error)}`);
      return false;
    }
  }

  private save(): void {
    const node = this.node!;
    const state: SavedMembership = {
      version: 1,
      deployment: node.deployment,
      nodeId: node.nodeId,
      clusterCidr: node.clusterCidr,
      slice: this.slice,
      allocationLeaseId: this.allocationLease,
      presenceLeaseId: this.presenceLease,
      revision: this.revision,
      peers: [...this.applied.values()],
    };
    try {
      this.store.save(state);
    } catch (error) {
      this.log.error(`membership: cannot save ${this.store.path}: ${errorMessage(error)}`);
    }
  }
}
