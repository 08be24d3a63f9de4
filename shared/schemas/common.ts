import { z } from 'zod';

/**
 * Invisible formatting characters (Unicode category Cf: bidi overrides, zero-width spaces, tags) make
 * text display as something else than it is. Zero-width joiner and non-joiner stay allowed in text:
 * emoji sequences and several scripts need them. Checked in a refinement, not the schema's `pattern`:
 * OpenAPI clients compile patterns without the `u` flag that `\p{…}` needs.
 */
const FORMAT_CHARACTER = /\p{Cf}/u;
const FORMAT_CHARACTER_IN_TEXT = /(?![\u200c\u200d])\p{Cf}/u;

/**
 * A trimmed string of `min..max` characters (after trimming). NUL is refused: Postgres cannot store it
 * in text or jsonb, so it would otherwise fail in the database (a 500) instead of here (a 400).
 */
export const text = (min: number, max: number) =>
  z
    .string()
    .trim()
    .min(min)
    .max(max)
    // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is exactly the character refused.
    .regex(/^[^\u0000]*$/, 'must not contain NUL characters')
    .refine((value) => !FORMAT_CHARACTER_IN_TEXT.test(value), {
      message: 'must not contain invisible formatting characters (Unicode Cf, such as bidi overrides)',
    });

/**
 * A JSON integer that is never coerced. trpc-to-openapi switches on `coerce` for every top-level
 * number of an input it serves over REST, which would turn `null` or `true` into numbers
 * on both surfaces; it leaves pipes alone.
 */
export const jsonInt = (min: number, max: number) => z.int().min(min).max(max).pipe(z.int());

export const MAX_ID = 2_147_483_647;

/** An id that also arrives as a path or query string, so it coerces on purpose, on both surfaces. */
export const IdParam = z.coerce.number<number>().int().min(1).max(MAX_ID);

/** The instants a timestamptz round-trips through the drivers as ISO text: years 0001 to 9999 (UTC). */
const FIRST_INSTANT = Date.parse('0001-01-01T00:00:00.000Z');
const LAST_INSTANT = Date.parse('9999-12-31T23:59:59.999Z');

export const Timestamp = z.iso
  .datetime({ offset: true })
  .refine((value) => {
    const instant = Date.parse(value);
    return instant >= FIRST_INSTANT && instant <= LAST_INSTANT;
  }, 'must be between years 0001 and 9999 (UTC)')
  .meta({ example: '2026-01-02T03:04:05.000Z' });

/**
 * An instant the server writes (`Date#toISOString()` of a database value): the same format as
 * `Timestamp`, without its range check, which only input needs. Output is validated per field, so
 * a list of tasks would otherwise parse every date once more.
 */
export const Instant = z.iso.datetime({ offset: true }).meta({ example: '2026-01-02T03:04:05.000Z' });

// Written without \p{…} classes: the pattern is copied into the OpenAPI document, and clients such
// as Swagger UI compile it without the `u` flag.
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point.
const NO_SPACE_OR_CONTROL = /^[^\s\u0000-\u001f\u007f]+$/;

export const WorkerId = z
  .string()
  .trim()
  .min(1)
  .max(100)
  .regex(NO_SPACE_OR_CONTROL, 'must not contain spaces or control characters')
  .refine((value) => !FORMAT_CHARACTER.test(value), {
    message: 'must not contain invisible formatting characters (Unicode Cf)',
  })
  .meta({ example: 'alice' });

export const ProjectSlug = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{1,62}$/, 'must be 2-63 lowercase letters, digits or dashes')
  .meta({ example: 'website' });

/**
 * The input of a procedure that takes none. Over tRPC a call without input (`GET /trpc/workers.me`,
 * `client.workers.me.query()`) sends none at all; `prefault` parses that as `{}`.
 */
export const NoInput = z.strictObject({}).prefault({});

export const Limit = z.coerce.number<number>().int().min(1).max(100).default(50);
export const Cursor = z.string().min(1).max(500);

/**
 * Makes a retried mutation safe: the same key (per caller, for 24 h) replays the first response.
 * REST callers may send the `Idempotency-Key` header instead.
 */
export const IdempotencyKey = z
  .string()
  .regex(/^[\x21-\x7e]{1,255}$/, 'must be 1-255 visible ASCII characters')
  .meta({
    // Short: it is in every mutation of the MCP listing; the MCP instructions and REST header say more.
    description: 'Retry-safe key',
    example: 'create-notes-7f3a',
  });
