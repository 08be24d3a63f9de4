import type { EventListQuery, EventStreamQuery } from '../../../shared/schemas/event.js';
import type { ServiceContext } from '../context.js';
import type { EventFeed } from './feed.js';
import { type EventRow, readEvents } from './read.js';

export { EventFeed, type EventFeedOptions } from './feed.js';
export type { EventRow } from './read.js';

const BATCH = 100;

/** Thrown into a stream when the process shuts down: its client reconnects (elsewhere) and resumes. */
export class StreamClosedError extends Error {
  // The name tRPC's SSE producer treats as an abort: it ends the stream without telling the client it is over.
  override name = 'AbortError';
}

/**
 * The actor's events after `lastEventId` (from the present without it), in id order, as they are
 * committed, until `signal`. Counts against the actor's cap from this call: a stream over it is refused.
 */
export function follow(
  ctx: ServiceContext,
  feed: EventFeed,
  input: EventStreamQuery,
  signal: AbortSignal,
): AsyncGenerator<EventRow> {
  const release = feed.admit(ctx.actor.id);
  return rows(ctx, feed, input, signal, release);
}

async function* rows(
  ctx: ServiceContext,
  feed: EventFeed,
  input: EventStreamQuery,
  signal: AbortSignal,
  release: () => void,
): AsyncGenerator<EventRow> {
  const stop = AbortSignal.any([signal, feed.closed]);
  try {
    let cursor = input.lastEventId ?? (await feed.position());
    while (!stop.aborted) {
      const upTo = await feed.position();
      if (upTo <= cursor) {
        await feed.waitBeyond(cursor, stop, 60_000);
        continue;
      }
      const batch = await readEvents(ctx.tx, ctx.actor, {
        after: cursor,
        upTo,
        project: input.project,
        taskId: input.taskId,
        limit: BATCH,
      });
      for (const row of batch) {
        if (stop.aborted) break;
        yield row;
        cursor = row.entry.id;
      }
      if (batch.length < BATCH && !stop.aborted) cursor = upTo;
    }
    if (feed.closed.aborted && !signal.aborted) throw new StreamClosedError('The server is shutting down');
  } finally {
    release();
  }
}

/** One page of the actor's events after `after`, oldest first, for pollers; never past the horizon. */
export async function page(
  ctx: ServiceContext,
  feed: EventFeed,
  input: EventListQuery,
): Promise<{ items: EventRow[]; nextCursor: string }> {
  const upTo = await feed.position();
  const items = await readEvents(ctx.tx, ctx.actor, {
    after: input.after,
    upTo,
    project: input.project,
    taskId: input.taskId,
    limit: input.limit,
  });
  const last = items.at(-1);
  const next = items.length === input.limit && last ? last.entry.id : Math.max(upTo, input.after);
  return { items, nextCursor: String(next) };
}
