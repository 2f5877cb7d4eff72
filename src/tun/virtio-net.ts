/**
 * The virtio_net_hdr that a TUN device opened with IFF_VNET_HDR puts before
 * every packet (linux/virtio_net.h, the 10-byte legacy form in host byte
 * order). With TUNSETOFFLOAD the kernel may then hand over TCP super-packets
 * of up to 64 KB (gsoType TCPV4/TCPV6, to be cut into gsoSize segments) and
 * packets whose checksum is left to us (NEEDS_CSUM), and accepts the same
 * from us — one write(2) for a whole run of received segments.
 */
export const VIRTIO_NET_HDR_SIZE = 10;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

/**
 * The smallest gso_size we cut a super-packet read from the TUN by: Linux
 * never sends TCP segments below TCP_MIN_SND_MSS (48), so a smaller one is a
 * broken or hostile header that would make one read cost thousands of sends.
 */
export const GSO_MIN_SIZE = 48;
/** The most segments one super-packet may become (wireguard-go's batch size; it drops such reads too). */
export const GSO_MAX_SEGMENTS = 128;

// Field offsets.
export const FLAGS = 0;
export const GSO_TYPE = 1;
export const HDR_LEN = 2;
export const GSO_SIZE = 4;
export const CSUM_START = 6;
export const CSUM_OFFSET = 8;

// TUNSETOFFLOAD flags (linux/if_tun.h).
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;

/** Little-endian 16-bit field (x86-64 and arm64 hosts). */
export function getField(bytes: Uint8Array, at: number): number {
  return bytes[at]! | (bytes[at + 1]! << 8);
}

export function setField(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value & 0xff;
  bytes[at + 1] = value >>> 8;
}
