/**
 * Every crypto backend this installation has (availableBackends: sodium,
 * node, noble) against published ChaCha20-Poly1305 vectors and against each
 * other, including the in-place transport variants (aeadSealInPlace /
 * aeadOpenInPlace) the zero-allocation data path uses, and the TSWG_CRYPTO
 * selection of the default backend.
 *
 * sodium-native is an optionalDependency that is installed here and on CI:
 * its absence fails the suite rather than silently testing two backends.
 *
 * Vectors: RFC 8439 §2.8.2 and Appendix A.5 (test/noise/vectors.ts), and
 * Project Wycheproof's chacha20_poly1305_test.json (C2SP/wycheproof,
 * testvectors_v1), whose cases with an empty AAD and an arbitrary 12-byte
 * nonce fit the in-place functions (which take no AAD) exactly.
 */
import { spawnSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { describe, expect, it } from 'vitest';
import { counterNonce } from '../../src/noise/bytes.js';
import { AEAD_TAG_SIZE } from '../../src/noise/constants.js';
import { availableBackends } from '../../src/noise/default-backend.js';
import type { Primitives } from '../../src/noise/primitives.js';
import { Rng } from '../helpers/fuzz.js';
import { fromHex, hex } from '../helpers/handshake-fixtures.js';
import { RFC8439_2_8_2, RFC8439_A_5 } from './vectors.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUILT_DEFAULT_BACKEND = `${REPO_ROOT}dist/src/noise/default-backend.js`;
const BACKEND_NAMES = ['sodium', 'node', 'noble'];
/** Random cases per comparison; each case runs every backend's four AEAD functions. */
const RANDOM_CASES = 3000;
const MAX_RANDOM_PLAINTEXT = 2000;
/** Bytes of untouchable guard memory around an in-place view: the functions must stay inside it. */
const GUARD = 16;

/**
 * Wycheproof chacha20_poly1305_test.json, group 1 (ivSize 96), "valid"
 * cases whose aad is empty. tcId for provenance.
 */
const WYCHEPROOF_NO_AAD = [
  { tcId: 2, key: '80ba3192c803ce965ea371d5ff073cf0f43b6a2ab576b208426e11409c09b9b0', iv: '4da5bf8dfd5852c1ea12379d', msg: '', ct: '', tag: '76acb342cf3166a5b63c0c0ea1383c8d' },
  { tcId: 4, key: 'cc56b680552eb75008f5484b4cb803fa5063ebd6eab91f6ab6aef4916a766273', iv: '99e23ec48985bccdeeab60f1', msg: '2a', ct: '3a', tag: 'cac27dec0968801e9f6eded69d807522' },
  { tcId: 10, key: 'e4912cb75a1174345f1a457366f18885fe8460b06478e04be2f7fb4ec9c113e5', iv: '7aa5ad8bf5254762171ec869', msg: '9e4c1d03', ct: 'fe6849aa', tag: '99ad07871b25c27defc31a541bd5c418' },
  { tcId: 26, key: '99b62bd5afbe3fb015bde93f0abf483957a1c3eb3ca59cb50b39f7f8a9cc51be', iv: '9a59fce26df0005e07538656', msg: '42baae5978feaf5c368d14e0', ct: 'ff7dc203b26c467a6b50db33', tag: '578c0f2758c2e14e36d4fc106dcb29b4' },
  {
    tcId: 66,
    key: 'e1731d5854e1b70cb3ffe8b786a2b3ebf0994370954757b9dc8c7bc5354634a3',
    iv: '72cfd90ef3026ca22b7e6e6a',
    msg: 'b9c554cbc36ac18ae897df7beecac1dbeb4eafa156bb60ce2e5d48f05715e678',
    ct: 'ea29afa49d36e8760f5fe19723b9811ed5d519934a440f5081ac430b953b0e21',
    tag: '222541af46b86533c6b68d2ff108a7ea',
  },
  {
    tcId: 72,
    key: '5b1d1035c0b17ee0b0444767f80a25b8c1b741f4b50a4d3052226baa1c6fb701',
    iv: 'd61040a313ed492823cc065b',
    msg: 'd096803181beef9e008ff85d5ddc38ddacf0f09ee5f7e07f1e4079cb64d0dc8f5e6711cd4921a7887de76e2678fdc67618f1185586bfea9d4c685d50e4bb9a82',
    ct: '9a4ef22b181677b5755c08f747c0f8d8e8d4c18a9cc2405c12bb51bb1872c8e8b877678bec442cfcbb0ff464a64b74332cf072898c7e0eddf6232ea6e27efe50',
    tag: '9ff3427a0f32fa566d9ca0a78aefc013',
  },
  {
    tcId: 76,
    key: 'ea1d436f6359caec010789fa94fe08b167c3e497d8917282f47ad2a8f95fd0f1',
    iv: '73fe022202767af834e32126',
    msg:
      'adf9b6df5c5cc9473e0bb579f9a6aad396f93d28bf83e98136f978cfb9d501d09ef778c122b43c876c22e40d74a48d908978465a06be9e80891710c8c2690a76' +
      '2bc9eb8bcb2aa2707db149abafb9c17c1f0b68c7adcea98aebf4c6a39e5a8f693133eaaa5bb0b3708720d7b86424101bad56aa190c67d25fe35a4a34e1f4fd',
    ct:
      'ace9d080f1ae875c559fb3f0830e042a3a21ed7cbe6c5de366a3b0d7511b31425fd43a0af3ba7bb0a299c0f122ac5c677babcd1e1af24f284ead5fbb42aadc36' +
      '65d2c28c818aac133c851efe01dad7d7321b197390e707df69b2a386de1d4cea60c203324b53102f4a760644cda341fdbdc3b5ca0aae74b7411c63a958e742',
    tag: 'aadbe96afff09960024a0be5e94425c6',
  },
] as const;

/**
 * A view of `length` bytes inside a larger buffer filled with a marker, so a
 * function that writes outside its view is caught (slots are views too).
 */
function guardedView(length: number, fill = 0xa5): { view: Uint8Array; buffer: Uint8Array } {
  const buffer = new Uint8Array(length + 2 * GUARD).fill(fill);
  return { view: buffer.subarray(GUARD, GUARD + length), buffer };
}

function guardsIntact(buffer: Uint8Array, fill = 0xa5): boolean {
  for (let i = 0; i < GUARD; i++) if (buffer[i] !== fill || buffer[buffer.length - 1 - i] !== fill) return false;
  return true;
}

/** Seal `plaintext` in place in a fresh guarded buffer; returns ciphertext || tag (a copy). */
function sealInPlace(backend: Primitives, key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const { view, buffer } = guardedView(plaintext.length + AEAD_TAG_SIZE);
  view.set(plaintext);
  backend.aeadSealInPlace(key, nonce, view, view.subarray(0, plaintext.length));
  if (!guardsIntact(buffer)) throw new Error(`${backend.name}.aeadSealInPlace wrote outside its view`);
  return Uint8Array.from(view);
}

/** Open `sealed` in place in a guarded copy; returns the plaintext (a copy), or null, and whether the bytes stayed as they were. */
function openInPlace(backend: Primitives, key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): { plaintext: Uint8Array | null; untouched: boolean } {
  const { view, buffer } = guardedView(sealed.length);
  view.set(sealed);
  const ok = backend.aeadOpenInPlace(key, nonce, view, view.subarray(0, Math.max(0, sealed.length - AEAD_TAG_SIZE)));
  if (!guardsIntact(buffer)) throw new Error(`${backend.name}.aeadOpenInPlace wrote outside its view`);
  return { plaintext: ok ? Uint8Array.from(view.subarray(0, sealed.length - AEAD_TAG_SIZE)) : null, untouched: hex(view) === hex(sealed) };
}

/** ChaCha20-Poly1305 straight from OpenSSL (not through any backend): the independent reference for AAD-less tags. */
function opensslSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_SIZE });
  if (ad.length > 0) cipher.setAAD(ad, { plaintextLength: plaintext.length });
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return new Uint8Array(Buffer.concat([body, cipher.getAuthTag()]));
}

/** Interesting counters: word boundaries and the top of the range, then random 64-bit values. */
function randomCounter(prng: Rng, caseIndex: number): bigint {
  const edges = [0n, 1n, 0xffff_ffffn, 0x1_0000_0000n, (1n << 60n) + 1n, (1n << 64n) - 1n];
  if (caseIndex < edges.length) return edges[caseIndex]!;
  return (BigInt(prng.u32()) << 32n) | BigInt(prng.u32());
}

describe('backend inventory', () => {
  it('has sodium, node and noble (sodium-native is installed here and on CI)', () => {
    // sodium-native is optional for users, not for this suite: a missing or unloadable module must fail here.
    expect(availableBackends.map((b) => b.name)).toEqual(BACKEND_NAMES);
  });
});

describe.each(availableBackends.map((backend) => [backend.name, backend] as const))('%s backend: published vectors', (_name, backend) => {
  const v = RFC8439_2_8_2;
  const key = fromHex(v.key);
  const nonce = fromHex(v.nonce);
  const plaintext = new Uint8Array(Buffer.from(v.plaintext, 'utf8')); // the vector's plaintext is ASCII text

  it('RFC 8439 §2.8.2 in place: the ciphertext is the RFC one (it does not depend on the AAD); the tag is OpenSSL\'s for no AAD', () => {
    const sealed = sealInPlace(backend, key, nonce, plaintext);
    expect(hex(sealed.subarray(0, plaintext.length))).toBe(v.ciphertext);
    expect(hex(sealed)).toBe(hex(opensslSeal(key, nonce, plaintext, new Uint8Array(0))));
    const opened = openInPlace(backend, key, nonce, sealed);
    expect(hex(opened.plaintext)).toBe(hex(plaintext));
  });

  it('RFC 8439 §2.8.2 with its AAD: the published ciphertext and tag through the same library calls the backend makes', () => {
    // The backend API cannot express this nonce with an AAD (aeadSeal takes a counter); the libraries it wraps can.
    const expected = v.ciphertext + v.tag;
    expect(hex(opensslSeal(key, nonce, plaintext, fromHex(v.aad)))).toBe(expected);
    expect(hex(chacha20poly1305(key, nonce, fromHex(v.aad)).encrypt(plaintext))).toBe(expected);
  });

  it('RFC 8439 A.5 (a WireGuard-shaped nonce) through aeadOpen and aeadSeal, with its AAD', () => {
    const a5 = RFC8439_A_5;
    const sealed = fromHex(a5.ciphertext + a5.tag);
    expect(hex(backend.aeadOpen(fromHex(a5.key), a5.counter, sealed, fromHex(a5.aad)))).toBe(a5.plaintext);
    expect(hex(backend.aeadSeal(fromHex(a5.key), a5.counter, fromHex(a5.plaintext), fromHex(a5.aad)))).toBe(a5.ciphertext + a5.tag);
    expect(backend.aeadOpen(fromHex(a5.key), a5.counter, sealed, new Uint8Array(0))).toBeNull();
  });

  it.each(WYCHEPROOF_NO_AAD.map((c) => [c.tcId, c] as const))('Wycheproof tcId %i: in-place seal and open', (_tcId, c) => {
    const sealed = sealInPlace(backend, fromHex(c.key), fromHex(c.iv), fromHex(c.msg));
    expect(hex(sealed)).toBe(c.ct + c.tag);
    expect(hex(openInPlace(backend, fromHex(c.key), fromHex(c.iv), fromHex(c.ct + c.tag)).plaintext)).toBe(c.msg);
  });

  it('aeadSeal(counter) is OpenSSL with the nonce 00000000 || LE64(counter) (on the Wycheproof keys and messages)', () => {
    for (const c of WYCHEPROOF_NO_AAD) {
      const counter = 0x0123_4567_89ab_cdefn;
      const viaCounter = backend.aeadSeal(fromHex(c.key), counter, fromHex(c.msg), new Uint8Array(0));
      expect(hex(viaCounter)).toBe(hex(opensslSeal(fromHex(c.key), counterNonce(counter), fromHex(c.msg), new Uint8Array(0))));
    }
  });
});

describe.each(availableBackends.map((backend) => [backend.name, backend] as const))('%s backend: failures', (_name, backend) => {
  const prng = new Rng(0x7a3e);

  it('a tampered ciphertext or tag: aeadOpen null, aeadOpenInPlace false (the bytes are then unspecified: libsodium wipes them)', () => {
    for (let i = 0; i < 300; i++) {
      const key = prng.bytes(32);
      const counter = randomCounter(prng, i);
      const plaintext = prng.bytes(prng.int(MAX_RANDOM_PLAINTEXT + 1));
      const sealed = backend.aeadSeal(key, counter, plaintext, new Uint8Array(0));
      const tampered = Uint8Array.from(sealed);
      tampered[prng.int(tampered.length)]! ^= 1 << prng.int(8);
      expect(backend.aeadOpen(key, counter, tampered, new Uint8Array(0))).toBeNull();
      expect(openInPlace(backend, key, counterNonce(counter), tampered).plaintext).toBeNull();
    }
  });

  it('wrong key, wrong counter, wrong AAD and short input are refused', () => {
    const key = prng.bytes(32);
    const plaintext = prng.bytes(100);
    const ad = prng.bytes(32);
    const sealed = backend.aeadSeal(key, 7n, plaintext, ad);
    expect(hex(backend.aeadOpen(key, 7n, sealed, ad))).toBe(hex(plaintext));
    expect(backend.aeadOpen(prng.bytes(32), 7n, sealed, ad)).toBeNull();
    expect(backend.aeadOpen(key, 8n, sealed, ad)).toBeNull();
    expect(backend.aeadOpen(key, 7n, sealed, ad.subarray(1))).toBeNull();
    expect(backend.aeadOpen(key, 7n, sealed, new Uint8Array(0))).toBeNull();
    for (const length of [0, 1, AEAD_TAG_SIZE - 1]) {
      expect(backend.aeadOpen(key, 7n, sealed.subarray(0, length), ad)).toBeNull();
      const short = Uint8Array.from(sealed.subarray(0, length));
      expect(backend.aeadOpenInPlace(key, counterNonce(7n), short, short.subarray(0, 0))).toBe(false);
    }
    const inPlace = sealInPlace(backend, key, counterNonce(7n), plaintext);
    expect(openInPlace(backend, key, counterNonce(8n), inPlace).plaintext).toBeNull();
    expect(openInPlace(backend, prng.bytes(32), counterNonce(7n), inPlace).plaintext).toBeNull();
  });
});

describe('backends agree byte for byte on random inputs', () => {
  const [reference, ...others] = [...availableBackends].reverse(); // noble, the pure-JS reference, first

  it(`${RANDOM_CASES} random cases: aeadSeal/aeadOpen (with and without AAD) and the in-place pair (counter and arbitrary nonces)`, () => {
    const prng = new Rng(0x5eed);
    const mismatches: string[] = [];
    for (let i = 0; i < RANDOM_CASES; i++) {
      const key = prng.bytes(32);
      const counter = randomCounter(prng, i);
      const plaintext = prng.bytes(i < 3 ? i : prng.int(MAX_RANDOM_PLAINTEXT + 1));
      const ad = prng.int(2) === 0 ? new Uint8Array(0) : prng.bytes(1 + prng.int(64));
      // Half the in-place cases use WireGuard's nonce, half an arbitrary one (the functions take any 12 bytes).
      const nonce = prng.int(2) === 0 ? counterNonce(counter) : prng.bytes(12);
      const sealed = reference!.aeadSeal(key, counter, plaintext, ad);
      const sealedInPlace = sealInPlace(reference!, key, nonce, plaintext);
      const what = `case ${i}: ${plaintext.length} bytes, AAD ${ad.length}, counter ${counter}`;
      if (hex(sealedInPlace) !== hex(opensslSeal(key, nonce, plaintext, new Uint8Array(0)))) mismatches.push(`${reference!.name} in place vs OpenSSL, ${what}`);
      for (const backend of others) {
        if (hex(backend.aeadSeal(key, counter, plaintext, ad)) !== hex(sealed)) mismatches.push(`${backend.name} aeadSeal, ${what}`);
        if (hex(backend.aeadOpen(key, counter, sealed, ad)) !== hex(plaintext)) mismatches.push(`${backend.name} aeadOpen, ${what}`);
        if (hex(sealInPlace(backend, key, nonce, plaintext)) !== hex(sealedInPlace)) mismatches.push(`${backend.name} aeadSealInPlace, ${what}`);
        if (hex(openInPlace(backend, key, nonce, sealedInPlace).plaintext) !== hex(plaintext)) mismatches.push(`${backend.name} aeadOpenInPlace, ${what}`);
      }
      if (hex(reference!.aeadOpen(key, counter, sealed, ad)) !== hex(plaintext)) mismatches.push(`${reference!.name} aeadOpen, ${what}`);
      if (hex(openInPlace(reference!, key, nonce, sealedInPlace).plaintext) !== hex(plaintext)) mismatches.push(`${reference!.name} aeadOpenInPlace, ${what}`);
      // Without AAD and with WireGuard's nonce, the in-place seal is exactly aeadSeal.
      if (ad.length === 0 && hex(sealInPlace(reference!, key, counterNonce(counter), plaintext)) !== hex(sealed)) mismatches.push(`in place vs aeadSeal, ${what}`);
    }
    expect(mismatches.slice(0, 10)).toEqual([]);
  });

  it('random cookie AEAD cases: xaeadSeal/xaeadOpen (XChaCha20-Poly1305) agree; a tampered tag, nonce or AAD is refused', () => {
    const prng = new Rng(0xc00c1e);
    const mismatches: string[] = [];
    for (let i = 0; i < 300; i++) {
      const key = prng.bytes(32);
      const nonce = prng.bytes(24);
      const plaintext = prng.bytes(i < 2 ? i * 16 : prng.int(65));
      const ad = prng.int(3) === 0 ? new Uint8Array(0) : prng.bytes(16);
      const sealed = reference!.xaeadSeal(key, nonce, plaintext, ad);
      const what = `case ${i}: ${plaintext.length} bytes, AAD ${ad.length}`;
      for (const backend of others) {
        if (hex(backend.xaeadSeal(key, nonce, plaintext, ad)) !== hex(sealed)) mismatches.push(`${backend.name} xaeadSeal, ${what}`);
        if (hex(backend.xaeadOpen(key, nonce, sealed, ad)) !== hex(plaintext)) mismatches.push(`${backend.name} xaeadOpen, ${what}`);
        const tampered = sealed.slice();
        tampered[tampered.length - 1]! ^= 1;
        if (backend.xaeadOpen(key, nonce, tampered, ad) !== null) mismatches.push(`${backend.name} xaeadOpen took a tampered tag, ${what}`);
        if (backend.xaeadOpen(key, prng.bytes(24), sealed, ad) !== null) mismatches.push(`${backend.name} xaeadOpen took another nonce, ${what}`);
        if (backend.xaeadOpen(key, nonce, sealed, prng.bytes(17)) !== null) mismatches.push(`${backend.name} xaeadOpen took another AAD, ${what}`);
      }
    }
    expect(mismatches.slice(0, 10)).toEqual([]);
  });
});

describe('TSWG_CRYPTO picks the default backend', { timeout: 150_000 }, () => {
  /** Import the built default-backend module in a fresh node with TSWG_CRYPTO set (or removed, for undefined). */
  function defaultIn(value: string | undefined): { status: number | null; stdout: string; stderr: string } {
    if (!existsSync(BUILT_DEFAULT_BACKEND)) throw new Error(`${BUILT_DEFAULT_BACKEND} is missing: run \`npm run build\` first`);
    const env = { ...process.env };
    delete env.TSWG_CRYPTO;
    if (value !== undefined) env.TSWG_CRYPTO = value;
    const script = `import(${JSON.stringify(pathToFileURL(BUILT_DEFAULT_BACKEND).href)}).then((m) => console.log(m.defaultPrimitives.name))`;
    // Only matters when it hangs: a Node start-up alone can take seconds on a loaded machine.
    const result = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8', timeout: 50_000 });
    return { status: result.status, stdout: result.stdout.trim(), stderr: result.stderr };
  }

  it.each(BACKEND_NAMES)('TSWG_CRYPTO=%s', (name) => {
    expect(defaultIn(name)).toMatchObject({ status: 0, stdout: name });
  });

  it('unset or empty: the fastest, sodium', () => {
    expect(defaultIn(undefined)).toMatchObject({ status: 0, stdout: 'sodium' });
    expect(defaultIn('')).toMatchObject({ status: 0, stdout: 'sodium' });
  });

  it('an unknown name fails loudly, naming the variable, the value and what is available', () => {
    const result = defaultIn('bogus');
    expect(result.status).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('TSWG_CRYPTO=bogus');
    expect(result.stderr).toMatch(/available: sodium, node, noble/);
  });
});
