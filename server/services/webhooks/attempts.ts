import { and, desc, eq, lt } from 'drizzle-orm';
import { webhookAttempts, webhookDeliveries } from '../../../db/schema/index.js';
import type { WebhookDeliveryState } from '../../../shared/enums.js';
import type { WebhookDeliveriesInput } from '../../../shared/schemas/webhook.js';
import type { ServiceContext } from '../context.js';
import { decodeCursor, encodeCursor, keysetPage } from '../cursor.js';
import { managedEndpoint } from './access.js';

export type AttemptRow = typeof webhookAttempts.$inferSelect & {
  messageId: string;
  eventId: number | null;
  state: WebhookDeliveryState;
};

/** The endpoint's attempts, newest first, one keyset page at a time, each with where its message stands. */
export async function list(
  ctx: ServiceContext,
  input: WebhookDeliveriesInput,
): Promise<{ items: AttemptRow[]; nextCursor: string | null }> {
  await managedEndpoint(ctx, input.id);
  const before = input.cursor ? decodeCursor(input.cursor, 'webhookAttempts') : null;
  const rows = await ctx.tx
    .select({
      id: webhookAttempts.id,
      deliveryId: webhookAttempts.deliveryId,
      endpointId: webhookAttempts.endpointId,
      attempt: webhookAttempts.attempt,
      at: webhookAttempts.at,
      statusCode: webhookAttempts.statusCode,
      durationMs: webhookAttempts.durationMs,
      error: webhookAttempts.error,
      nextAttemptAt: webhookAttempts.nextAttemptAt,
      messageId: webhookDeliveries.messageId,
      eventId: webhookDeliveries.eventId,
      state: webhookDeliveries.state,
    })
    .from(webhookAttempts)
    .innerJoin(webhookDeliveries, eq(webhookDeliveries.id, webhookAttempts.deliveryId))
    .where(
      and(eq(webhookAttempts.endpointId, input.id), before ? lt(webhookAttempts.id, before.id) : undefined),
    )
    .orderBy(desc(webhookAttempts.id))
    .limit(input.limit + 1);
  return keysetPage(rows, input.limit, (last) => encodeCursor('webhookAttempts', { id: last.id }));
}
