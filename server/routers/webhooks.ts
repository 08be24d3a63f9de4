import { z } from 'zod';
import {
  WebhookAttemptPage,
  WebhookCreateInput,
  WebhookDeliveriesInput,
  WebhookEndpoint,
  WebhookEndpointWithSecret,
  WebhookIdInput,
  WebhookListInput,
  WebhookMutationIdInput,
  WebhookTestResult,
  WebhookUpdateInput,
} from '../../shared/schemas/webhook.js';
import type { ServiceContext } from '../services/context.js';
import { attempts, endpoints } from '../services/webhooks/index.js';
import { protectedProcedure, router } from '../trpc/init.js';
import { inTransaction, type ProcedureContext, read, transact } from '../trpc/transact.js';
import { listOf, noContent, pageOf, toWebhook, toWebhookAttempt, toWebhookWithSecret } from './dto.js';
import { rest } from './openapi-meta.js';

const tag = 'webhooks';

const serviceContext = (ctx: ProcedureContext, tx: ServiceContext['tx']): ServiceContext => ({
  tx,
  actor: ctx.actor,
  requestId: ctx.requestId,
});

export const webhooksRouter = router({
  create: protectedProcedure
    .meta(
      rest(
        'POST',
        '/webhooks',
        tag,
        'Create a webhook endpoint',
        'Project owner or admin (admins only without a project). The answer holds the signing secret, shown this once. The URL must be https in production and reach a public address.',
        { successStatus: 201 },
      ),
    )
    .input(WebhookCreateInput)
    .output(WebhookEndpointWithSecret)
    .mutation(({ ctx, input }) =>
      transact(ctx, input, async (tx) =>
        toWebhookWithSecret(await endpoints.create(serviceContext(ctx, tx), input, ctx.webhooks.urls)),
      ),
    ),

  list: protectedProcedure
    .meta(
      rest(
        'GET',
        '/webhooks',
        tag,
        'List webhook endpoints',
        'Those the caller manages; never their secrets.',
      ),
    )
    .input(WebhookListInput)
    .output(z.array(WebhookEndpoint))
    .query(read(endpoints.list, listOf(toWebhook))),

  get: protectedProcedure
    .meta(rest('GET', '/webhooks/{id}', tag, 'Get a webhook endpoint', 'Project owner or admin; no secret.'))
    .input(WebhookIdInput)
    .output(WebhookEndpoint)
    .query(read(endpoints.get, toWebhook)),

  update: protectedProcedure
    .meta(
      rest(
        'PATCH',
        '/webhooks/{id}',
        tag,
        'Edit a webhook endpoint',
        'url, actions, description, enabled. Enabling it again clears why TaskFlow disabled it.',
      ),
    )
    .input(WebhookUpdateInput)
    .output(WebhookEndpoint)
    .mutation(({ ctx, input }) =>
      transact(ctx, input, async (tx) =>
        toWebhook(await endpoints.update(serviceContext(ctx, tx), input, ctx.webhooks.urls)),
      ),
    ),

  delete: protectedProcedure
    .meta(
      rest(
        'DELETE',
        '/webhooks/{id}',
        tag,
        'Delete a webhook endpoint',
        'Its pending deliveries go with it.',
        {
          successStatus: 204,
        },
      ),
    )
    .input(WebhookIdInput)
    .output(z.void())
    .mutation(inTransaction(endpoints.remove, noContent)),

  rotateSecret: protectedProcedure
    .meta(
      rest(
        'POST',
        '/webhooks/{id}/rotate-secret',
        tag,
        'Rotate the signing secret',
        'A new secret, shown this once; the old one signs nothing from now on.',
      ),
    )
    .input(WebhookMutationIdInput)
    .output(WebhookEndpointWithSecret)
    .mutation(inTransaction(endpoints.rotateSecret, toWebhookWithSecret)),

  test: protectedProcedure
    .meta(
      rest(
        'POST',
        '/webhooks/{id}/test',
        tag,
        'Send a ping',
        'Queues a signed `ping` to the endpoint now; its attempts show in the deliveries.',
      ),
    )
    .input(WebhookMutationIdInput)
    .output(WebhookTestResult)
    .mutation(async ({ ctx, input }) => {
      const queued = await transact(ctx, input, (tx) => endpoints.ping(serviceContext(ctx, tx), input));
      ctx.webhooks.wake();
      return queued;
    }),

  deliveries: protectedProcedure
    .meta(
      rest(
        'GET',
        '/webhooks/{id}/deliveries',
        tag,
        'List delivery attempts',
        'Newest first: when, HTTP status, duration, error and next retry of each attempt.',
      ),
    )
    .input(WebhookDeliveriesInput)
    .output(WebhookAttemptPage)
    .query(read(attempts.list, pageOf(toWebhookAttempt))),
});
