import { z } from 'zod';
import { Me, Worker, WorkerIdInput, WorkerRegisterInput } from '../../shared/schemas/worker.js';
import * as workerService from '../services/worker-service.js';
import { protectedProcedure, router } from '../trpc/init.js';
import { transact } from '../trpc/transact.js';
import { toWorker } from './dto.js';
import { rest } from './openapi-meta.js';

const tag = 'workers';

// `/workers/me` is registered before `/workers/{id}`: REST routes match in order (SPEC §10).
export const workersRouter = router({
  me: protectedProcedure
    .meta(
      rest(
        'GET',
        '/workers/me',
        tag,
        'Who am I',
        'The caller as the registry knows them, with the role from the token.',
      ),
    )
    .input(z.strictObject({}))
    .output(Me)
    .query(async ({ ctx }) => ({
      ...toWorker(await workerService.get(ctx.db, ctx.actor.id)),
      role: ctx.actor.role,
    })),

  list: protectedProcedure
    .meta(rest('GET', '/workers', tag, 'List workers', 'Every registered human and agent.'))
    .input(z.strictObject({}))
    .output(z.array(Worker))
    .query(async ({ ctx }) => (await workerService.list(ctx.db)).map(toWorker)),

  get: protectedProcedure
    .meta(rest('GET', '/workers/{id}', tag, 'Get a worker', 'One worker by id.'))
    .input(WorkerIdInput)
    .output(Worker)
    .query(async ({ ctx, input }) => toWorker(await workerService.get(ctx.db, input.id))),

  register: protectedProcedure
    .meta(
      rest(
        'POST',
        '/workers',
        tag,
        'Register an agent',
        'Admin only: registers (or converts) a worker as an agent.',
      ),
    )
    .input(WorkerRegisterInput)
    .output(Worker)
    .mutation(async ({ ctx, input }) => {
      const worker = await transact(ctx, input, async (tx) =>
        toWorker(await workerService.register(tx, ctx.actor, ctx.requestId, input)),
      );
      ctx.registry.forget(worker.id);
      return worker;
    }),
});
