import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import * as schema from './schema/index.js';

export type Schema = typeof schema;
/** A database handle or a transaction: services take either and never commit themselves. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

export type DatabaseOptions =
  | {
      kind: 'postgres';
      url: string;
      /** Where LISTEN connects (a session connection); `url` when unset. */
      listenUrl?: string;
      poolMax?: number;
      connectTimeoutSeconds?: number;
      statementTimeoutMs?: number;
    }
  | {
      kind: 'pglite';
      dataDir?: string;
      /**
       * A dump of a migrated data directory (PGlite's `dumpDataDir`, plain or gzipped) that a new
       * database starts from instead of running initdb: the build's (`PGLITE_SEED` in
       * server/config.ts) or the tests' own. A data directory that already holds a database ignores it.
       */
      seedFile?: string;
    };

export interface Database {
  readonly kind: 'postgres' | 'pglite';
  readonly db: Db;
  /** Resolves when the database answers a trivial query within `timeoutMs`, rejects otherwise. */
  ping(timeoutMs?: number): Promise<void>;
  migrate(): Promise<void>;
  /**
   * Calls `onNotify` for each notification on `channel` until the returned function is called:
   * PostgreSQL LISTEN on a dedicated connection, or PGlite's own. Rejects when LISTEN is unavailable.
   */
  listen(channel: string, onNotify: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

// Migrations sit beside this module in the sources and are copied beside it by the build.
const migrationsFolder = fileURLToPath(new URL('./migrations', import.meta.url));
// Any fixed number: every TaskFlow process migrating the same database takes the same lock.
const MIGRATION_LOCK_KEY = 727_431_001;

export class DatabaseUnavailableError extends Error {
  override name = 'DatabaseUnavailableError';
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DatabaseUnavailableError(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function createDatabase(options: DatabaseOptions): Promise<Database> {
  return options.kind === 'postgres' ? createPostgres(options) : await createPglite(options);
}

function createPostgres(options: Extract<DatabaseOptions, { kind: 'postgres' }>): Database {
  const client = postgres(options.url, {
    max: options.poolMax ?? 10,
    connect_timeout: options.connectTimeoutSeconds ?? 3,
    idle_timeout: 30,
    // postgres.js waits backoff(n) s before reconnecting, n counting failed connections since the last
    // good start-up (by default 0.5-1 × 3^n / 100, up to 20 s), and a waiting query waits that long.
    // Under repeated connection kills n climbs within seconds: keep the wait short so requests proceed.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 0.5),
    onnotice: () => {},
    connection: {
      application_name: 'taskflow',
      // A stuck query or an abandoned transaction must not hold a pooled connection for long.
      statement_timeout: options.statementTimeoutMs ?? 5_000,
      idle_in_transaction_session_timeout: 15_000,
      // JIT compiles a plan on every execution: tens of milliseconds that short queries never win
      // back. The member search's plan is estimated above jit_above_cost (the planner cannot know
      // how few rows a search key reads), and would pay that on every search.
      jit: 'off',
    },
  });
  const db = drizzlePostgres({ client, schema, casing: 'snake_case' });
  // LISTEN holds its connection for the life of the process, outside the pool; postgres.js
  // reconnects it and listens again after a drop.
  let listener: postgres.Sql | null = null;
  return {
    kind: 'postgres',
    db,
    ping: async (timeoutMs = 2500) => {
      await withTimeout(client`select 1`.execute(), timeoutMs);
    },
    migrate: async () => {
      // One dedicated connection holds the advisory lock, so concurrent starts migrate once.
      const lockClient = postgres(options.url, { max: 1, onnotice: () => {} });
      try {
        await lockClient`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
        await migratePostgres(drizzlePostgres({ client: lockClient, casing: 'snake_case' }), {
          migrationsFolder,
        });
        await lockClient`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
      } finally {
        await lockClient.end({ timeout: 5 });
      }
    },
    listen: async (channel, onNotify) => {
      listener ??= postgres(options.listenUrl ?? options.url, {
        max: 1,
        connect_timeout: options.connectTimeoutSeconds ?? 3,
        onnotice: () => {},
        connection: { application_name: 'taskflow-listen' },
      });
      const { unlisten } = await listener.listen(channel, onNotify);
      return async () => {
        await unlisten();
      };
    },
    close: async () => {
      await Promise.all([client.end({ timeout: 5 }), listener?.end({ timeout: 1 })]);
    },
  };
}

async function createPglite(options: Extract<DatabaseOptions, { kind: 'pglite' }>): Promise<Database> {
  // Loaded only for the embedded database: PostgreSQL deployments never need the WASM build.
  const [{ PGlite: Client }, { pg_trgm }, { drizzle: drizzlePglite }, { migrate: migratePglite }] =
    await Promise.all([
      import('@electric-sql/pglite'),
      // The trigram indexes of the task search; PGlite ships pg_trgm but loads only what it is given.
      import('@electric-sql/pglite/contrib/pg_trgm'),
      import('drizzle-orm/pglite'),
      import('drizzle-orm/pglite/migrator'),
    ]);
  if (options.dataDir) mkdirSync(options.dataDir, { recursive: true });
  const fresh = !options.dataDir || !existsSync(join(options.dataDir, 'PG_VERSION'));
  const seed = fresh && options.seedFile && existsSync(options.seedFile) ? options.seedFile : undefined;
  const settings = {
    extensions: { pg_trgm },
    loadDataDir: seed ? new Blob([await readFile(seed)]) : undefined,
  };
  const client: PGlite = options.dataDir ? new Client(options.dataDir, settings) : new Client(settings);
  const db = drizzlePglite({ client, schema, casing: 'snake_case' });
  return {
    kind: 'pglite',
    db,
    ping: async (timeoutMs = 2500) => {
      await withTimeout(db.execute(sql`select 1`), timeoutMs);
    },
    migrate: async () => {
      await migratePglite(db, { migrationsFolder });
    },
    listen: (channel, onNotify) => client.listen(channel, onNotify),
    close: () => client.close(),
  };
}

/** Rows of `execute`, whichever driver ran it (postgres.js returns an array, PGlite `{ rows }`). */
export function rowsOf(result: unknown): unknown[] {
  if (Array.isArray(result)) return result;
  if (result && typeof result === 'object' && 'rows' in result && Array.isArray(result.rows))
    return result.rows;
  return [];
}
