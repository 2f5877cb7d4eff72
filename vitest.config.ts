import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests that spawn bin/tswg or run dist/ in workers must not see stale JavaScript;
    // namespaces and links a killed run left behind go before anything starts.
    globalSetup: ['test/setup/fresh-dist.ts', 'test/setup/reap-leftovers.ts'],
    // Namespace tests share the host's network stack and wireguard-go; run files one at a time.
    fileParallelism: false,
    // Generous on a loaded 2-core machine: tests wait for events, and these bounds only matter when one never comes.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 60_000,
    // A flaky test is a bug to fix, not to retry.
    retry: 0,
  },
});
