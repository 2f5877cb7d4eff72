/**
 * Which datagrams of a send batch may go as one UDP GSO send: a run to the
 * same destination (from the same source), all of the first one's size but
 * the last, which may be shorter, within the kernel's limits.
 */

/**
 * Segments per GSO send: the kernel's UDP_MAX_SEGMENTS (1 << 6 in
 * include/linux/udp.h; a send with more fails with EINVAL), wireguard-go's
 * figure too.
 */
export const UDP_GSO_MAX_SEGMENTS = 64;

/**
 * Payload bytes per GSO send: one IP packet's worth (65,535 bytes with its
 * headers; the IPv6 header is not counted in its payload length).
 */
export function gsoMaxBytes(family: 4 | 6): number {
  return family === 4 ? 65_535 - 20 - 8 : 65_535 - 8;
}

/**
 * How many datagrams from `start` (before `end`) can leave in one send:
 * `sameRoute(a, b)` says whether datagrams a and b go to the same place
 * from the same source. Always at least 1.
 */
export function gsoRunLength(lengths: Int32Array, start: number, end: number, sameRoute: (a: number, b: number) => boolean, maxBytes: number): number {
  const segmentSize = lengths[start]!;
  let bytes = segmentSize;
  let run = 1;
  while (start + run < end && run < UDP_GSO_MAX_SEGMENTS) {
    const next = start + run;
    const length = lengths[next]!;
    // Only the last datagram may be shorter: one shorter than the first ends the run after it.
    if (length > segmentSize || length === 0 || lengths[next - 1] !== segmentSize || bytes + length > maxBytes || !sameRoute(start, next)) break;
    bytes += length;
    run++;
  }
  return run;
}
