/**
 * Service bridges: the Linux bridge a service's containers plug their host
 * veths into, with the subnet's first usable address as the containers'
 * gateway.
 *
 * Creation is idempotent (an existing bridge of the name is reused: after a
 * crash the containers' veths are still enslaved to it and keep working),
 * and always ends in the same state: STP off (a one-host bridge cannot loop,
 * and STP's 30 s listening delay would stall every new container), every
 * old address flushed (a bridge must not keep a stale gateway of an earlier
 * subnet), the gateway added, link up. If a step after creation fails, the
 * bridge is deleted again.
 */
import type { Logger } from '../../device/index.js';
import {
  addAddressToLinkByName,
  bridgeMemberCount,
  createBridge,
  deleteBridge,
  flushAddressesOnLinkByName,
  setBridgeStp,
  setLinkUpByName,
} from '../../platform/network-config.js';
import { OverlayError } from '../errors.js';
import { errorMessage } from '../../platform/index.js';

export interface BridgeSpec {
  name: string;
  /** The gateway address (subnet base + 1). */
  gateway: string;
  prefixLength: number;
}

/** Create (or adopt) the bridge and give it exactly the gateway address; deletes it on failure. */
export async function ensureBridge(spec: BridgeSpec, log: Logger): Promise<void> {
  try {
    await createBridge(spec.name);
  } catch (error) {
    throw new OverlayError(`cannot create bridge ${spec.name}: ${errorMessage(error)}`);
  }
  try {
    await setBridgeStp(spec.name, false);
  } catch (error) {
    log.error(`bridge ${spec.name}: cannot turn STP off (new ports may wait 30 s): ${errorMessage(error)}`);
  }
  try {
    await flushAddressesOnLinkByName(spec.name);
    await addAddressToLinkByName(spec.name, spec.gateway, spec.prefixLength);
    await setLinkUpByName(spec.name);
  } catch (error) {
    await deleteBridge(spec.name).catch(() => undefined);
    throw new OverlayError(`cannot configure bridge ${spec.name} with gateway ${spec.gateway}/${spec.prefixLength}: ${errorMessage(error)}`);
  }
}

/** Delete the bridge; absent counts as done. */
export async function removeBridge(name: string, log: Logger): Promise<void> {
  await deleteBridge(name).catch((error: unknown) => log.error(`deleting bridge ${name}: ${errorMessage(error)}`));
}

/** Ports enslaved to the bridge (0 when it does not exist). */
export async function bridgeMembers(name: string): Promise<number> {
  return bridgeMemberCount(name).catch(() => 0);
}
