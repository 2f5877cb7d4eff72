/** The TURN client (RFC 8656). */
export { TurnClient, TurnError, type TurnClientOptions } from './client.js';
export * from './constants.js';
export { allocationRefreshDelayMs } from './refresh.js';
