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
    // Dumped from a client of its own once the database's is closed, so nothing is in flight. A dump
    // copies files and runs no query, so this client needs none of the extensions.
    const { PGlite } = await import('@electric-sql/pglite');
    const client = await PGlite.create(dataDir);
    try {
      return Buffer.from(await (await client.dumpDataDir(compression)).arrayBuffer());
    } finally {
      await client.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
