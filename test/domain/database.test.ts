import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq, sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database } from '../../db/client.js';
import { migratedPgliteDump } from '../../db/pglite-seed.js';
import { auditLog, workers } from '../../db/schema/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { describePostgresOnly } from '../helpers/postgres-only.js';

const serverUrl = process.env.TEST_DATABASE_URL;
const journal = JSON.parse(
  readFileSync(new URL('../../db/migrations/meta/_journal.json', import.meta.url), 'utf8'),
) as { entries: unknown[] };

/** The PostgreSQL error under drizzle's wrapper (`DrizzleQueryError` keeps it as `cause`). */
async function pgError(promise: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    let current = error as { code?: string; message: string; cause?: unknown };
    while (!current.code && current.cause) current = current.cause as typeof current;
    return current;
  }
  throw new Error('the statement succeeded');
}

/** `execute` returns the rows on postgres.js and `{ rows }` on PGlite. */
async function count(database: Database, query: ReturnType<typeof sql>): Promise<number> {
  const result = (await database.db.execute(query)) as unknown as { rows?: { n: number }[] } & {
    n: number;
  }[];
  return (result.rows ?? result)[0]?.n ?? -1;
}

const migrationCount = (database: Database) =>
  count(database, sql`select count(*)::int as n from drizzle.__drizzle_migrations`);
const auditTriggerCount = (database: Database) =>
  count(
    database,
    sql`select count(*)::int as n from pg_trigger where tgrelid = 'audit_log'::regclass and not tgisinternal`,
  );

describe(`the audit log is append-only at the database (${serverUrl ? 'PostgreSQL' : 'PGlite'})`, () => {
  let t: TestDatabase;
  let id: number;

  beforeAll(async () => {
    t = await createTestDatabase();
    const [row] = await t.database.db
      .insert(auditLog)
      .values({ actorId: 'alice', actorType: 'human', action: 'created', taskId: 1, context: { a: 1 } })
      .returning();
    if (!row) throw new Error('no audit row');
    id = row.id;
  });
  afterAll(() => t?.cleanup());

  it('refuses UPDATE audit_log, whatever the client', async () => {
    const raw = await pgError(
      t.database.db.execute(sql`update audit_log set action = 'deleted' where id = ${id}`),
    );
    expect(raw.code).toBe('42501');
    expect(raw.message).toMatch(/append-only: UPDATE/);
    const built = await pgError(
      t.database.db.update(auditLog).set({ actorId: 'mallory' }).where(eq(auditLog.id, id)),
    );
    expect(built.code).toBe('42501');
  });

  it('refuses DELETE FROM audit_log, with or without a WHERE', async () => {
    const one = await pgError(t.database.db.execute(sql`delete from audit_log where id = ${id}`));
    expect(one.code).toBe('42501');
    expect(one.message).toMatch(/append-only: DELETE/);
    const all = await pgError(t.database.db.execute(sql`delete from audit_log`));
    expect(all.code).toBe('42501');
  });

  it('refuses TRUNCATE audit_log', async () => {
    const error = await pgError(t.database.db.execute(sql`truncate audit_log`));
    expect(error.code).toBe('42501');
    expect(error.message).toMatch(/append-only: TRUNCATE/);
  });

  it('rolls back a transaction that tries, leaving the row as it was', async () => {
    const error = await pgError(
      t.database.db.transaction(async (tx) => {
        await tx.insert(auditLog).values({ actorId: 'bob', actorType: 'human', action: 'updated' });
        await tx.execute(sql`update audit_log set context = '{}'::jsonb`);
      }),
    );
    expect(error.code).toBe('42501');
    const rows = await t.database.db.select().from(auditLog);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id, actorId: 'alice', action: 'created', context: { a: 1 } });
  });

  it('still accepts INSERTs', async () => {
    await t.database.db.insert(auditLog).values({ actorId: 'carol', actorType: 'agent', action: 'started' });
    expect(await t.database.db.$count(auditLog)).toBe(2);
  });

  it('runs migrations again as a no-op (every start migrates)', async () => {
    await t.database.migrate();
    await t.database.migrate();
    expect(await migrationCount(t.database)).toBe(journal.entries.length);
    // The two append-only guards, the task snapshot, the commit notification and the webhook
    // fan-out, once each.
    expect(await auditTriggerCount(t.database)).toBe(5);
    expect(await t.database.db.$count(auditLog)).toBe(2);
  });
});

describe('PGlite in a data directory', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'taskflow-pglite-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('keeps data and the append-only rule across close and reopen', async () => {
    const first = await createDatabase({ kind: 'pglite', dataDir });
    try {
      await first.migrate();
      await first.db.insert(workers).values({ id: 'alice', name: 'Alice' });
      await first.db
        .insert(auditLog)
        .values({ actorId: 'alice', actorType: 'human', action: 'worker_registered' });
    } finally {
      await first.close();
    }

    const second = await createDatabase({ kind: 'pglite', dataDir });
    try {
      await second.migrate();
      expect(await second.db.select({ id: workers.id, name: workers.name }).from(workers)).toEqual([
        { id: 'alice', name: 'Alice' },
      ]);
      expect(await second.db.$count(auditLog)).toBe(1);
      expect(await migrationCount(second)).toBe(journal.entries.length);
      expect((await pgError(second.db.execute(sql`delete from audit_log`))).code).toBe('42501');
      await second.ping();
    } finally {
      await second.close();
    }
  });
});

describe('PGlite from a seed (what `npm run build` dumps for a first `npm start`)', () => {
  const work = mkdtempSync(join(tmpdir(), 'taskflow-pglite-seed-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('starts a new data directory migrated from the seed, and never loads it over an existing one', async () => {
    const seedFile = join(work, 'seed.tar.gz');
    writeFileSync(seedFile, await migratedPgliteDump('gzip'));
    const dataDir = join(work, 'data');

    const first = await createDatabase({ kind: 'pglite', dataDir, seedFile });
    try {
      // Every migration is there before this database ran one.
      expect(await migrationCount(first)).toBe(journal.entries.length);
      await first.db.insert(workers).values({ id: 'bob', name: 'Bob' });
    } finally {
      await first.close();
    }

    const second = await createDatabase({ kind: 'pglite', dataDir, seedFile });
    try {
      await second.migrate();
      expect(await second.db.select({ id: workers.id }).from(workers)).toEqual([{ id: 'bob' }]);
      expect(await migrationCount(second)).toBe(journal.entries.length);
    } finally {
      await second.close();
    }
  });
});

describePostgresOnly('migrating one PostgreSQL database from several processes', () => {
  let admin: postgres.Sql;
  const names: string[] = [];
  const opened: Database[] = [];

  /** A new, empty database on the test server, dropped after the file. */
  async function freshDatabaseUrl(): Promise<string> {
    const name = `taskflow_test_${randomBytes(6).toString('hex')}`;
    await admin.unsafe(`create database "${name}"`);
    names.push(name);
    const url = new URL(serverUrl as string);
    url.pathname = `/${name}`;
    return url.href;
  }
  const open = async (url: string) => {
    const database = await createDatabase({ kind: 'postgres', url, poolMax: 2 });
    opened.push(database);
    return database;
  };

  beforeAll(() => {
    admin = postgres(serverUrl as string, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await Promise.all(opened.map((database) => database.close()));
    for (const name of names) await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin?.end();
  });

  it('lets two concurrent migrate() calls on a fresh database both succeed, applying each migration once', async () => {
    const url = await freshDatabaseUrl();
    const [a, b] = await Promise.all([open(url), open(url)]);
    await Promise.all([a.migrate(), b.migrate()]);
    expect(await migrationCount(a)).toBe(journal.entries.length);
    expect(await auditTriggerCount(b)).toBe(5);
    await a.db.insert(auditLog).values({ actorId: 'x', actorType: 'human', action: 'created' });
    expect((await pgError(b.db.execute(sql`update audit_log set actor_id = 'y'`))).code).toBe('42501');
  });

  it('waits for the advisory lock while another process holds it', async () => {
    const url = await freshDatabaseUrl();
    const holder = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const reserved = await holder.reserve();
      // MIGRATION_LOCK_KEY in db/client.ts.
      await reserved`select pg_advisory_lock(727431001)`;
      let done = false;
      const migrating = (await open(url)).migrate().then(() => {
        done = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(done).toBe(false);
      await reserved`select pg_advisory_unlock(727431001)`;
      reserved.release();
      await migrating;
      expect(await migrationCount(await open(url))).toBe(journal.entries.length);
    } finally {
      await holder.end({ timeout: 5 });
    }
  });
});
