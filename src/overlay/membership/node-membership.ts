/**
 * The daemon's side of membership: pick the backend from the config, ask it
 * for the slice, set the global overlay up with it, and turn its peer changes
 * into AddPeer/RemovePeer requests through the control queue (so they
 * serialise with everything else the node is asked). With etcd, the node's
 * own record (endpoint, service subnets, NAT candidates, isolation members) is re-checked every
 * MEMBERSHIP_PUBLISH_CHECK_MS and written only when it changed.
 */
import { createSocket } from 'node:dgram';
import type { Logger } from '../../device/index.js';
import { addPeerRequestsFromConfig, setupRequestFromConfig, type NodeConfig } from '../config-file.js';
import { MAX_ADVERTISED_CANDIDATES, MEMBERSHIP_PUBLISH_CHECK_MS } from '../constants.js';
import { OverlayError } from '../errors.js';
import type { MembershipStatusView, Request, Response, StatusSnapshot } from '../protocol.js';
import { EtcdMembership } from './etcd.js';
import type { LocalRecord, Membership, PeerSink } from './membership.js';
import { StaticMembership } from './static.js';

export interface MembershipHost {
  /** The engine's identity and status (read only). */
  publicKey: string;
  instanceId: string;
  status(): StatusSnapshot;
  /** Send a request through the daemon's control queue. */
  submit(request: Request): Promise<Response>;
  /** Mark the config file's peers (the engine treats them specially on restart). */
  setConfigPeers(keys: Iterable<string>): void;
  /** Start a handshake with a peer now. */
  greetPeer(publicKey: string): void;
  /** This node's isolation networks and their members' addresses. */
  localIsolation(): Record<string, string[]>;
}

export interface NodeMembership {
  readonly membership: Membership;
  /** The SetupGlobalOverlay answer's bridge name. */
  readonly bridgeName: string | null;
  /** Stop publishing and watching; `revoke` withdraws this node from its peers now. */
  stop(revoke: boolean): Promise<void>;
}

/** What a node without a config (or before it is applied) reports. */
export const STATIC_MEMBERSHIP_VIEW: MembershipStatusView = Object.freeze({ backend: 'static', healthy: true, member: true, revision: null }) as MembershipStatusView;

function unwrap(response: Response, what: string): Response {
  if (response.type === 'Err') throw new OverlayError(`${what}: ${response.message}`);
  return response;
}

/** Apply the config through its membership backend: slice, global overlay, peers, then (etcd) the node's own record. */
export async function startNodeMembership(config: NodeConfig, configPath: string, host: MembershipHost, dataDir: string, log: Logger): Promise<NodeMembership> {
  const etcd = config.membership?.etcd;
  const membership: Membership = etcd === undefined ? new StaticMembership(config.peers) : new EtcdMembership({ config: etcd, dataDir, log });
  const configPeers = addPeerRequestsFromConfig(config);
  host.setConfigPeers(configPeers.map((request) => request.peer.publicKey));

  const setup = setupRequestFromConfig(config, host.instanceId);
  const slice = await membership.start({
    deployment: config.deployment,
    nodeId: setup.instanceId,
    publicKey: host.publicKey,
    clusterCidr: config.clusterCidr,
    ...(config.sliceCidr === undefined ? {} : { sliceCidr: config.sliceCidr }),
    wgPort: setup.wgPort,
  });
  let timer: NodeJS.Timeout | null = null;
  const stop = async (revoke: boolean): Promise<void> => {
    if (timer !== null) clearInterval(timer);
    timer = null;
    await membership.stop(revoke);
  };
  try {
    if (slice !== undefined) setup.sliceCidr = slice;
    const answer = unwrap(await host.submit(setup), `${configPath}: SetupGlobalOverlay`);
    const bridgeName = answer.type === 'BridgeName' ? answer.name : null;

    if (etcd === undefined) {
      await membership.onPeers({
        add: async (_id, peer) => void unwrap(await host.submit({ type: 'AddPeer', peer, scope: 'global' }), `${configPath}: AddPeer`),
        remove: async () => undefined,
      });
      return { membership, bridgeName, stop };
    }

    // Static peers of the file still apply next to the discovered ones.
    for (const request of configPeers) unwrap(await host.submit(request), `${configPath}: AddPeer`);
    const sink: PeerSink = {
      add: async (nodeId, peer) => {
        unwrap(await host.submit({ type: 'AddPeer', peer, scope: 'global' }), `AddPeer for node ${nodeId}`);
        // The peer may have learnt of this node first and have its handshake dropped: answer it now.
        host.greetPeer(peer.publicKey);
      },
      remove: async (nodeId, publicKey) => void unwrap(await host.submit({ type: 'RemovePeer', pubkey: publicKey, scope: 'global' }), `RemovePeer for node ${nodeId}`),
      isolation: async (nodeId, publicKey, networks) =>
        void unwrap(await host.submit({ type: 'SetRemoteIsolation', node: publicKey, networks }), `SetRemoteIsolation for node ${nodeId}`),
    };
    await membership.onPeers(sink);
    const endpoint = etcd.advertiseEndpoint ?? (await advertisedEndpoint(etcd.endpoints[0]!, setup.wgPort, log));
    const natOn = config.nat?.enabled === true;
    const publish = async (): Promise<void> => {
      try {
        await membership.publish(await localRecord(host, endpoint, natOn));
      } catch (error) {
        // etcd away: the maintenance loop reports it and publishes once it is back.
        log.verbose(`membership: publishing: ${(error as Error).message}`);
      }
    };
    await publish();
    timer = setInterval(() => void publish(), MEMBERSHIP_PUBLISH_CHECK_MS);
    timer.unref();
    return { membership, bridgeName, stop };
  } catch (error) {
    await stop(false).catch(() => undefined);
    throw error;
  }
}

async function localRecord(host: MembershipHost, endpoint: string | null, natOn: boolean): Promise<LocalRecord> {
  // Dedicated services route through their own device; the rest through the global one.
  const subnets = new Set(host.status().services.filter((s) => s.mode !== 'dedicated').map((s) => s.subnet));
  let candidates: LocalRecord['candidates'] = [];
  if (natOn) {
    const answer = await host.submit({ type: 'NatStatus' });
    if (answer.type === 'NatStatus') candidates = answer.candidates.slice(0, MAX_ADVERTISED_CANDIDATES);
  }
  return { endpoint, candidates, serviceSubnets: [...subnets].sort(), isolation: host.localIsolation() };
}

/** "ip:wgPort" with the local address the kernel uses to reach etcd (no packet is sent); null when there is none. */
async function advertisedEndpoint(etcdUrl: string, wgPort: number, log: Logger): Promise<string | null> {
  const url = new URL(etcdUrl);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(Number(url.port || 2379), host, () => resolve());
    });
    const address = socket.address().address;
    return address.includes(':') ? `[${address}]:${wgPort}` : `${address}:${wgPort}`;
  } catch (error) {
    log.error(`membership: cannot tell which address reaches etcd at ${etcdUrl} (${(error as Error).message}); advertising no endpoint (set membership.etcd.advertiseEndpoint)`);
    return null;
  } finally {
    socket.close();
  }
}
