/**
 * When to refresh a TURN allocation, from the LIFETIME the server granted:
 * ALLOCATION_REFRESH_MARGIN_MS before it ends, or at half of it when that is
 * sooner, always within [MIN, MAX]_ALLOCATION_REFRESH_DELAY_MS (see
 * constants.ts). Any input, even NaN or negative, gives a sane delay.
 */
import { ALLOCATION_REFRESH_MARGIN_MS, MAX_ALLOCATION_REFRESH_DELAY_MS, MIN_ALLOCATION_REFRESH_DELAY_MS } from './constants.js';

export function allocationRefreshDelayMs(lifetimeSeconds: number): number {
  if (!Number.isFinite(lifetimeSeconds) || lifetimeSeconds <= 0) return MIN_ALLOCATION_REFRESH_DELAY_MS;
  const lifetimeMs = lifetimeSeconds * 1000;
  const wanted = Math.min(lifetimeMs - ALLOCATION_REFRESH_MARGIN_MS, lifetimeMs / 2);
  return Math.round(Math.min(MAX_ALLOCATION_REFRESH_DELAY_MS, Math.max(MIN_ALLOCATION_REFRESH_DELAY_MS, wanted)));
}
