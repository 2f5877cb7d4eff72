/**
 * Known-answer vectors for the primitive tests (test/noise/primitives.test.ts).
 *
 * Sources are given per block. Published vectors were transcribed from the
 * RFCs / drafts / the BLAKE2 reference repository and cross-checked against
 * @noble and against Python's `cryptography` package (OpenSSL) or `hashlib`.
 * Vectors marked "python" have no published source: they were produced with
 * Python 3.11's hashlib/hmac (CPython's own BLAKE2 reference code, independent
 * of both @noble and of the OpenSSL build Node links), by the command quoted.
 */

export const SUNSCREEN =
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";

/** RFC 8439 §2.8.2: Example and Test Vector for AEAD_CHACHA20_POLY1305. */
export const RFC8439_2_8_2 = {
  key: '808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f',
  nonce: '070000004041424344454647',
  aad: '50515253c0c1c2c3c4c5c6c7',
  plaintext: SUNSCREEN,
  ciphertext:
    'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6' +
    '3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36' +
    '92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
    '3ff4def08e4b7a9de576d26586cec64b6116',
  tag: '1ae10b594f09e26a7e902ecbd0600691',
} as const;

/** RFC 8439 Appendix A.5: ChaCha20-Poly1305 AEAD Decryption test vector. */
export const RFC8439_A_5 = {
  key: '1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0',
  nonce: '000000000102030405060708',
  /** The nonce's first 4 bytes are zero, so WireGuard's counter is the LE read of 0102030405060708. */
  counter: 0x0807060504030201n,
  aad: 'f33388860000000000004e91',
  plaintext:
    '496e7465726e65742d4472616674732061726520647261667420646f63756d65' +
    '6e74732076616c696420666f722061206d6178696d756d206f6620736978206d' +
    '6f6e74687320616e64206d617920626520757064617465642c207265706c6163' +
    '65642c206f72206f62736f6c65746564206279206f7468657220646f63756d65' +
    '6e747320617420616e792074696d652e20497420697320696e617070726f7072' +
    '6961746520746f2075736520496e7465726e65742d4472616674732061732072' +
    '65666572656e6365206d6174657269616c206f7220746f206369746520746865' +
    '6d206f74686572207468616e206173202fe2809c776f726b20696e2070726f67' +
    '726573732e2fe2809d',
  ciphertext:
    '64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2' +
    '4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf' +
    '332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855' +
    '9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4' +
    'b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e' +
    'af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a' +
    '0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a10' +
    '49e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29' +
    'a6ad5cb4022b02709b',
  tag: 'eead9d67890cbb22392336fea1851f38',
} as const;

/** draft-irtf-cfrg-xchacha-03 Appendix A.3.1: AEAD_XChaCha20_Poly1305. */
export const XCHACHA_A_3_1 = {
  key: '808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f',
  nonce: '404142434445464748494a4b4c4d4e4f5051525354555657',
  aad: '50515253c0c1c2c3c4c5c6c7',
  plaintext: SUNSCREEN,
  ciphertext:
    'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb' +
    '731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452' +
    '2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9' +
    '21f9664c97637da9768812f615c68b13b52e',
  tag: 'c0875924c1c7987947deafd8780acf49',
} as const;

/** RFC 7748 §5.2: X25519 single scalar multiplications (the second u has its high bit set). */
export const RFC7748_5_2 = [
  {
    scalar: 'a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4',
    u: 'e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c',
    out: 'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
  },
  {
    scalar: '4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d',
    u: 'e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493',
    out: '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
  },
] as const;

/** RFC 7748 §5.2: the iterated test, after one iteration (k = u = 9). */
export const RFC7748_ITER_1 = {
  k: '0900000000000000000000000000000000000000000000000000000000000000',
  out: '422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079',
} as const;

/** RFC 7748 §6.1: Curve25519 Diffie-Hellman. */
export const RFC7748_6_1 = {
  alicePrivate: '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a',
  alicePublic: '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
  bobPrivate: '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb',
  bobPublic: 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f',
  shared: '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742',
} as const;

/** BLAKE2s-256 unkeyed: RFC 7693 Appendix B ("abc"); "" and the fox checked with python hashlib.blake2s. */
export const BLAKE2S_256 = [
  { input: 'abc', out: '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982' },
  { input: '', out: '69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9' },
  {
    input: 'The quick brown fox jumps over the lazy dog',
    out: '606beeec743ccbeff6cbcdf5d5302aa855c256c29b88c8ed331ea1a6bf3c8812',
  },
] as const;

/**
 * Keyed BLAKE2s-256, from the BLAKE2 reference repository
 * (testvectors/blake2s-kat.txt, also blake2s-test.txt): key = 00 01 .. 1f,
 * input = 00 01 .. (n-1). Keyed by n.
 */
export const BLAKE2S_KEYED_KAT: ReadonlyArray<{ n: number; out: string }> = [
  { n: 0, out: '48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49' },
  { n: 1, out: '40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1' },
  { n: 2, out: '6bb71300644cd3991b26ccd4d274acd1adeab8b1d7914546c1198bbe9fc9d803' },
  { n: 63, out: 'c65382513f07460da39833cb666c5ed82e61b9e998f4b0c4287cee56c3cc9bcd' },
  { n: 64, out: '8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4' },
  { n: 255, out: '3fb735061abc519dfe979e54c1ee5bfad0a9d858b3315bad34bde999efd724dd' },
];

/**
 * Keyed BLAKE2s with a 16-byte output (WireGuard's MAC), key = 00 01 .. 1f,
 * input = 00 01 .. (n-1). Produced with python:
 *   hashlib.blake2s(bytes(range(n)), key=bytes(range(32)), digest_size=16).hexdigest()
 */
export const BLAKE2S_MAC16_KEY32: ReadonlyArray<{ n: number; out: string }> = [
  { n: 0, out: '9536f9b267655743dee97b8a670f9f53' },
  { n: 1, out: '13bacfb85b48a1223c595f8c1e7e82cb' },
  { n: 63, out: 'ece382a8bd5018f1de5da44b72cea75b' },
  { n: 64, out: 'f1efa90d2547036841ecd3627fafbc36' },
  { n: 65, out: '811ff8686d23a435ecbd0bdafcd27b1b' },
  { n: 255, out: 'cd075928ab7e6883e697fe7fd3ac43ee' },
];

/**
 * Keyed BLAKE2s-128 with a 16-byte key (the shape of MAC2, keyed by a cookie).
 * python: hashlib.blake2s(bytes(range(100)), key=bytes(range(16)), digest_size=16).hexdigest()
 */
export const BLAKE2S_MAC16_KEY16 = { keyLength: 16, n: 100, out: '56301549e674c3b72a0e1dafb7a2c620' } as const;

/**
 * Keyed BLAKE2s-128 with an ASCII key and message.
 * python: hashlib.blake2s(b'The quick brown fox jumps over the lazy dog', key=b'mac1----', digest_size=16).hexdigest()
 */
export const BLAKE2S_MAC16_ASCII = {
  key: 'mac1----',
  input: 'The quick brown fox jumps over the lazy dog',
  out: '9a465a2c1b590a1dc7e49184c41b3951',
} as const;

/**
 * HMAC-BLAKE2s-256 (RFC 2104 with BLAKE2s-256, block size 64). All produced with python:
 *   hmac.new(key, msg, hashlib.blake2s).hexdigest()
 * `keyRange`/`msgRange` n means bytes(range(n)); `msgRepeat` repeats the message.
 */
export const HMAC_BLAKE2S = [
  { name: '32-byte key, "abc"', key: { range: 32 }, msg: { ascii: 'abc' }, out: '82623be5bc0a391b24dce53e67d028eff92d586de0485ac37822e597d049c74f' },
  { name: 'empty key, empty message', key: { range: 0 }, msg: { ascii: '' }, out: 'eaf4bb25938f4d20e72656bbbc7a9bf63c0c18537333c35bdb67db1402661acd' },
  { name: '100-byte key (longer than the block, hashed first)', key: { range: 100 }, msg: { range: 200 }, out: 'c4c95271905c6f69c1dd7c6fbc0cb3735457a660ccc2c4370f28825e7abef5af' },
  {
    name: '64-byte key (exactly one block)',
    key: { range: 64 },
    msg: { ascii: 'The quick brown fox jumps over the lazy dog' },
    out: '6f63987034d431c748d559dc973b62adbd732bf4e23c55298188267797da210c',
  },
  {
    name: '32-byte key, 768-byte message (bytes(range(256))*3)',
    key: { range: 32 },
    msg: { range: 256, repeat: 3 },
    out: 'e2e0532c5337495f6dd3d12b8a24f929e3bdbc285cf37ee61500531b0a75be4e',
  },
] as const;

/**
 * WireGuard's KDF (HKDF over HMAC-BLAKE2s):
 *   t0 = HMAC(key, input); t1 = HMAC(t0, 0x01); t2 = HMAC(t0, t1 || 0x02); t3 = HMAC(t0, t2 || 0x03)
 * Produced with python (H = lambda k, m: hmac.new(k, m, hashlib.blake2s).digest()).
 * The first key is WireGuard's initial chaining key, BLAKE2s("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s").
 */
export const KDF_VECTORS = [
  {
    name: 'initial chaining key, input 00..1f',
    key: '60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36',
    input: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
    t1: '6ff66e10ab4a55ac8144a867fcd9f8ee64d4bd6239223338cb3437cf085ab031',
    t2: '203b22d63d63e35cebb9e40210cf8c1d7f90879428a4c766cda9ef34bb299398',
    t3: '35a7b2fc3e4f59db341dbe588e3b75897980c463d5bbb855f8ed8134ff40133a',
  },
  {
    name: 'zero key, empty input',
    key: '0000000000000000000000000000000000000000000000000000000000000000',
    input: '',
    t1: '8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0',
    t2: '58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e',
    t3: '0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e',
  },
] as const;
