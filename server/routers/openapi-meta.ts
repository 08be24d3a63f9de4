import type { AnyRouter } from '@trpc/server';
import { forEachOpenApiProcedure, type OpenApiMeta, type OpenApiProcedureRecord } from 'trpc-to-openapi';

/** A REST success status other than 200. */
export type SuccessStatus = 201 | 204;

/** Procedure meta: the REST operation that mirrors it, and its success status when that is not 200. */
export type Meta = OpenApiMeta<{ successStatus?: SuccessStatus }>;

type Operation = NonNullable<Meta['openapi']>;

const COMMON_ERRORS = {
  400: 'Invalid input',
  401: 'Missing or invalid bearer token',
  403: 'Not allowed',
  404: 'Not found (or not visible to you)',
  409: 'Conflict with the current state',
  429: 'Rate limited',
  503: 'Database or auth server unreachable',
} as const;

/** REST meta for a protected operation: bearer security and the documented error responses. */
export function rest(
  method: Operation['method'],
  path: Operation['path'],
  tag: string,
  summary: string,
  description: string,
  options: { successStatus?: SuccessStatus } = {},
): Meta {
  return {
    ...options,
    openapi: {
      method,
      path,
      tags: [tag],
      summary,
      description,
      protect: true,
      errorResponses: { ...COMMON_ERRORS },
    },
  };
}

export interface NonOkOperation {
  /** The procedure's path in the router (`tasks.create`). */
  procedure: string;
  method: Operation['method'];
  /** The REST path as the OpenAPI document writes it (`/tasks/{id}`). */
  path: string;
  status: SuccessStatus;
}

/** The REST operations of a router whose success status is not 200, read from their meta. */
export function nonOkOperations(router: AnyRouter): NonOkOperation[] {
  const found: NonOkOperation[] = [];
  forEachOpenApiProcedure<Meta>(router._def.procedures as OpenApiProcedureRecord, ({ path, meta }) => {
    if (meta.successStatus) {
      found.push({
        procedure: path,
        method: meta.openapi.method,
        path: meta.openapi.path,
        status: meta.successStatus,
      });
    }
  });
  return found;
}
