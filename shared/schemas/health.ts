import { z } from 'zod';

export const Health = z.object({ status: z.literal('ok'), version: z.string() });
export const DbHealth = z.object({
  status: z.literal('ok'),
  database: z.enum(['postgres', 'pglite']),
  latencyMs: z.number(),
});
