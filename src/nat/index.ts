/** NAT traversal (STUN, candidates, hole punching, relay): not built yet, see the NAT traversal issue. */
export {};
