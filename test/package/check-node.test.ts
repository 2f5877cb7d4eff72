/** scripts/check-node.sh, which install-deps.sh runs first: passes on this Node, and says what to do when Node is missing. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;
const SCRIPT = join(ROOT, 'scripts/check-node.sh');
const required = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node.replace('>=', '');

describe('scripts/check-node.sh', () => {
  test('accepts the Node running the tests, which meets engines.node', () => {
    const out = spawnSync(SCRIPT, { encoding: 'utf8' });
    expect(out.status, out.stderr).toBe(0);
  });

  test('without node on the PATH: exit 1, naming the version needed and where to get it on Debian 12', () => {
    // A PATH with the shell tools the script uses and no node.
    const bin = mkdtempSync(join(tmpdir(), 'tswg-docs-path-'));
    try {
      for (const tool of ['bash', 'dirname', 'sed', 'sort', 'head']) symlinkSync(spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim(), join(bin, tool));
      const out = spawnSync(join(bin, 'bash'), [SCRIPT], { encoding: 'utf8', env: { PATH: bin } });
      expect(out.status).toBe(1);
      expect(out.stderr).toContain(`Node.js is not installed; tswg needs Node >= ${required}`);
      expect(out.stderr).toMatch(/NodeSource/);
      expect(out.stderr).toMatch(/nodejs\.org\/dist/);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
