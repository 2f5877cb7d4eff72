/**
 * STUN (RFC 8489) and the TURN (RFC 8656) parts of it the codec must know:
 * the magic cookie, methods and classes, attribute types and the client's
 * retransmission defaults. Every STUN number lives here.
 */

/** RFC 8489 §5: the fixed value in bytes 4..7 of every STUN message. */
export const STUN_MAGIC_COOKIE = 0x2112a442;
export const STUN_HEADER_LENGTH = 20;
export const STUN_TRANSACTION_ID_LENGTH = 12;
export const STUN_ATTRIBUTE_HEADER_LENGTH = 4;
/** Maximum message length field (16 bits). */
export const STUN_MAX_BODY_LENGTH = 0xffff;

/** STUN methods (12 bits). Binding: RFC 8489; the rest: TURN, RFC 8656 §18. */
export const StunMethod = {
  Binding: 0x001,
  Allocate: 0x003,
  Refresh: 0x004,
  Send: 0x006,
  Data: 0x007,
  CreatePermission: 0x008,
  ChannelBind: 0x009,
} as const;

/** STUN classes, as the bits C1 (0x100) and C0 (0x010) sit in the message type. */
export const StunClass = {
  Request: 0x000,
  Indication: 0x010,
  SuccessResponse: 0x100,
  ErrorResponse: 0x110,
} as const;
export type StunClassValue = (typeof StunClass)[keyof typeof StunClass];

const CLASS_MASK = 0x110;

/** The 14-bit message type for a method and class (RFC 8489 §5, figure 3: the class bits interleave the method bits). */
export function stunMessageType(method: number, cls: StunClassValue): number {
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | cls;
}

/** The method of a message type. */
export function stunMethodOf(type: number): number {
  return (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
}

/** The class of a message type. */
export function stunClassOf(type: number): StunClassValue {
  return (type & CLASS_MASK) as StunClassValue;
}

/** The message types used most, precomputed. */
export const StunMessageType = {
  BindingRequest: stunMessageType(StunMethod.Binding, StunClass.Request),
  BindingSuccess: stunMessageType(StunMethod.Binding, StunClass.SuccessResponse),
  BindingError: stunMessageType(StunMethod.Binding, StunClass.ErrorResponse),
  BindingIndication: stunMessageType(StunMethod.Binding, StunClass.Indication),
} as const;

/** Attribute types. Below 0x8000: comprehension-required; from 0x8000: comprehension-optional. */
export const StunAttributeType = {
  MappedAddress: 0x0001,
  Username: 0x0006,
  MessageIntegrity: 0x0008,
  ErrorCode: 0x0009,
  UnknownAttributes: 0x000a,
  ChannelNumber: 0x000c,
  Lifetime: 0x000d,
  XorPeerAddress: 0x0012,
  Data: 0x0013,
  Realm: 0x0014,
  Nonce: 0x0015,
  XorRelayedAddress: 0x0016,
  RequestedAddressFamily: 0x0017,
  EvenPort: 0x0018,
  RequestedTransport: 0x0019,
  DontFragment: 0x001a,
  MessageIntegritySha256: 0x001c,
  PasswordAlgorithm: 0x001d,
  Userhash: 0x001e,
  XorMappedAddress: 0x0020,
  ReservationToken: 0x0022,
  Priority: 0x0024,
  UseCandidate: 0x0025,
  PasswordAlgorithms: 0x8002,
  AlternateDomain: 0x8003,
  Software: 0x8022,
  AlternateServer: 0x8023,
  Fingerprint: 0x8028,
  IceControlled: 0x8029,
  IceControlling: 0x802a,
} as const;

/** Comprehension-required attributes this codebase understands (a response carrying any other one is discarded, RFC 8489 §6.3). */
export const KNOWN_COMPREHENSION_REQUIRED = new Set<number>(
  Object.values(StunAttributeType).filter((type) => type < 0x8000),
);

/** RFC 8489 §14.5: MESSAGE-INTEGRITY is an HMAC-SHA1, 20 bytes. */
export const MESSAGE_INTEGRITY_LENGTH = 20;
/** RFC 8489 §14.7: FINGERPRINT = CRC-32 XOR 0x5354554e, 4 bytes. */
export const FINGERPRINT_LENGTH = 4;
export const FINGERPRINT_XOR = 0x5354554e;

/** Address families in (XOR-)MAPPED-ADDRESS. */
export const STUN_FAMILY_IPV4 = 0x01;
export const STUN_FAMILY_IPV6 = 0x02;

/** RFC 8489 §6.2.1 defaults: initial RTO, requests sent (Rc), and the final wait as a multiple of RTO (Rm). */
export const STUN_DEFAULT_RTO_MS = 500;
export const STUN_DEFAULT_MAX_REQUESTS = 7;
export const STUN_DEFAULT_LAST_WAIT_MULTIPLIER = 16;

/** RFC 8489 §9: the default port for STUN over UDP. */
export const STUN_DEFAULT_PORT = 3478;

/** Error codes that clients react to (RFC 8489 §14.8, RFC 8656 §19). */
export const StunErrorCode = {
  TryAlternate: 300,
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  UnknownAttribute: 420,
  AllocationMismatch: 437,
  StaleNonce: 438,
  AddressFamilyNotSupported: 440,
  WrongCredentials: 441,
  UnsupportedTransportProtocol: 442,
  PeerAddressFamilyMismatch: 443,
  AllocationQuotaReached: 486,
  ServerError: 500,
  InsufficientCapacity: 508,
} as const;
