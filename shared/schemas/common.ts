import { z } from 'zod';

/** A trimmed string of `min..max` characters (after trimming). */
export const text = (min: number, max: number) => z.string().trim().min(min).max(max);

/**
 * A JSON integer that is never coerced. trpc-to-openapi switches on `coerce` for every top-level
 * number of an input it serves over REST (SPEC §10), which would turn `null` or `true` into numbers
 * on both surfaces; it leaves pipes alone.
 */
export const jsonInt = (min: number, max: number) => z.int().min(min).max(max).pipe(z.int());

export const MAX_ID = 2_147_483_647;

/** An id that also arrives as a path or query string, so it coerces on purpose, on both surfaces. */
export const IdParam = z.coerce.number<number>().int().min(1).max(MAX_ID);

export const Timestamp = z.iso.datetime({ offset: true }).meta({ example: '2026-01-02T03:04:05.000Z' });

export const WorkerId = z
  .string()
  .trim()
  .min(1)
  .max(100)
  .regex(/^[^\s\p{Cc}]+$/u, 'must not contain spaces or control characters')
  .meta({ example: 'alice' });

export const ProjectSlug = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{1,62}$/, 'must be 2-63 lowercase letters, digits or dashes')
  .meta({ example: 'website' });

export const Limit = z.coerce.number<number>().int().min(1).max(100).default(50);
export const Cursor = z.string().min(1).max(500);
