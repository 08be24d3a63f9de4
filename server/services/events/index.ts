import type { EventListQuery, EventStreamQuery } from '../../../shared/schemas/event.js';
import type { ServiceContext } from '../context.js';
import type { Subscriber } from './fanout.js';
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
 * committed, until `signal`: read from the table while behind the shared feed, then handed out by
 * it. They come in batches (each non-empty): what arrived together, so a stream writes it to its
 * client at once. Counts against the actor's cap from this call: a stream over it is refused.
 * Resolves once the stream's start is fixed, so a change the caller commits after that (after the
 * response starts) is in it, even when this stream is the one that starts the process's feed.
 */
export async function follow(
  ctx: ServiceContext,
  feed: EventFeed,
  input: EventStreamQuery,
  signal: AbortSignal,
): Promise<AsyncGenerator<EventRow[]>> {
  const release = feed.admit(ctx.actor.id);
  try {
    const present = await feed.position();
    return batches(ctx, feed, input, input.lastEventId ?? present, signal, release);
  } catch (error) {
    release();
    throw error;
  }
}

async function* batches(
  ctx: ServiceContext,
  feed: EventFeed,
  input: EventStreamQuery,
  after: number,
  signal: AbortSignal,
  release: () => void,
): AsyncGenerator<EventRow[]> {
  const stop = AbortSignal.any([signal, feed.closed]);
  const filter = { project: input.project, taskId: input.taskId };
  let cursor = after;
  let seat: Subscriber | null = null;
  try {
    while (!stop.aborted) {
      if (seat) {
        const rows = await seat.take();
        if (rows) {
          yield rows;
          cursor = (rows.at(-1) as EventRow).entry.id;
        } else if (seat.dropped) {
          // It fell too far behind the shared feed: back to reading the table from its last event.
          seat = null;
        }
        continue;
      }
      seat = feed.join(ctx.actor, filter, cursor, stop);
      if (seat) continue;
      // Behind the shared feed (a resume, or dropped): this stream's own pages up to where it is.
      const upTo = feed.shared;
      const rows = await readEvents(ctx.tx, ctx.actor, { after: cursor, upTo, ...filter, limit: BATCH });
      const last = rows.at(-1);
      if (last && !stop.aborted) {
        yield rows;
        cursor = last.entry.id;
      }
      if (rows.length < BATCH && !stop.aborted) cursor = upTo;
    }
    if (feed.closed.aborted && !signal.aborted) throw new StreamClosedError('The server is shutting down');
  } finally {
    if (seat) feed.leave(seat);
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
