import type { OpenApiMeta } from 'trpc-to-openapi';

type Operation = NonNullable<OpenApiMeta['openapi']>;

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
): OpenApiMeta {
  return {
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
