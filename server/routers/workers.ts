import { z } from 'zod';
import { NoInput } from '../../shared/schemas/common.js';
import {
  Me,
  Worker,
  WorkerIdInput,
  WorkerRegisterInput,
  WorkerUpdateInput,
} from '../../shared/schemas/worker.js';
import * as workerService from '../services/worker-service.js';
import { protectedProcedure, router } from '../trpc/init.js';
import { inTransaction, read } from '../trpc/transact.js';
import { listOf, toMe, toWorker } from './dto.js';
import { rest } from './openapi-meta.js';

const tag = 'workers';

const register = inTransaction(workerService.register, toWorker);
const update = inTransaction(workerService.update, toWorker);

// `/workers/me` is registered before `/workers/{id}`: REST routes match in registration order, so
// the other way round `{id}` would take `me` (test/api/workers.test.ts fails if they are swapped).
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
    .input(NoInput)
    .output(Me)
    .query(read(workerService.me, toMe)),

  list: protectedProcedure
    .meta(rest('GET', '/workers', tag, 'List workers', 'Every registered human and agent.'))
    .input(NoInput)
    .output(z.array(Worker))
    .query(read(workerService.list, listOf(toWorker))),

  get: protectedProcedure
    .meta(rest('GET', '/workers/{id}', tag, 'Get a worker', 'One worker by id.'))
    .input(WorkerIdInput)
    .output(Worker)
    .query(read(workerService.get, toWorker)),

  register: protectedProcedure
    .meta(
      rest(
        'POST',
        '/workers',
        tag,
        'Register an agent',
        'Admin only: registers (or converts) a worker as an agent.',
        { successStatus: 201 },
      ),
    )
    .input(WorkerRegisterInput)
    .output(Worker)
    .mutation(async (opts) => {
      const worker = await register(opts);
      // This instance acts on the new type at once; others within the registry's cache time.
      opts.ctx.registry.forget(worker.id);
      return worker;
    }),

  update: protectedProcedure
    .meta(
      rest(
        'PATCH',
        '/workers/{id}',
        tag,
        'Change a worker',
        'Admin only: sets a worker’s name or capabilities (claimNext hands out only tasks whose required capabilities the worker has).',
      ),
    )
    .input(WorkerUpdateInput)
    .output(Worker)
    .mutation(async (opts) => {
      const worker = await update(opts);
      opts.ctx.registry.forget(worker.id);
      return worker;
    }),
});
