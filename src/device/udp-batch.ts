/**
 * The outbound fast path's last stage: transport datagrams sealed in pinned
 * TUN ring slots leave in one sendmmsg(2) per batch and address family,
 * straight from the slots' memory — no copy, no allocation, one syscall for
 * up to BATCH_SIZE datagrams (node:dgram would make one syscall, one
 * request object and one callback per datagram). What sendmmsg does not take
 * (a full socket buffer) is retried once one by one, then dropped like any
 * congested link drops.
 */
import type { Endpoint } from './addr.js';
import type { UdpBind } from './bind.js';
import type { Logger } from './logger.js';
import type { TransportSlot } from '../noise/transport-slot.js';
import { loadLibc, lastErrno } from '../platform/libc.js';
import { MessageVector } from '../platform/message-vector.js';
import { RELEASE_BATCH } from '../platform/packet-ring.js';
import { sockaddrOf } from './sockaddr.js';

/** Datagrams per sendmmsg call: the packet ring releases slots after batches of this size. */
export const BATCH_SIZE = RELEASE_BATCH;

export type SentCallback<Owner> = (owner: Owner, bytes: number) => void;

/** One family's pending datagrams. */
class FamilyBatch<Owner> {
  readonly messages = new MessageVector(BATCH_SIZE);
  count = 0;
  readonly owners: (Owner | null)[] = new Array<Owner | null>(BATCH_SIZE).fill(null);
  readonly slots: (TransportSlot | null)[] = new Array<TransportSlot | null>(BATCH_SIZE).fill(null);
  readonly endpoints: (Endpoint | null)[] = new Array<Endpoint | null>(BATCH_SIZE).fill(null);
  readonly lengths = new Int32Array(BATCH_SIZE);

  constructor(readonly family: 4 | 6) {}

  add(slot: TransportSlot, length: number, endpoint: Endpoint, owner: Owner): void {
    const i = this.count++;
    this.messages.setName(i, sockaddrOf(endpoint));
    this.messages.setBuffer(i, slot.address, length);
    this.owners[i] = owner;
    this.slots[i] = slot;
    this.endpoints[i] = endpoint;
    this.lengths[i] = length;
  }

  forget(i: number): void {
    this.owners[i] = null;
    this.slots[i] = null;
    this.endpoints[i] = null;
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
  ) {}

  /** Queue slot.bytes[0, length) for `endpoint`; the slot must stay untouched until flush(). */
  add(slot: TransportSlot, length: number, endpoint: Endpoint, owner: Owner): void {
    if (slot.address < 0) {
      this.bind.send(slot.bytes.subarray(0, length), endpoint, () => this.sent(owner, length));
      return;
    }
    const batch = this.batches[endpoint.family === 4 ? 0 : 1];
    if (batch.count === BATCH_SIZE) this.flushBatch(batch);
    batch.add(slot, length, endpoint, owner);
  }

  /** Send everything queued. */
  flush(): void {
    for (const batch of this.batches) if (batch.count > 0) this.flushBatch(batch);
  }

  private flushBatch(batch: FamilyBatch<Owner>): void {
    const count = batch.count;
    batch.count = 0;
    const fd = this.bind.fd(batch.family);
    let done = fd === null ? 0 : this.sendmmsg(fd, batch.messages.bytes, count, 0);
    if (done < 0) {
      this.log.verbose(`sendmmsg of ${count} datagram(s) failed (${lastErrno().code}); sending them one by one`);
      done = 0;
    }
    for (let i = 0; i < count; i++) {
      const owner = batch.owners[i]!;
      const length = batch.lengths[i]!;
      if (i < done) this.sent(owner, length);
      else this.bind.send(batch.slots[i]!.bytes.subarray(0, length), batch.endpoints[i]!, () => this.sent(owner, length));
      batch.forget(i);
    }
  }
}
