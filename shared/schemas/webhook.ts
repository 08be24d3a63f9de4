import { z } from 'zod';
import { AUDIT_ACTIONS, WEBHOOK_DELIVERY_STATES } from '../enums.js';
import { AuditAction } from './audit.js';
import { Cursor, IdempotencyKey, IdParam, Instant, Limit, ProjectSlug, text } from './common.js';

export const WebhookEndpoint = z
  .object({
    id: z.int(),
    project: z.string().nullable().meta({ description: 'Its project; null: every event (admins only)' }),
    url: z.string(),
    actions: z.array(AuditAction).meta({ description: 'The actions sent; empty: every action' }),
    description: z.string().nullable(),
    enabled: z.boolean(),
    disabledReason: z
      .string()
      .nullable()
      .meta({ description: 'Why TaskFlow disabled it (410 Gone, failing for 24 h); null otherwise' }),
    failingSince: Instant.nullable().meta({
      description: 'Since when every attempt failed; null after a success',
    }),
    createdBy: z.string(),
    createdAt: Instant,
    updatedAt: Instant,
  })
  .meta({ id: 'WebhookEndpoint' });
export type WebhookEndpoint = z.infer<typeof WebhookEndpoint>;

const Secret = z.string().meta({
  description: 'The signing secret (Standard Webhooks, `whsec_…`). Shown only in this answer: keep it now',
});

export const WebhookEndpointWithSecret = WebhookEndpoint.extend({ secret: Secret }).meta({
  id: 'WebhookEndpointWithSecret',
});
export type WebhookEndpointWithSecret = z.infer<typeof WebhookEndpointWithSecret>;

const WebhookUrl = z
  .string()
  .trim()
  .min(1)
  .max(2000)
  .meta({ example: 'https://example.com/hooks/taskflow', description: 'http(s) URL of a public host' });
const Actions = z
  .array(AuditAction)
  .max(AUDIT_ACTIONS.length)
  .transform((items) => [...new Set(items)]);

export const WebhookCreateInput = z.strictObject({
  url: WebhookUrl,
  project: ProjectSlug.optional().meta({ description: 'Omitted: every event (admins only)' }),
  actions: Actions.optional(),
  description: text(0, 500).nullable().optional(),
  idempotencyKey: IdempotencyKey.optional(),
});
export type WebhookCreateInput = z.infer<typeof WebhookCreateInput>;

/** A JSON boolean, never coerced: REST coerces top-level primitives (`9` would be `true`), but not pipes (see `jsonInt`). */
const JsonBoolean = z.boolean().pipe(z.boolean());

export const WebhookUpdateInput = z.strictObject({
  id: IdParam,
  url: WebhookUrl.optional(),
  actions: Actions.optional(),
  enabled: JsonBoolean.optional(),
  description: text(0, 500).nullable().optional(),
  idempotencyKey: IdempotencyKey.optional(),
});
export type WebhookUpdateInput = z.infer<typeof WebhookUpdateInput>;

export const WebhookIdInput = z.strictObject({ id: IdParam });
export type WebhookIdInput = z.infer<typeof WebhookIdInput>;

export const WebhookMutationIdInput = z.strictObject({
  id: IdParam,
  idempotencyKey: IdempotencyKey.optional(),
});

export const WebhookListInput = z.strictObject({ project: ProjectSlug.optional() });
export type WebhookListInput = z.infer<typeof WebhookListInput>;

export const WebhookTestResult = z
  .object({
    deliveryId: z.int(),
    messageId: z.string().meta({ description: 'The `webhook-id` the ping is sent with' }),
  })
  .meta({ id: 'WebhookTestResult' });
export type WebhookTestResult = z.infer<typeof WebhookTestResult>;

export const WebhookDeliveriesInput = z.strictObject({
  id: IdParam,
  limit: Limit,
  cursor: Cursor.optional(),
});
export type WebhookDeliveriesInput = z.infer<typeof WebhookDeliveriesInput>;

export const WebhookAttempt = z
  .object({
    id: z.int(),
    deliveryId: z.int(),
    messageId: z.string().meta({ description: 'The `webhook-id`: the event id, or `ping_…`' }),
    eventId: z.int().nullable(),
    attempt: z.int().meta({ description: '1 for the first attempt of this message' }),
    at: Instant,
    statusCode: z.int().nullable().meta({ description: 'The HTTP status answered; null when none came' }),
    durationMs: z.int(),
    error: z.string().nullable(),
    nextAttemptAt: Instant.nullable().meta({ description: 'When it is tried again; null: no more tries' }),
    state: z.enum(WEBHOOK_DELIVERY_STATES).meta({ description: 'Where the message stands now' }),
  })
  .meta({ id: 'WebhookAttempt' });
export type WebhookAttempt = z.infer<typeof WebhookAttempt>;

export const WebhookAttemptPage = z
  .object({ items: z.array(WebhookAttempt), nextCursor: z.string().nullable() })
  .meta({ id: 'WebhookAttemptPage' });
export type WebhookAttemptPage = z.infer<typeof WebhookAttemptPage>;
