import { type OutgoingHttpHeaders, STATUS_CODES, validateHeaderName, validateHeaderValue } from 'node:http';
import type { Socket } from 'node:net';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import type { ErrorBody } from '../../shared/errors.js';
import { errorBody } from '../error-body.js';
import { toTRPCError } from '../errors.js';

/** The answer to a stream that cannot start (no caller, over a cap, the database down): status and body. */
export function refusalOf(error: unknown, requestId: string): { status: number; body: ErrorBody } {
  const trpcError = toTRPCError(error);
  const status = getHTTPStatusCodeFromError(trpcError);
  return { status, body: errorBody(status, trpcError.message, requestId, { code: trpcError.code }) };
}

/**
 * An HTTP/1.1 response head, for the stream process: it holds the connection but not the API's
 * `ServerResponse`, so it writes the status line and the headers the API gathered itself. Names and
 * values are checked as `ServerResponse` checks them.
 */
export function responseHead(status: number, headers: OutgoingHttpHeaders): string {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ndate: ${new Date().toUTCString()}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [String(value)]) {
      validateHeaderName(name);
      validateHeaderValue(name, one);
      head += `${name}: ${one}\r\n`;
    }
  }
  return `${head}\r\n`;
}

/** Answers `socket` with an error body and closes it (the stream process's refusal). */
export function writeRefusal(
  socket: Socket,
  headers: OutgoingHttpHeaders,
  refusal: { status: number; body: ErrorBody },
): void {
  const body = JSON.stringify(refusal.body);
  socket.end(
    responseHead(refusal.status, {
      ...headers,
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    }) + body,
  );
}
