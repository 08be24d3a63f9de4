import { tracked } from '@trpc/server';
import { EventListInput, EventPage, EventStreamInput } from '../../shared/schemas/event.js';
import * as events from '../services/events/index.js';
import { protectedProcedure, router } from '../trpc/init.js';
import { toEvent } from './dto.js';
import { rest } from './openapi-meta.js';

async function* tracking(batches: AsyncIterable<events.EventRow[]>) {
  for await (const rows of batches) {
    for (const row of rows) yield tracked(String(row.entry.id), toEvent(row));
  }
}

export const eventsRouter = router({
  onChange: protectedProcedure
    .input(EventStreamInput)
    .subscription(async ({ ctx, input, signal }) =>
      tracking(
        await events.follow(
          { tx: ctx.db, actor: ctx.actor, requestId: ctx.requestId },
          ctx.events,
          input,
          signal ?? new AbortController().signal,
        ),
      ),
    ),
  list: protectedProcedure
    .meta(
      rest(
        'GET',
        '/events',
        'events',
        'Read the event stream',
        'Committed changes the caller may see, oldest first, after `after`. With `Accept: text/event-stream` the same events arrive as Server-Sent Events as they are committed.',
      ),
    )
    .input(EventListInput)
    .output(EventPage)
    .query(async ({ ctx, input }) => {
      const result = await events.page(
        { tx: ctx.db, actor: ctx.actor, requestId: ctx.requestId },
        ctx.events,
        input,
      );
      return { items: result.items.map(toEvent), nextCursor: result.nextCursor };
    }),
});
