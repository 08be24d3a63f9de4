import { invalid } from '../errors.js';

/** Opaque keyset cursors: base64url JSON tagged with what they page through, so one cannot be misused for another. */
export function encodeCursor(kind: string, position: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify({ k: kind, ...position })).toString('base64url');
}

export function decodeCursor(cursor: string, kind: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid('cursor is not valid');
  }
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    Array.isArray(parsed) ||
    (parsed as { k?: unknown }).k !== kind
  ) {
    throw invalid('cursor is not valid');
  }
  return parsed as Record<string, unknown>;
}
