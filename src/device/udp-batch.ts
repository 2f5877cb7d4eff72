/**
 * The outbound fast path's last stage: transport datagrams sealed in pinned
 * TUN ring slots leave in one sendmmsg(2) per batch and address family,
 * straight from the slots' memory — no copy, no allocation, one syscall for
 * up to BATCH_SIZE datagrams (node:dgram would make one syscall, one
 * request object and one callback per datagram). Where the socket offers
 * UDP GSO, a run of same-size datagrams to one endpoint is one message of
 * the vector (one iovec per datagram, a UDP_SEGMENT control message), which
 * the kernel cuts into datagrams only on its way out. What sendmmsg does not
 * take (a full socket buffer) is retried one by one, then dropped like any
 * congested link drops.
 */
import type { Endpoint } from './addr.js';
import type { UdpBind } from './bind.js';
import type { Logger } from './logger.js';
import type { TransportSlot } from '../noise/index.js';
import { EIO, loadLibc, lastErrno, MessageVector, RELEASE_BATCH, CONTROL_ROOM, writePacketInfo, writeSegmentSize, type LocalSource, gsoMaxBytes, gsoRunLength } from '../platform/index.js';
import { sockaddrOf } from './sockaddr.js';
import { SOURCE_GONE_ERRORS } from './sticky-source.js';

/** Datagrams per sendmmsg call: the packet ring releases slots after batches of this size. */
const BATCH_SIZE = RELEASE_BATCH;

export type SentCallback<Owner> = (owner: Owner, bytes: number) => void;

/** One family's pending datagrams, and the messages they make. */
class FamilyBatch<Owner> {
  readonly messages = new MessageVector(BATCH_SIZE, CONTROL_ROOM);
  count = 0;
  readonly owners: (Owner | null)[] = new Array<Owner | null>(BATCH_SIZE).fill(null);
  readonly slots: (TransportSlot | null)[] = new Array<TransportSlot | null>(BATCH_SIZE).fill(null);
  readonly endpoints: (Endpoint | null)[] = new Array<Endpoint | null>(BATCH_SIZE).fill(null);
  readonly sources: (LocalSource | null)[] = new Array<LocalSource | null>(BATCH_SIZE).fill(null);
  readonly lengths = new Int32Array(BATCH_SIZE);
  /** Per message: its first datagram and how many it carries. */
  readonly firsts = new Int32Array(BATCH_SIZE);
  readonly runs = new Int32Array(BATCH_SIZE);
  /** Same endpoint and source (the objects a peer keeps, so identity is enough). */
  readonly sameRoute = (a: number, b: number): boolean => this.endpoints[a] === this.endpoints[b] && this.sources[a] === this.sources[b];

  constructor(readonly family: 4 | 6) {}

  add(slot: TransportSlot, length: number, endpoint: Endpoint, owner: Owner, source: LocalSource | null): void {
    const i = this.count++;
    this.messages.setBuffer(i, slot.address, length);
    this.owners[i] = owner;
    this.slots[i] = slot;
    this.endpoints[i] = endpoint;
    this.sources[i] = source;
    this.lengths[i] = length;
  }

  /**
   * Lay datagrams [from, count) out as messages 0, 1, …: with `segmentation`
   * each run gsoRunLength allows is one message. Returns the message count.
   */
  build(from: number, segmentation: boolean): number {
    const messages = this.messages;
    const view = messages.dataView;
    const maxBytes = gsoMaxBytes(this.family);
    let message = 0;
    for (let i = from; i < this.count; message++) {
      const run = segmentation ? gsoRunLength(this.lengths, i, this.count, this.sameRoute, maxBytes) : 1;
      messages.useBuffers(message, i, run);
      messages.setName(message, sockaddrOf(this.endpoints[i]!));
      let control = messages.controlOffset(message);
      if (run > 1) control += writeSegmentSize(view, control, this.lengths[i]!);
      const source = this.sources[i];
      if (source !== null && source !== undefined) control += writePacketInfo(view, control, source);
      messages.setControlLength(message, control - messages.controlOffset(message));
      this.firsts[message] = i;
      this.runs[message] = run;
      i += run;
    }
    return message;
  }

  /** Datagrams from `from` on that were to leave from `source` leave from the kernel's choice instead. */
  dropSource(source: LocalSource, from: number): void {
    for (let i = from; i < this.count; i++) if (this.sources[i] === source) this.sources[i] = null;
  }

  forget(): void {
    for (let i = 0; i < this.count; i++) {
      this.owners[i] = null;
      this.slots[i] = null;
      this.endpoints[i] = null;
      this.sources[i] = null;
    }
    this.count = 0;
  }
}

export class UdpBatchSender<Owner> {
  private readonly batches: [FamilyBatch<Owner>, FamilyBatch<Owner>] = [new FamilyBatch<Owner>(4), new FamilyBatch<Owner>(6)];
  private readonly sendmmsg = loadLibc().sendmmsg;

  constructor(
    private readonly bind: UdpBind,
    private readonly log: Logger,
    /** Called for each datagram the kernel took (the device counts tx bytes there). */
    private readonly sent: SentCallback<Owner>,
    /** The source address given for an owner's datagrams is gone (the device forgets it); they go again from the kernel's choice. */
    private readonly sourceGone: (owner: Owner) => void = () => undefined,
  ) {}

  /**
   * Queue slot.bytes[0, length) for `endpoint`, from `source` when given
   * (else the kernel picks the source address); the slot must stay untouched
   * until flush().
   */
  add(slot: TransportSlot, length: number, endpoint: Endpoint, owner: Owner, source: LocalSource | null = null): void {
    if (slot.address < 0) {
      const route = source === null ? undefined : { source, gone: () => this.sourceGone(owner) };
      this.bind.send(slot.bytes.subarray(0, length), endpoint, () => this.sent(owner, length), undefined, route);
      return;
    }
    const batch = this.batches[endpoint.family === 4 ? 0 : 1];
    if (batch.count === BATCH_SIZE) this.flushBatch(batch);
    batch.add(slot, length, endpoint, owner, source);
  }

  /** Send everything queued. */
  flush(): void {
    for (const batch of this.batches) if (batch.count > 0) this.flushBatch(batch);
  }

  private flushBatch(batch: FamilyBatch<Owner>): void {
    const fd = this.bind.fd(batch.family);
    let from = 0;
    while (from < batch.count) from = this.sendFrom(batch, fd, from);
    batch.forget();
  }

  /** Send datagrams [from, count) of the batch; returns where to go on (count when all are done). */
  private sendFrom(batch: FamilyBatch<Owner>, fd: number | null, from: number): number {
    const segmentation = this.bind.segmentation(batch.family);
    const messageCount = batch.build(from, segmentation);
    let message = 0;
    while (message < messageCount) {
      const done = fd === null ? -1 : this.sendmmsg(fd, batch.messages.from(message), messageCount - message, 0);
      if (done > 0) {
        for (let m = message; m < message + done; m++) this.accepted(batch, m);
        message += done;
        continue;
      }
      const { errno, code } = fd === null ? { errno: 0, code: 'no socket' } : lastErrno();
      const first = batch.firsts[message]!;
      if (errno === EIO && batch.runs[message]! > 1) {
        // The way out cannot checksum a GSO send: no more of them, and these go again without.
        this.bind.stopSegmentation(batch.family);
        return first;
      }
      const source = batch.sources[first];
      if (source !== null && source !== undefined && SOURCE_GONE_ERRORS.has(errno)) {
        this.log.verbose(`the source address for ${batch.endpoints[first]!.address} is gone (${code}); the kernel picks one`);
        this.sourceGone(batch.owners[first]!);
        batch.dropSource(source, first);
        return first;
      }
      this.log.verbose(`sendmmsg of ${messageCount - message} message(s) failed (${code}); sending the first one datagram by datagram`);
      this.sendOneByOne(batch, message);
      message++;
    }
    return batch.count;
  }

  private accepted(batch: FamilyBatch<Owner>, message: number): void {
    const first = batch.firsts[message]!;
    for (let i = first; i < first + batch.runs[message]!; i++) this.sent(batch.owners[i]!, batch.lengths[i]!);
  }

  private sendOneByOne(batch: FamilyBatch<Owner>, message: number): void {
    const first = batch.firsts[message]!;
    for (let i = first; i < first + batch.runs[message]!; i++) {
      const owner = batch.owners[i]!;
      const length = batch.lengths[i]!;
      const source = batch.sources[i];
      const route = source === null || source === undefined ? undefined : { source, gone: () => this.sourceGone(owner) };
      this.bind.send(batch.slots[i]!.bytes.subarray(0, length), batch.endpoints[i]!, () => this.sent(owner, length), undefined, route);
    }
  }
}
