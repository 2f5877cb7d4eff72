/**
 * Typed errors of the protocol core. Every failure to parse or authenticate
 * a message is one of these codes; none is thrown out of the Tunnel API.
 */
export type NoiseErrorCode =
  | 'InvalidKey'
  | 'InvalidMessage'
  | 'WrongMessageType'
  | 'InvalidMac1'
  | 'InvalidMac2'
  | 'CookieRequired'
  | 'UnknownPeer'
  | 'WrongPeer'
  | 'UnexpectedMessage'
  | 'DecryptionFailed'
  | 'ReplayedTimestamp'
  | 'InitiationFlood'
  | 'UnknownIndex'
  | 'ReplayedCounter'
  | 'ExpiredKeypair'
  | 'NoSession'
  | 'StagingFull'
  | 'LowOrderPoint';

export class NoiseError extends Error {
  override readonly name = 'NoiseError';
  constructor(
    readonly code: NoiseErrorCode,
    message: string,
  ) {
    super(message);
  }
}
