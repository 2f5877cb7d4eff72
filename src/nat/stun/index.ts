/** STUN (RFC 8489): the message codec, shared with the TURN client, and the Binding client. */
export * from './constants.js';
export * from './message.js';
export * from './client.js';
