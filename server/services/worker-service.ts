import { asc, eq, getTableColumns, sql } from 'drizzle-orm';
import { LRUCache } from 'lru-cache';
import type { Db } from '../../db/client.js';
import { workers } from '../../db/schema/index.js';
import type { Role, WorkerType } from '../../shared/enums.js';
import type { WorkerRegisterInput, WorkerUpdateInput } from '../../shared/schemas/worker.js';
import type { Actor } from '../auth/actor.js';
import type { VerifiedClaims } from '../auth/verifier.js';
import { forbidden, invalid, notFound } from '../errors.js';
import * as audit from './audit-service.js';
import type { ServiceContext } from './context.js';
import { workerEmailFor } from './visibility.js';

export type WorkerRow = typeof workers.$inferSelect;

/**
 * Turns verified claims into an actor, registering a human on first sight. Known workers are cached
 * for a minute, so an ordinary request does not write to (or even read) the database.
 */
export class WorkerRegistry {
  private readonly known: LRUCache<string, WorkerType>;

  /**
   * `ttlMs` bounds how long another instance may act on a worker's old type after an admin changed it
   * (the instance that served the change forgets at once), and how often `lastSeenAt` is refreshed.
   */
  constructor(options: { ttlMs?: number; max?: number } = {}) {
    this.known = new LRUCache({ max: options.max ?? 50_000, ttl: options.ttlMs ?? 60_000 });
  }

  async actorFor(db: Db, claims: VerifiedClaims, requestId: string): Promise<Actor> {
    let type = this.known.get(claims.sub);
    if (type === undefined) {
      type = await db.transaction(async (tx) => this.register(tx, claims, requestId));
      this.known.set(claims.sub, type);
    }
    return { id: claims.sub, type, role: claims.role, email: claims.email, name: claims.name ?? claims.sub };
  }

  forget(workerId: string): void {
    this.known.delete(workerId);
  }

  private async register(tx: Db, claims: VerifiedClaims, requestId: string): Promise<WorkerType> {
    const [row] = await tx
      .insert(workers)
      .values({
        id: claims.sub,
        type: claims.declaredType ?? 'human',
        name: claims.name ?? claims.sub,
        email: claims.email,
      })
      .onConflictDoUpdate({
        target: workers.id,
        set: {
          lastSeenAt: sql`now()`,
          // A human's profile follows the auth server; an agent's is what the admin registered.
          ...(claims.name
            ? { name: sql`case when ${workers.type} = 'human' then excluded.name else ${workers.name} end` }
            : {}),
          ...(claims.email
            ? {
                email: sql`case when ${workers.type} = 'human' then excluded.email else ${workers.email} end`,
              }
            : {}),
        },
      })
      // xmax is 0 only for a row this statement inserted.
      .returning({ type: workers.type, inserted: sql<boolean>`(xmax = 0)` });
    if (!row) throw new Error('upsert returned no row');
    if (row.inserted) {
      const actor: Actor = {
        id: claims.sub,
        type: row.type,
        role: claims.role,
        email: claims.email,
        name: claims.name ?? claims.sub,
      };
      await audit.record(
        { tx, actor, requestId },
        {
          action: 'worker_registered',
          context: { workerId: claims.sub, type: row.type, via: 'first-request' },
        },
      );
    }
    return row.type;
  }
}

/** Worker columns with the email as the actor may read it. */
function columnsFor(ctx: ServiceContext) {
  return { ...getTableColumns(workers), email: workerEmailFor(ctx.actor) };
}

export async function get(ctx: ServiceContext, input: { id: string }): Promise<WorkerRow> {
  const [row] = await ctx.tx.select(columnsFor(ctx)).from(workers).where(eq(workers.id, input.id));
  if (!row) throw notFound(`Worker ${input.id} not found`);
  return row;
}

/** The caller as the registry knows them, with the role from their token. */
export async function me(ctx: ServiceContext): Promise<WorkerRow & { role: Role }> {
  return { ...(await get(ctx, ctx.actor)), role: ctx.actor.role };
}

export function list(ctx: ServiceContext): Promise<WorkerRow[]> {
  return ctx.tx.select(columnsFor(ctx)).from(workers).orderBy(asc(workers.id));
}

/** Admins register agents (or turn a known id into an agent); the registry's cache must then forget it. */
export async function register(ctx: ServiceContext, input: WorkerRegisterInput): Promise<WorkerRow> {
  if (ctx.actor.role !== 'admin') throw forbidden('Only an admin may register workers');
  const values = {
    type: 'agent' as const,
    name: input.name,
    email: input.email ?? null,
    capabilities: input.capabilities ?? [],
  };
  const [row] = await ctx.tx
    .insert(workers)
    .values({ id: input.id, ...values })
    .onConflictDoUpdate({ target: workers.id, set: values })
    .returning();
  if (!row) throw new Error('upsert returned no row');
  await audit.record(ctx, {
    action: 'worker_registered',
    context: { workerId: row.id, type: row.type, capabilities: row.capabilities },
  });
  return row;
}

/** Admins set a worker's name or capabilities (what claimNext matches tasks against). */
export async function update(ctx: ServiceContext, input: WorkerUpdateInput): Promise<WorkerRow> {
  if (ctx.actor.role !== 'admin') throw forbidden('Only an admin may change workers');
  const values: Partial<Pick<WorkerRow, 'name' | 'capabilities'>> = {};
  if (input.name !== undefined) values.name = input.name;
  if (input.capabilities !== undefined) values.capabilities = input.capabilities;
  if (Object.keys(values).length === 0) throw invalid('nothing to update: give name or capabilities');
  const [row] = await ctx.tx.update(workers).set(values).where(eq(workers.id, input.id)).returning();
  if (!row) throw notFound(`Worker ${input.id} not found`);
  await audit.record(ctx, { action: 'worker_updated', context: { workerId: row.id, ...values } });
  return row;
}
