/**
 * The send path: IP packets from the TUN device to UDP datagrams.
 *
 * The I/O thread reads the TUN device into a shared ring and hands each
 * packet over in its slot, with room around it for the transport header,
 * padding and tag. Here:
 *   1. the packet's destination is looked up in the allowed-IPs trie: that
 *      names the peer (no peer, no send);
 *   2. the peer's Tunnel seals it in place, inline or, with crypto workers,
 *      in the TransportBatch, which hands sealed datagrams back in order;
 *   3. the datagram joins the UDP batch (udp-batch.ts), which leaves with one
 *      sendmmsg, in UDP GSO runs, from the peer's sticky source address;
 *   4. at the batch's end the send batch is flushed and each peer's timers
 *      are rescheduled once (timers.ts).
 * Packets the fast path declines (no session yet, a rekey due, no endpoint)
 * are copied to the reference path: Tunnel.encapsulate, whose output the
 * device carries out.
 */
import type { TransportSlot, TunnelOutput } from '../noise/index.js';
import type { Endpoint } from './addr.js';
import type { AllowedIps } from './allowed-ips.js';
import type { DeviceCounters } from './counters.js';
import type { TransportBatch } from './crypto-batch.js';
import { ipHeaderFits } from './ip-packet.js';
import type { Peer } from './peer.js';
import type { LocalSource } from '../platform/index.js';
import type { PeerTimers } from './timers.js';
import type { UdpBatchSender } from './udp-batch.js';

/**
 * Carry out what a Tunnel asked for (the device's switch over a TunnelOutput):
 * `source` is where the datagram came from, if any, and `local` where it arrived.
 */
export type TunnelOutputHandler = (peer: Peer, output: TunnelOutput, source: Endpoint | null, local: LocalSource | null) => void;

export interface SendPathParts {
  allowedIps: AllowedIps<Peer>;
  batchSender: UdpBatchSender<Peer>;
  /** The crypto workers' ordered batch; null when the AEAD runs inline. */
  transportBatch: TransportBatch<Peer, Endpoint | Uint8Array> | null;
  timers: PeerTimers;
  counters: DeviceCounters;
  act: TunnelOutputHandler;
}

export class SendPath {
  private readonly allowedIps: AllowedIps<Peer>;
  private readonly batchSender: UdpBatchSender<Peer>;
  private readonly transportBatch: TransportBatch<Peer, Endpoint | Uint8Array> | null;
  private readonly timers: PeerTimers;
  private readonly counters: DeviceCounters;
  private readonly act: TunnelOutputHandler;

  constructor(parts: SendPathParts) {
    this.allowedIps = parts.allowedIps;
    this.batchSender = parts.batchSender;
    this.transportBatch = parts.transportBatch;
    this.timers = parts.timers;
    this.counters = parts.counters;
    this.act = parts.act;
  }

  /** A packet the TUN driver handed over as a copy: the reference path. */
  sendPacket(packet: Uint8Array): void {
    if (!ipHeaderFits(packet, packet.length)) {
      this.counters.tunMalformed++;
      return;
    }
    const peer = this.allowedIps.lookupPacketDestination(packet);
    if (peer === undefined || peer.tunnel === null) return;
    this.act(peer, peer.tunnel.encapsulate(packet), null, null);
  }

  /**
   * The fast path for packets the TUN driver read into a ring slot: seal in
   * place and queue for sendmmsg; anything unusual (no session yet, a rekey
   * due) takes the reference path with a copy.
   */
  sendSlotPacket(slot: TransportSlot, length: number): void {
    // packetArea runs to the slot's end: past `length` lie a previous packet's bytes, never to be routed on.
    if (!ipHeaderFits(slot.packetArea, length)) {
      this.counters.tunMalformed++;
      return;
    }
    const peer = this.allowedIps.lookupPacketDestination(slot.packetArea);
    if (peer === undefined || peer.tunnel === null) return;
    const endpoint = peer.endpoint;
    if (this.transportBatch !== null && endpoint !== null) {
      if (!this.transportBatch.seal(peer.tunnel, slot, length, peer, endpoint)) this.act(peer, peer.tunnel.encapsulate(slot.packetArea.subarray(0, length)), null, null);
      return;
    }
    const sealed = endpoint === null ? 0 : peer.tunnel.sealTransport(slot, length);
    if (sealed === 0) {
      this.act(peer, peer.tunnel.encapsulate(slot.packetArea.subarray(0, length)), null, null);
      return;
    }
    this.batchSender.add(slot, sealed, endpoint!, peer, peer.localSource);
    this.timers.touched(peer);
  }

  /** A datagram the crypto workers sealed, in its turn. */
  sealed(peer: Peer, slot: TransportSlot, datagramLength: number, endpoint: Endpoint): void {
    this.batchSender.add(slot, datagramLength, endpoint, peer, peer.localSource);
    this.timers.touched(peer);
  }

  /** The end of a TUN or UDP batch: the workers' packets in order, one sendmmsg, timers once per peer. */
  flush(): void {
    this.transportBatch?.finish();
    this.batchSender.flush();
    this.timers.flushTouched();
  }
}
