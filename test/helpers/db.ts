import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { inject } from 'vitest';
import { createDatabase, type Database } from '../../db/client.js';

export interface TestDatabase {
  database: Database;
  /** The connection URL when on a real server, null on PGlite. */
  url: string | null;
  cleanup(): Promise<void>;
}

/**
 * An isolated, migrated database for one test file: a fresh database on the server named by
 * TEST_DATABASE_URL, or an in-memory PGlite otherwise. `cleanup` removes it.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const serverUrl = process.env.TEST_DATABASE_URL;
  if (!serverUrl) {
    // The migrated dump of the global setup (pglite-snapshot.ts): migrating finds nothing to do.
    const database = await createDatabase({ kind: 'pglite', seedFile: inject('pgliteSnapshot') });
    await database.migrate();
    return { database, url: null, cleanup: () => database.close() };
  }
  const name = `taskflow_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const database = await createDatabase({ kind: 'postgres', url: url.href, poolMax: 20 });
  try {
    await database.migrate();
  } catch (error) {
    await database.close();
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.end();
    throw error;
  }
  return {
    database,
    url: url.href,
    cleanup: async () => {
      await database.close();
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    },
  };
}
