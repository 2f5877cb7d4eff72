/** The start-up libc check passes against this machine's real libc, and repeatably (no descriptors leak). */
import { readdirSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { selfTestLibc } from '../../src/platform/libc-self-test.js';

describe('libc self-test', () => {
  test('passes on this machine and closes what it opened', () => {
    selfTestLibc();
    const before = readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 50; i++) selfTestLibc();
    expect(readdirSync('/proc/self/fd').length).toBe(before);
  });
});
