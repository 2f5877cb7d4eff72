/**
 * tswg's main entry. The device API (TUN, UDP, UAPI) lands here; until then
 * it re-exports the protocol core so `import { Tunnel } from 'tswg'` works.
 */
export * from './noise/index.js';
