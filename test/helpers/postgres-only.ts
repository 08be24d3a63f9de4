import { describe } from 'vitest';

/** The server the PostgreSQL-only suites run against; unset, they are skipped (and `npm test` says so). */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL;

/**
 * A suite that needs a real PostgreSQL server (EXPLAIN plans, killed connections, several processes
 * on one database, row locks across connections). Skipped without TEST_DATABASE_URL; the run's last
 * line then names every such suite (test/helpers/postgres-only-notice.ts).
 */
export const describePostgresOnly = describe.skipIf(!TEST_DATABASE_URL);
