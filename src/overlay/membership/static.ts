/**
 * The static backend: today's behaviour. The slice is the config's (or the
 * engine's default), the peers are the config file's, and anything else
 * arrives over the control API; nothing is published anywhere.
 */
import type { PeerSpec } from '../protocol.js';
import type { LocalRecord, Membership, MembershipStatusView, NodeInfo, PeerSink } from './membership.js';

export class StaticMembership implements Membership {
  private started = false;

  constructor(private readonly peers: readonly PeerSpec[]) {}

  async start(node: NodeInfo): Promise<string | undefined> {
    this.started = true;
    return node.sliceCidr;
  }

  async publish(_record: LocalRecord): Promise<void> {
    // Nothing to publish: other nodes learn of this one from their own config or the control API.
  }

  /** The config's peers, in file order; an error (a peer the engine refuses) propagates, as a bad config must stop the node. */
  async onPeers(sink: PeerSink): Promise<void> {
    for (const peer of this.peers) await sink.add(peer.publicKey, peer);
  }

  status(): MembershipStatusView {
    return { backend: 'static', healthy: true, member: this.started, revision: null };
  }

  async stop(_revoke: boolean): Promise<void> {
    this.started = false;
  }
}
