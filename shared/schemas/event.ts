import { z } from 'zod';
import { AuditEntry } from './audit.js';
import { IdParam, ProjectSlug } from './common.js';
import { Task } from './task.js';

/** An event id as it arrives from a query string, a `Last-Event-ID` header or a tracked() id. */
export const EventId = z.coerce
  .number<number | string>()
  .int()
  .min(0)
  .max(Number.MAX_SAFE_INTEGER)
  .meta({ description: 'An event id (the audit entry id)' });

/** One committed change: its audit entry and the task as the change left it. */
export const TaskEvent = AuditEntry.extend({
  task: Task.nullable().meta({
    description: 'The task after the change; null when the event is not about a task or it was deleted',
  }),
}).meta({ id: 'TaskEvent' });
export type TaskEvent = z.infer<typeof TaskEvent>;

const EventFilters = {
  project: ProjectSlug.optional(),
  taskId: IdParam.optional(),
};

/** `events.onChange`: from after `lastEventId`, or from the present without it. */
export const EventStreamInput = z.strictObject({
  ...EventFilters,
  // tRPC's httpSubscriptionLink puts the last tracked() id here when it reconnects.
  lastEventId: EventId.nullish(),
});
export type EventStreamInput = z.input<typeof EventStreamInput>;
export type EventStreamQuery = z.output<typeof EventStreamInput>;

/** `GET /api/events` as one JSON page: the events after `after` (0: from the first), oldest first. */
export const EventListInput = z.strictObject({
  ...EventFilters,
  after: EventId.default(0),
  limit: z.coerce.number<number | string>().int().min(1).max(500).default(100),
});
export type EventListInput = z.input<typeof EventListInput>;
export type EventListQuery = z.output<typeof EventListInput>;

export const EventPage = z
  .object({
    items: z.array(TaskEvent),
    nextCursor: z
      .string()
      .meta({ description: 'The `after` of the next page: the last event id here, or the same `after`' }),
  })
  .meta({ id: 'EventPage' });
export type EventPage = z.infer<typeof EventPage>;
