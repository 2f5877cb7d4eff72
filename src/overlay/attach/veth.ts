/**
 * Plug a container into a network with one veth pair:
 *
 *   1. stale veth-<pid>-<tag> / vc-<pid>-<tag> of an earlier attempt removed
 *   2. the pair created in the node's namespace, both ends at the overlay MTU
 *      (a container MTU above the tunnel's would blackhole full-size packets)
 *   3. vc-… moved into the container's namespace (through the pinned fd) and
 *      renamed eth0/eth1 in the same netlink request: a rename after the move
 *      would need the namespace again, and a container's init may have exited
 *   4. inside: the address, the link and lo up, and (bridged) a default route
 *      via the bridge gateway
 *   5. outside: the host end up, then enslaved to the bridge, or (bridgeless,
 *      the global overlay's eth1) a host route to the container's address
 *      with the node IP as source
 *
 * On any failure the host end is deleted (which deletes its peer wherever it
 * is) and the error names the step.
 */
import { withNetnsFd, addLinkToBridge, createVethPair, deleteLinkByName, moveLinkIntoNetnsFdAndRename, replaceRouteViaDev, setLinkMtuByName, setLinkUpByName } from '../../platform/network-config.js';
import { HOST_VETH_PREFIX, PENDING_VETH_PREFIX } from '../constants.js';
import { OverlayError } from '../errors.js';
import { errorMessage } from '../../platform/index.js';

export interface VethPlan {
  pid: number;
  nsFd: number;
  /** s (service network, eth0) or g (global overlay, eth1). */
  tag: string;
  containerIfname: string;
  ip: string;
  prefixLength: number;
  mtu: number;
  /** The bridge to enslave the host end to, with the containers' gateway; null for a routed (bridgeless) link. */
  bridge: { name: string; gateway: string } | null;
  /** Source of the host route on a routed link. */
  nodeIp: string;
}

export const hostVethName = (pid: number, tag: string): string => `${HOST_VETH_PREFIX}${pid}-${tag}`;
const pendingVethName = (pid: number, tag: string): string => `${PENDING_VETH_PREFIX}${pid}-${tag}`;

async function step<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw new OverlayError(`${what}: ${errorMessage(error)}`);
  }
}

/** Both ends of a pid's veth of this tag, wherever they are; absent counts as done. */
export async function removeVeth(pid: number, tag: string): Promise<void> {
  await deleteLinkByName(hostVethName(pid, tag));
  await deleteLinkByName(pendingVethName(pid, tag));
}

export async function plugVeth(plan: VethPlan): Promise<void> {
  const host = hostVethName(plan.pid, plan.tag);
  const pending = pendingVethName(plan.pid, plan.tag);
  const family = plan.ip.includes(':') ? 6 : 4;
  await step(`removing stale ${host}`, () => removeVeth(plan.pid, plan.tag));
  await step(`creating veth pair ${host}/${pending}`, () => createVethPair(host, pending));
  try {
    await step(`setting MTU ${plan.mtu} on ${host}`, async () => {
      await setLinkMtuByName(host, plan.mtu);
      await setLinkMtuByName(pending, plan.mtu);
    });
    await step(`moving ${pending} into the namespace of process ${plan.pid} as ${plan.containerIfname}`, () =>
      moveLinkIntoNetnsFdAndRename(pending, plan.nsFd, plan.containerIfname),
    );
    await step(`configuring ${plan.containerIfname} in process ${plan.pid}`, () =>
      withNetnsFd(plan.nsFd, async (ns) => {
        await ns.addAddressToLinkByName(plan.containerIfname, plan.ip, plan.prefixLength);
        await ns.setLinkUpByName(plan.containerIfname);
        await ns.setLinkUpByName('lo');
        if (plan.bridge !== null) await ns.addDefaultRouteViaGateway(plan.bridge.gateway);
      }),
    );
    await step(`bringing ${host} up`, () => setLinkUpByName(host));
    if (plan.bridge !== null) {
      const bridge = plan.bridge.name;
      await step(`adding ${host} to bridge ${bridge}`, () => addLinkToBridge(host, bridge));
    } else {
      await step(`routing ${plan.ip} to ${host}`, () => replaceRouteViaDev(plan.ip, family === 4 ? 32 : 128, host, plan.nodeIp));
    }
  } catch (error) {
    await removeVeth(plan.pid, plan.tag).catch(() => undefined);
    throw error;
  }
}
