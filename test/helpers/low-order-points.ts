/**
 * X25519 u-coordinates of small order, as hex. X25519 with any of them gives
 * the all-zero shared secret, so a peer key or ephemeral equal to one must be
 * refused.
 */

/**
 * The canonical encodings (the list libsodium and the WireGuard kernel module
 * reject): 0, 1, the two points of order 8, p-1, p (= 0) and p+1 (= 1).
 * Python's `cryptography` (OpenSSL) refuses every one of them, with and
 * without bit 255 set.
 */
export const LOW_ORDER_POINTS: readonly string[] = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

/**
 * The same points written another way, each with bit 255 set: the two
 * order-8 points plus p, and 2p-1, 2p, 2p+1. libsodium's blocklist has them
 * too; a receiver that clears bit 255 and reduces mod p must still refuse them.
 */
export const NON_CANONICAL_LOW_ORDER_POINTS: readonly string[] = [
  'cdeb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880',
  '4c9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7',
  'd9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  'daffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  'dbffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
];

/** A point's 32 bytes, to write into a key field. */
export const pointBytes = (hex: string): Uint8Array => new Uint8Array(Buffer.from(hex, 'hex'));
