import { drizzle } from 'drizzle-orm/postgres-js';
import type postgres from 'postgres';
import type { Db } from '../../db/client.js';
import * as schema from '../../db/schema/index.js';

/** A node of `EXPLAIN (FORMAT JSON)`'s plan, the fields the EXPLAIN tests read. */
export interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
  /** With ANALYZE only. */
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
}

/** The plan's nodes, depth first. */
export function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

export interface CapturedQuery {
  query: string;
  params: unknown[];
}

/** TaskFlow's schema on `client`, recording each statement it sends (SQL and parameters) in `into`. */
export function capturingDb(client: postgres.Sql, into: CapturedQuery[]): Db {
  return drizzle({
    client,
    schema,
    casing: 'snake_case',
    logger: { logQuery: (query, params) => into.push({ query, params }) },
  }) as unknown as Db;
}
