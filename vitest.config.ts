import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['policies/**/*.test.ts', 'service-kit/**/*.test.ts', 'egress-proxy/**/*.test.ts', 'executor/**/*.test.ts', 'server/**/*.test.ts', 'images/**/*.test.ts', 'eslint-rules/**/*.test.ts', 'test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          // Tests that need no engine and start no process run in the unit tier.
          exclude: ['test/unit/**', '**/node_modules/**'],
          globalSetup: ['test/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 600_000,
          // Integration tests share one Docker engine; run files one at a time so limits stay honest on 2 cores.
          fileParallelism: false,
        },
      },
    ],
  },
});
