/**
 * Interface names and the SipHash under them.
 *  - SipHash-2-4 against the 64 reference vectors of the SipHash paper's
 *    implementation (key 00..0f, message 00..i-1), and SipHash-1-3 against
 *    the 64 vectors of Rust's libcore test_siphash_1_3 (same key and
 *    messages; bytes of the little-endian u64): the round counts are
 *    parameters, so both check one implementation.
 *  - Names and full hashes printed by rustc 1.95 for ZLayer's
 *    make_interface_name with std's DefaultHasher: ours match Rust's exactly.
 *  - Names never exceed the limit and are deterministic.
 */
import { describe, expect, it } from 'vitest';
import { globalInterfaceName, makeInterfaceName, rustDefaultHashOfStrings, sipHash } from '../../src/overlay/naming.js';
import { MAX_IFNAME_LEN } from '../../src/overlay/constants.js';
import { fuzzSeed, Rng } from '../helpers/fuzz.js';

const KEY = Uint8Array.from({ length: 16 }, (_, i) => i);
const message = (length: number) => Uint8Array.from({ length }, (_, i) => i);

// SipHash-2-4 reference vectors (veorq/SipHash vectors.h, 64-bit output as u64).
const SIPHASH_2_4 = [
  0x726fdb47dd0e0e31n, 0x74f839c593dc67fdn, 0x0d6c8009d9a94f5an, 0x85676696d7fb7e2dn, 0xcf2794e0277187b7n, 0x18765564cd99a68dn,
  0xcbc9466e58fee3cen, 0xab0200f58b01d137n, 0x93f5f5799a932462n, 0x9e0082df0ba9e4b0n, 0x7a5dbbc594ddb9f3n, 0xf4b32f46226bada7n,
  0x751e8fbc860ee5fbn, 0x14ea5627c0843d90n, 0xf723ca908e7af2een, 0xa129ca6149be45e5n, 0x3f2acc7f57c29bdbn, 0x699ae9f52cbe4794n,
  0x4bc1b3f0968dd39cn, 0xbb6dc91da77961bdn, 0xbed65cf21aa2ee98n, 0xd0f2cbb02e3b67c7n, 0x93536795e3a33e88n, 0xa80c038ccd5ccec8n,
  0xb8ad50c6f649af94n, 0xbce192de8a85b8ean, 0x17d835b85bbb15f3n, 0x2f2e6163076bcfadn, 0xde4daaaca71dc9a5n, 0xa6a2506687956571n,
  0xad87a3535c49ef28n, 0x32d892fad841c342n, 0x7127512f72f27ccen, 0xa7f32346f95978e3n, 0x12e0b01abb051238n, 0x15e034d40fa197aen,
  0x314dffbe0815a3b4n, 0x027990f029623981n, 0xcadcd4e59ef40c4dn, 0x9abfd8766a33735cn, 0x0e3ea96b5304a7d0n, 0xad0c42d6fc585992n,
  0x187306c89bc215a9n, 0xd4a60abcf3792b95n, 0xf935451de4f21df2n, 0xa9538f0419755787n, 0xdb9acddff56ca510n, 0xd06c98cd5c0975ebn,
  0xe612a3cb9ecba951n, 0xc766e62cfcadaf96n, 0xee64435a9752fe72n, 0xa192d576b245165an, 0x0a8787bf8ecb74b2n, 0x81b3e73d20b49b6fn,
  0x7fa8220ba3b2ecean, 0x245731c13ca42499n, 0xb78dbfaf3a8d83bdn, 0xea1ad565322a1a0bn, 0x60e61c23a3795013n, 0x6606d7e446282b93n,
  0x6ca4ecb15c5f91e1n, 0x9f626da15c9625f3n, 0xe51b38608ef25f57n, 0x958a324ceb064572n,
];

// Rust libcore test_siphash_1_3 (also the siphasher crate's tests): output bytes, little endian.
const SIPHASH_1_3_LE = [
  'dcc40f055801acab', '93ca577df39bf4c9', '4dd4c74d029bcb82', 'fbf7dde7b80af88b', '2883d388605775cf', '673b53492fd5f9de',
  'a7229fc5502b0dc5', '4011b19b987d92d3', '8e9a298d11959036', 'e43d066cb38ea425', '7f09ff92ee85de79', '52c34df9c118c170',
  'a2d9b457b184a378', 'a7ff29120c766f30', '345df9c011a15a60', '5699512a6dd820d3', '668b907d1add4fcc', '0cd8db639068f29c',
  '3ee673b49c38fc8f', '1c7d298de59d1ff2', '40e0cca6462fdcc0', '44f8452bfeab92b9', '2e8720a39b7bfe7f', '23c1e6da7f0e5a52',
  '8c9c3467b2ae64f4', '79095b702859cd45', 'a51399cae3353e3a', '353bde4a4ec71da9', '0dd06cef02ed0bfb', 'f4e1b14ab43cd988',
  '63e6c543d6110f54', 'bcd1218c1fdd7023', '0db6a7166c7b1581', 'bff98f7ae5b9544d', '3e752a1f78129f75', '916b18bfbea3a1ce',
  '0662a2add308f52c', '5730c3a32d1c10b6', 'a1363aae9674f4b3', '9283107b54576b62', '3115e4993236d2c1', '44d91a3f92c17c66',
  '258813c8fe4f7065', 'a64989c2d180f224', '6b87f8faed1ccac2', '9621049ffc4b16c2', '23d6b168939c6ea1', 'fd14518b9c16fb49',
  '464c07dff843319f', 'b386cc1224affdc6', '8f09520ad149af7e', '9a2f299d5513f31c', '121ff4a2dd304ac4', 'd01ea74389e9fa36',
  'e6bcf0734cb38f31', '80e9a77036bf7aa2', '756d3c24dbc0bcb4', '1315b7fd52d8f823', '088a7da64d5f038f', '48f1e8b7e5d09cd8',
  'ee44a6f7bce6f4f6', 'f237180fd89ac5ae', 'e094664b15f6b2c3', 'a8b3bbb76290199d',
];
const leHexToU64 = (hex: string): bigint => Buffer.from(hex, 'hex').readBigUInt64LE(0);

/**
 * Printed by rustc 1.95.0 running ZLayer's make_interface_name verbatim
 * (std::collections::hash_map::DefaultHasher) and `format!("{:x}", finish())`
 * of the same hasher: [parts, suffix, name, full hash].
 */
const RUST_NAMES: [string[], string, string, string][] = [
  [['a'], 'g', 'zl-a-g', 'ee59452a0d1f9aed'],
  [['zlayer-manager'], 'g', 'zl-4b72278e21-g', '4b72278e21887f17'],
  [['my-very-long-deployment-name-that-goes-on-and-on'], 'g', 'zl-69b24c01df-g', '69b24c01df37078b'],
  [['zlayer', 'manager'], 's', 'zl-27b8fceefd-s', '27b8fceefda64696'],
  [['abcdefghijklmnopqrstuvwxyz', 'abcdefghijklmnopqrstuvwxyz'], 's', 'zl-cedeb133ea-s', 'cedeb133ea8bf7'],
  [['x'], '', 'zl-x', '16b3b3c4b847c778'],
  [['production', '0a1b2c3d'], 'g', 'zl-7fbc4e74dd-g', '7fbc4e74dd3a97ec'],
  [['production', '0a1b2c3d', 'web'], 'b', 'zl-70b71788f0-b', '70b71788f0eadcf2'],
  [['production', '0a1b2c3d', 'shared'], 'sh', 'zl-6ad34532e-sh', '6ad34532ec2ce693'],
  [['production', '0a1b2c3d', 'db'], 'd', 'zl-dcde705128-d', 'dcde705128bc1c78'],
  [['a-very-long-name-without-suffix'], '', 'zl-1933ec09e80c', '1933ec09e80c22f6'],
  [['deployment'], 'elevenchars', 'zl-6fc9045eb43b', '6fc9045eb43b62f2'],
  [['deployment'], 'tenchars10', 'zl-9-tenchars10', '97336c2979875a5c'],
  [['déploiement-über', 'ñ'], 'g', 'zl-eceb46716e-g', 'eceb46716e023304'],
  [[], 'averyveryverylongsuffix', 'zl-5427f0639abb', '5427f0639abb83df'],
  [['', ''], 'g', 'zl---g', '2ba7718e55bdc25b'],
  [['prod', '7'], 'g', 'zl-prod-7-g', '516d59be4446b2d'],
  [['zlayer', 'node-1', 'frontend-service'], 'b', 'zl-28f1288ce7-b', '28f1288ce7159874'],
];

describe('SipHash', () => {
  it('SipHash-2-4 matches the 64 reference vectors', () => {
    for (let i = 0; i < 64; i++) expect(sipHash(KEY, message(i), 2, 4), `length ${i}`).toBe(SIPHASH_2_4[i]);
  });

  it("SipHash-1-3 matches Rust libcore's 64 test_siphash_1_3 vectors", () => {
    for (let i = 0; i < 64; i++) expect(sipHash(KEY, message(i), 1, 3), `length ${i}`).toBe(leHexToU64(SIPHASH_1_3_LE[i]!));
  });

  it('refuses a key that is not 16 bytes', () => {
    expect(() => sipHash(new Uint8Array(15), message(1), 1, 3)).toThrow(/16 bytes/);
  });
});

describe('makeInterfaceName matches Rust DefaultHasher', () => {
  it.each(RUST_NAMES)('%j + %j → %s', (parts, suffix, name, fullHash) => {
    expect(rustDefaultHashOfStrings([...parts, suffix]).toString(16)).toBe(fullHash);
    expect(makeInterfaceName(parts, suffix)).toBe(name);
  });
});

describe('makeInterfaceName: length limit and determinism', () => {
  it('interface_name_never_exceeds_limit', () => {
    const cases: [string[], string][] = [
      [['a'], 'g'],
      [['zlayer-manager'], 'g'],
      [['my-very-long-deployment-name-that-goes-on-and-on'], 'g'],
      [['zlayer', 'manager'], 's'],
      [['abcdefghijklmnopqrstuvwxyz', 'abcdefghijklmnopqrstuvwxyz'], 's'],
      [['x'], ''],
    ];
    for (const [parts, suffix] of cases) {
      const name = makeInterfaceName(parts, suffix);
      expect(Buffer.byteLength(name), name).toBeLessThanOrEqual(MAX_IFNAME_LEN);
      expect(name.startsWith('zl-')).toBe(true);
    }
  });

  it('interface_name_is_deterministic', () => {
    expect(makeInterfaceName(['zlayer-manager'], 'g')).toBe(makeInterfaceName(['zlayer-manager'], 'g'));
  });

  it('short names are used verbatim; a name of exactly 15 bytes is not hashed, 16 is', () => {
    expect(makeInterfaceName(['prod', '7'], 'g')).toBe('zl-prod-7-g');
    expect(makeInterfaceName(['abcdefghij'], 'g')).toBe('zl-abcdefghij-g'); // 15 bytes
    expect(makeInterfaceName(['abcdefghijk'], 'g')).toMatch(/^zl-[0-9a-f]{1,10}-g$/); // 16 → hashed
    expect(makeInterfaceName(['abcdefghijk'], 'g')).not.toBe('zl-abcdefghijk-g');
  });

  it('different parts or suffixes give different hashed names; part boundaries count', () => {
    const a = makeInterfaceName(['long-deployment-name', 'aa'], 'b');
    const d = makeInterfaceName(['long-deployment-name', 'aa'], 'd');
    expect(a).toMatch(/-b$/);
    expect(d).toMatch(/-d$/);
    expect(d.slice(3, -2)).not.toBe(a.slice(3, -2)); // the suffix is hashed too
    // ("x-y","z") and ("x","y-z") join to the same text but hash differently (0xff separates parts).
    expect(makeInterfaceName(['deployment-name-x', 'y'], 'g')).not.toBe(makeInterfaceName(['deployment-name', 'x-y'], 'g'));
  });

  it('random parts and suffixes: always ≤ 15 bytes, zl- prefix, suffix kept when it fits', () => {
    const rng = new Rng(fuzzSeed());
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789-_é';
    const word = (max: number) => Array.from({ length: rng.int(max + 1) }, () => rng.pick([...alphabet])).join('');
    for (let i = 0; i < 2000; i++) {
      const parts = Array.from({ length: rng.range(0, 4) }, () => word(30));
      const suffix = word(rng.chance(0.8) ? 3 : 14);
      const name = makeInterfaceName(parts, suffix);
      const context = `seed ${rng.seed}: ${JSON.stringify([parts, suffix])} → ${name}`;
      expect(Buffer.byteLength(name), context).toBeLessThanOrEqual(MAX_IFNAME_LEN);
      expect(name.startsWith('zl-'), context).toBe(true);
      expect(makeInterfaceName(parts, suffix), context).toBe(name);
      const suffixCost = 1 + Buffer.byteLength(suffix);
      if (suffix !== '' && 3 + suffixCost < MAX_IFNAME_LEN) expect(name.endsWith(`-${suffix}`), context).toBe(true);
    }
  });

  it('globalInterfaceName is [deployment, instanceId] + "g"', () => {
    expect(globalInterfaceName('prod', '7')).toBe('zl-prod-7-g');
    expect(globalInterfaceName('production', '0a1b2c3d')).toBe('zl-7fbc4e74dd-g');
  });
});
