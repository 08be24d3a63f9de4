import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  text,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import { WEBHOOK_DELIVERY_STATES } from '../../shared/enums.js';
import { createdAt, timestampMs } from './columns.js';
import { auditAction } from './enums.js';
import { projects } from './projects.js';

export const webhookDeliveryState = pgEnum('webhook_delivery_state', WEBHOOK_DELIVERY_STATES);

/** Where a project's events are sent. The secret signs them; it is never listed or logged. */
export const webhookEndpoints = pgTable(
  'webhook_endpoints',
  {
    id: integer().primaryKey().generatedAlwaysAsIdentity(),
    /** Null: every event (an admin's endpoint). */
    projectSlug: text().references(() => projects.slug, { onDelete: 'cascade' }),
    url: text().notNull(),
    /** `whsec_` + base64, as the Standard Webhooks libraries take it. */
    secret: text().notNull(),
    /** Empty: every action. */
    actions: auditAction().array().notNull().default([]),
    description: text(),
    enabled: boolean().notNull().default(true),
    /** Why TaskFlow disabled it (410, 24 h of failures); null when enabled or disabled by a person. */
    disabledReason: text(),
    /** Since when every attempt failed; null after a success. */
    failingSince: timestampMs(),
    createdBy: text().notNull(),
    createdAt: createdAt(),
    updatedAt: timestampMs().notNull().defaultNow(),
  },
  (t) => [index('webhook_endpoints_project_idx').on(t.projectSlug)],
);

/**
 * One message to one endpoint: an event (written by a trigger on audit_log, in the transaction of the
 * change) or a ping. It is the queue: due rows are claimed by pushing `nextAttemptAt` past a lease.
 */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: bigint({ mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    endpointId: integer()
      .notNull()
      .references(() => webhookEndpoints.id, { onDelete: 'cascade' }),
    /** The audit id; null for a ping. */
    eventId: bigint({ mode: 'number' }),
    /** The `webhook-id` header: the event id, or `ping_…`. */
    messageId: text().notNull(),
    /** The body of a ping; events are read from audit_log when sent. */
    payload: jsonb().$type<Record<string, unknown>>(),
    state: webhookDeliveryState().notNull().default('pending'),
    attempts: integer().notNull().default(0),
    nextAttemptAt: timestampMs().notNull().defaultNow(),
    /** While an instance is sending it: another may take it only after this passes. */
    leaseUntil: timestampMs(),
    createdAt: createdAt(),
  },
  (t) => [
    index('webhook_deliveries_due_idx')
      .on(t.endpointId, t.nextAttemptAt, t.id)
      .where(sql`${t.state} = 'pending'`),
    uniqueIndex('webhook_deliveries_event_idx').on(t.endpointId, t.eventId),
    // The deliveries claimed by an instance: a claim counts an endpoint's in flight from these
    // alone, not from its whole queue (a backlog of thousands after a burst of changes).
    index('webhook_deliveries_in_flight_idx')
      .on(t.endpointId, t.leaseUntil)
      .where(sql`${t.state} = 'pending' and ${t.leaseUntil} is not null`),
  ],
);

/** What each attempt got: the `deliveries` list. */
export const webhookAttempts = pgTable(
  'webhook_attempts',
  {
    id: bigint({ mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    deliveryId: bigint({ mode: 'number' })
      .notNull()
      .references(() => webhookDeliveries.id, { onDelete: 'cascade' }),
    endpointId: integer()
      .notNull()
      .references(() => webhookEndpoints.id, { onDelete: 'cascade' }),
    attempt: integer().notNull(),
    at: timestampMs().notNull(),
    statusCode: integer(),
    durationMs: integer().notNull(),
    error: text(),
    /** When it is tried again; null when this attempt ended the delivery. */
    nextAttemptAt: timestampMs(),
  },
  (t) => [index('webhook_attempts_endpoint_idx').on(t.endpointId, t.id)],
);
