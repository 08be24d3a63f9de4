import { TRPCError } from '@trpc/server';
import { DatabaseUnavailableError } from '../db/client.js';
import type { ErrorReason } from '../shared/errors.js';

export type DomainErrorKind =
  | 'invalid'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'unprocessable'
  | 'too_many';

/** What services throw: a kind, a message fit to show the caller and, for programs, a reason. */
export class DomainError extends Error {
  override name = 'DomainError';
  constructor(
    readonly kind: DomainErrorKind,
    message: string,
    readonly reason?: ErrorReason,
  ) {
    super(message);
  }
}

export const invalid = (message: string) => new DomainError('invalid', message);
export const forbidden = (message: string, reason?: ErrorReason) =>
  new DomainError('forbidden', message, reason);
export const notFound = (message: string) => new DomainError('not_found', message);
export const conflict = (message: string, reason?: ErrorReason) =>
  new DomainError('conflict', message, reason);
export const unprocessable = (message: string, reason?: ErrorReason) =>
  new DomainError('unprocessable', message, reason);

export const tooMany = (message: string, reason?: ErrorReason) =>
  new DomainError('too_many', message, reason);

/** The reason of an error as the client sees it (a TRPCError made by `toTRPCError`), if it has one. */
export function reasonOf(error: unknown): ErrorReason | undefined {
  const cause = error instanceof TRPCError ? error.cause : error;
  return cause instanceof DomainError ? cause.reason : undefined;
}

const KIND_CODE = {
  invalid: 'BAD_REQUEST',
  forbidden: 'FORBIDDEN',
  not_found: 'NOT_FOUND',
  conflict: 'CONFLICT',
  unprocessable: 'UNPROCESSABLE_CONTENT',
  too_many: 'TOO_MANY_REQUESTS',
} as const satisfies Record<DomainErrorKind, TRPCError['code']>;

// SQLSTATE classes that mean "the database is not there right now", not "the query is wrong".
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0[1-3])/;
const UNAVAILABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
]);

/** The driver's error code, looking through wrappers (drizzle wraps driver errors in `cause`). */
function errorCode(error: unknown, depth = 0): string | undefined {
  if (typeof error !== 'object' || error === null || depth > 3) return undefined;
  if ('code' in error && typeof error.code === 'string') return error.code;
  return 'cause' in error ? errorCode(error.cause, depth + 1) : undefined;
}

/** Maps any error a procedure can raise to the TRPCError the client sees. The one place that does. */
export function toTRPCError(error: unknown): TRPCError {
  if (error instanceof TRPCError) {
    // tRPC wraps what a resolver throws; look at the original.
    if (error.code === 'INTERNAL_SERVER_ERROR' && error.cause && !(error.cause instanceof TRPCError)) {
      return toTRPCError(error.cause);
    }
    return error;
  }
  if (error instanceof DomainError) {
    return new TRPCError({ code: KIND_CODE[error.kind], message: error.message, cause: error });
  }
  if (error instanceof DatabaseUnavailableError) {
    return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'Database unavailable', cause: error });
  }
  const code = errorCode(error);
  if (code && (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_NODE_CODES.has(code))) {
    return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'Database unavailable', cause: error });
  }
  if (code === '57014') {
    return new TRPCError({
      code: 'SERVICE_UNAVAILABLE',
      message: 'The database took too long',
      cause: error,
    });
  }
  if (code === '40001' || code === '40P01') {
    return new TRPCError({
      code: 'CONFLICT',
      message: 'Concurrent change; retry',
      cause: conflict('Concurrent change; retry', 'CONCURRENT_CHANGE'),
    });
  }
  const cause = error instanceof Error ? error : new Error(String(error));
  return new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'Internal server error', cause });
}
