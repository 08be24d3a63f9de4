import { z } from 'zod';
import { TASK_PRIORITIES } from '../../shared/enums.js';
import { MAX_ID, Timestamp } from '../../shared/schemas/common.js';
import { invalid } from '../errors.js';

// Audit entries page by id: newest first through the log, oldest first through a task's history.
// The two kinds stay apart by their tag, so one cannot be passed for the other.
const auditPosition = z.object({ id: z.int().min(1).max(Number.MAX_SAFE_INTEGER) });

// What each kind of cursor may hold. Cursors come back from clients, so they are input like any
// other: a forged one is a 400, never a value the database chokes on.
const CURSORS = {
  tasks: z.union([
    z.object({
      s: z.literal('priority'),
      o: z.enum(['asc', 'desc']),
      v: z.enum(TASK_PRIORITIES),
      id: z.int().min(1).max(MAX_ID),
    }),
    z.object({
      s: z.enum(['createdAt', 'updatedAt', 'dueDate']),
      o: z.enum(['asc', 'desc']),
      v: Timestamp.nullable(),
      id: z.int().min(1).max(MAX_ID),
    }),
  ]),
  audit: auditPosition,
  history: auditPosition,
  webhookAttempts: auditPosition,
} as const;

type CursorKind = keyof typeof CURSORS;
export type Cursor<K extends CursorKind> = z.infer<(typeof CURSORS)[K]>;

/** Opaque keyset cursors: base64url JSON tagged with what they page through, so one cannot be misused for another. */
export function encodeCursor(kind: CursorKind, position: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify({ k: kind, ...position })).toString('base64url');
}

export function decodeCursor<K extends CursorKind>(cursor: string, kind: K): Cursor<K> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid('cursor is not valid');
  }
  if (typeof parsed !== 'object' || parsed === null || (parsed as { k?: unknown }).k !== kind) {
    throw invalid('cursor is not valid');
  }
  const position = CURSORS[kind].safeParse(parsed);
  if (!position.success) throw invalid('cursor is not valid');
  return position.data as Cursor<K>;
}

/** A keyset page from a query for `limit + 1` rows: the extra row only says that a next page exists. */
export function keysetPage<T>(
  rows: T[],
  limit: number,
  cursorOf: (last: T) => string,
): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > limit && last !== undefined ? cursorOf(last) : null };
}
