/** The TCP header fields the offloads read and write (RFC 9293). */

/** IP protocol number of TCP. */
export const TCP_PROTOCOL = 6;
/** Flag bits of the TCP header's 14th byte. */
export const TCP_FIN = 0x01;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_CWR = 0x80;
