import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { migratedPgliteDump } from '../../db/pglite-seed.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A dump of a migrated PGlite data directory (empty on a PostgreSQL run). */
    pgliteSnapshot: string;
  }
}

/**
 * Vitest global setup: on PGlite, migrates one database and dumps its data directory once, so each
 * test file's database starts from the dump instead of running initdb and every migration again
 * (about 3-5 s a database on this machine, against under 1 s to load the dump). Made from the
 * sources under test, not taken from the build, which may be older.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.TEST_DATABASE_URL) {
    project.provide('pgliteSnapshot', '');
    return async () => {};
  }
  const dir = await mkdtemp(join(tmpdir(), 'taskflow-pglite-'));
  const file = join(dir, 'migrated.tar');
  // Not compressed: every test file loads it, and a plain tarball loads faster.
  await writeFile(file, await migratedPgliteDump('none'));
  project.provide('pgliteSnapshot', file);
  return () => rm(dir, { recursive: true, force: true });
}
