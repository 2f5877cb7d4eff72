/**
 * The WireGuard protocol core, free of I/O: primitives, keys, message codecs,
 * the Noise_IKpsk2 handshake, cookies, sessions, replay window and timers,
 * tied together per peer by Tunnel.
 */
export * from './constants.js';
export * from './errors.js';
export type { Primitives } from './primitives.js';
export { nobleBackend } from './noble-backend.js';
export { nodeBackend } from './node-backend.js';
export { sodiumBackend } from './sodium-backend.js';
export { defaultPrimitives, availableBackends } from './default-backend.js';
export { kdf1, kdf2, kdf3 } from './kdf.js';
export * from './keys.js';
export { tai64n, isAfter as tai64nIsAfter } from './tai64n.js';
export * from './messages.js';
export { CookieChecker, CookieGenerator } from './cookie.js';
export { Handshake, readInitiation, wipeInitiationStart, initialState, type HandshakeState, type InitiationStart } from './handshake.js';
export { StaticIdentity } from './identity.js';
export { IndexTable } from './index-table.js';
export { Keypair, Keypairs } from './keypair.js';
export { ReplayWindow, REPLAY_WINDOW_SIZE } from './replay.js';
export { PeerTimers, type TimerName } from './timers.js';
export { TransportSlot } from './transport-slot.js';
export { StagingBudget } from './staging-budget.js';
export { Tunnel, padPacket, paddedLength, OPEN_DECLINED, OPEN_FAILED, OPEN_REPLAYED, type TunnelOptions, type TunnelOutput, type DecapsulateOptions } from './tunnel.js';
export { systemClock, ManualClock, type Clock } from './clock.js';
export { constantTimeEqual, isAllZero, wipe } from './bytes.js';
