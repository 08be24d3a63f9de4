import { Column, is, type Query, SQL } from 'drizzle-orm';
import { type PgPreparedQuery, PgTransaction } from 'drizzle-orm/pg-core';
import type { Db } from '../../db/client.js';
import type { Actor } from '../auth/actor.js';

/** What drizzle's query builders (select, insert, update, delete) all render to. */
interface Renders {
  toSQL(): Query;
}

/** A flat select list or `returning`: output key to column or expression, in the order rendered. */
export type Selection = Record<string, Column | SQL | SQL.Aliased>;

/** Runs a statement built once with the values of its placeholders, on the pool or a transaction. */
export type ReusableStatement<TRow, TValues> = (db: Db, values: TValues) => Promise<TRow[]>;

/**
 * A statement built once and run on whichever session a call has: the pool, or the request's
 * transaction. drizzle's own prepared statements belong to the session that built them, so a
 * statement inside a transaction was built again on every request, and building one (walking its
 * SQL chunks) was about a sixth of a small write's CPU time. Values go in as placeholders
 * (`sql.placeholder(name)`, filled from `values[name]`; drizzle throws on a missing one). Rows come
 * back mapped as drizzle maps them, by `columns`: the same selection the builder renders (`select()`
 * and `returning()` render the table's columns in their order). The statement still runs as a
 * PostgreSQL prepared statement (postgres.js keys those by their text).
 *
 * drizzle has no public way to run a query built once on another session: `.prepare()` binds it to
 * the session that built it, and `execute()` renders the SQL again on every call. So this calls
 * `session.prepareQuery`, the method each query builder's own `execute()` calls, on the session of
 * `db`: once for the pool, on every call in a transaction. Rows are mapped by `mapRows` instead of
 * drizzle's `mapResultRow`, which looks up each column's decoder and walks its path with an iterator
 * for every value of every row (README, Where the time goes). drizzle's version is fixed by the lock file, and
 * test/domain/reusable-statements.test.ts compares every statement built here with the plain drizzle
 * query, so a drizzle release that changes this method, or a `columns` list that does not match its
 * query, fails a test.
 */
export function reusableStatement<TRow, TValues extends object>(
  build: (db: Db) => Renders,
  columns?: Selection,
): ReusableStatement<TRow, TValues> {
  type Prepared = PgPreparedQuery<{ execute: TRow[]; all: unknown; values: unknown }>;
  // With a mapper, drizzle reads rows in array mode and hands them to it; its own field list is unused.
  const map = columns && (mapRows(columns) as (rows: unknown[][]) => TRow[]);
  let query: Query | undefined;
  const prepare = (db: Db): Prepared => {
    query ??= build(db).toSQL();
    return db._.session.prepareQuery(query, undefined, 'taskflow', map !== undefined, map);
  };
  // A transaction's session serves one transaction, so only a pool's statement is kept.
  const onPool = new WeakMap<object, Prepared>();
  return async (db, values) => {
    const params = values as Record<string, unknown>;
    if (inTransaction(db)) return prepare(db).execute(params);
    let statement = onPool.get(db);
    if (!statement) {
      statement = prepare(db);
      onPool.set(db, statement);
    }
    return statement.execute(params);
  };
}

// A function, not an inline `instanceof`, so that `db` keeps its type.
function inTransaction(db: Db): boolean {
  return db instanceof PgTransaction;
}

/** How drizzle reads one selected value from the driver (a column, or an expression's `mapWith`). */
interface Decoder {
  mapFromDriverValue(value: unknown): unknown;
}

/**
 * drizzle's own lookup (utils.js `mapResultRow`): a column decodes itself; an expression, plain or
 * aliased, through the decoder its `mapWith` set (`SQL.decoder`, not in drizzle's types).
 */
function decoderOf(field: Column | SQL | SQL.Aliased): Decoder {
  if (is(field, Column)) return field;
  const expression = is(field, SQL) ? field : field.sql;
  return (expression as unknown as { decoder: Decoder }).decoder;
}

/** Maps rows in array mode to objects keyed as `columns`, each value decoded as drizzle decodes it. */
function mapRows(columns: Selection): (rows: unknown[][]) => Record<string, unknown>[] {
  const keys = Object.keys(columns);
  const decoders = Object.values(columns).map(decoderOf);
  return (rows) =>
    rows.map((row) => {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < keys.length; i++) {
        const value = row[i];
        out[keys[i] as string] = value === null ? null : (decoders[i] as Decoder).mapFromDriverValue(value);
      }
      return out;
    });
}

/**
 * A statement in its two forms, built once each: for admins (who see every row, so no visibility
 * condition) and for everyone else. Returns the form for an actor.
 */
export function perRole<S>(build: (admin: boolean) => S): (actor: Actor) => S {
  const admin = build(true);
  const member = build(false);
  return (actor) => (actor.role === 'admin' ? admin : member);
}
