import { defineConfig } from 'vitest/config';

// Four projects, runnable alone with `--project <name>` (see the README's Tests section):
// - fast: behaviour over HTTP and through the services, contracts, patches (an in-memory PGlite,
//   or a fresh database on TEST_DATABASE_URL);
// - process: spawned servers and CLIs (start-up, shutdown, faults, several processes);
// - browser: headless Chromium against a live server;
// - nextjs: the packed client in a Next.js app (next build, next start, Chromium).
const shared = {
  pool: 'forks',
  testTimeout: 30_000,
  hookTimeout: 60_000,
} as const;

export default defineConfig({
  test: {
    // Two cores: two test files at a time, each with its own database.
    maxWorkers: 2,
    reporters: ['default'],
    globalSetup: ['test/helpers/postgres-only-notice.ts', 'test/helpers/pglite-snapshot.ts'],
    projects: [
      {
        test: {
          ...shared,
          name: 'fast',
          include: ['test/{api,domain,contract,patches}/**/*.test.ts'],
          // Every file builds its own app on its own database and nothing here mocks a module or
          // changes the environment, so a worker keeps its module cache from file to file instead of
          // importing the server again for each (on PGlite: 170 s instead of 261 s here).
          isolate: false,
        },
      },
      { test: { ...shared, name: 'process', include: ['test/process/**/*.test.ts'] } },
      { test: { ...shared, name: 'browser', include: ['test/browser/**/*.test.ts'] } },
      { test: { ...shared, name: 'nextjs', include: ['test/nextjs/**/*.test.ts'] } },
    ],
  },
});
