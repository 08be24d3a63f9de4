import { z } from 'zod';
import { ROLES, WORKER_TYPES } from '../enums.js';
import { IdempotencyKey, Instant, text, WorkerId } from './common.js';

export const WorkerType = z.enum(WORKER_TYPES);
export const Role = z.enum(ROLES);

export const Worker = z
  .object({
    id: z.string(),
    type: WorkerType,
    name: z.string(),
    email: z.string().nullable().meta({
      description:
        'Shown to admins, the worker themself and people who share a project with them; null otherwise',
    }),
    capabilities: z.array(z.string()),
    createdAt: Instant,
    lastSeenAt: Instant,
  })
  .meta({ id: 'Worker' });
export type Worker = z.infer<typeof Worker>;

export const Me = Worker.extend({ role: Role }).meta({ id: 'Me' });
export type Me = z.infer<typeof Me>;

const Capabilities = z
  .array(text(1, 50))
  .max(50)
  .transform((items) => [...new Set(items)])
  .meta({ description: 'What the worker can do; claimNext hands it only tasks whose requirements it has' });

export const WorkerRegisterInput = z.strictObject({
  id: WorkerId.meta({ example: '@release-bot' }),
  name: text(1, 200),
  email: z.email().max(320).nullable().optional(),
  capabilities: Capabilities.optional(),
  idempotencyKey: IdempotencyKey.optional(),
});
export type WorkerRegisterInput = z.infer<typeof WorkerRegisterInput>;

export const WorkerUpdateInput = z.strictObject({
  id: WorkerId,
  name: text(1, 200).optional(),
  capabilities: Capabilities.optional(),
  idempotencyKey: IdempotencyKey.optional(),
});
export type WorkerUpdateInput = z.infer<typeof WorkerUpdateInput>;

export const WorkerIdInput = z.strictObject({ id: WorkerId });
