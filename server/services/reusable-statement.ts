import type { Column, Query, SQL } from 'drizzle-orm';
import type { SelectedFieldsOrdered } from 'drizzle-orm/pg-core';
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
 * `db`. drizzle's version is fixed by the lock file, and test/domain/reusable-statements.test.ts
 * compares every statement built here with the plain drizzle query, so a drizzle release that
 * changes this method, or a `columns` list that does not match its query, fails a test.
 */
export function reusableStatement<TRow, TValues extends object>(
  build: (db: Db) => Renders,
  columns?: Selection,
): ReusableStatement<TRow, TValues> {
  const fields: SelectedFieldsOrdered | undefined =
    columns &&
    Object.entries(columns).map(([key, field]) => ({ path: [key], field }) as SelectedFieldsOrdered[number]);
  let query: Query | undefined;
  return async (db, values) => {
    query ??= build(db).toSQL();
    const statement = db._.session.prepareQuery<{ execute: TRow[]; all: unknown; values: unknown }>(
      query,
      fields,
      'taskflow',
      fields !== undefined,
    );
    return statement.execute(values as Record<string, unknown>);
  };
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
