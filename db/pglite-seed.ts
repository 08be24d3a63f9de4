import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDatabase } from './client.js';

/**
 * A new PGlite data directory, initialised and migrated the way the server does it, dumped as a
 * tarball: what a new embedded database can load instead of running initdb and every migration.
 */
export async function migratedPgliteDump(compression: 'none' | 'gzip'): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'taskflow-pglite-seed-'));
  try {
    const dataDir = join(dir, 'data');
    const database = await createDatabase({ kind: 'pglite', dataDir });
    await database.migrate();
    await database.close();
    // Dumped from a client of its own: the database's is closed, so nothing is in flight.
    const [{ PGlite }, { pg_trgm }] = await Promise.all([
      import('@electric-sql/pglite'),
      import('@electric-sql/pglite/contrib/pg_trgm'),
    ]);
    const client = await PGlite.create(dataDir, { extensions: { pg_trgm } });
    try {
      return Buffer.from(await (await client.dumpDataDir(compression)).arrayBuffer());
    } finally {
      await client.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
