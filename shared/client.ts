/**
 * The TaskFlow client package's light entry (`@taskflow/client`): the router's types, the enums, the
 * workflow helpers, the error helpers and a typed tRPC client. At run time it imports only `shared/`
 * and `@trpc/client`, never zod: a page that validates nothing ships no schema. The zod schemas are
 * the `schemas` entry (client-schemas.ts); here they are types only.
 */
import {
  createTRPCClient,
  type HTTPBatchLinkOptions,
  httpBatchLink,
  httpSubscriptionLink,
  splitLink,
  type TRPCClient,
  TRPCClientError,
  type TRPCLink,
} from '@trpc/client';
import type { inferRouterInputs, inferRouterOutputs } from '@trpc/server';
import { ERROR_STATUS, type ErrorBody } from './errors.js';
import { MAX_BATCH_CALLS } from './limits.js';
import type { AppRouter } from './router.js';

export {
  AUDIT_ACTIONS,
  type AuditAction,
  MEMBER_ROLES,
  type MemberRole,
  ROLES,
  type Role,
  TASK_PRIORITIES,
  TASK_SORTS,
  TASK_STATUSES,
  type TaskPriority,
  type TaskSort,
  type TaskStatus,
  WORKER_TYPES,
  type WorkerType,
} from './enums.js';
export {
  ERROR_REASON_NAMES,
  ERROR_REASONS,
  ERROR_STATUS,
  type ErrorBody,
  type ErrorCode,
  type ErrorReason,
} from './errors.js';
export { MAX_BATCH_CALLS } from './limits.js';
export type * from './schemas/index.js';
export {
  type ActionRule,
  actionsFrom,
  legalActions,
  mayPerform,
  nextStatus,
  PERMISSIONS,
  type Relation,
  relationsOf,
  TASK_ACTIONS,
  TASK_OPERATIONS,
  type TaskAction,
  type TaskOperation,
  WORKFLOW,
  type WorkflowActor,
  type WorkflowTask,
} from './workflow.js';
export type { AppRouter };

export type SortOrder = 'asc' | 'desc';

/** `RouterInputs['tasks']['create']`: what a procedure takes. */
export type RouterInputs = inferRouterInputs<AppRouter>;
/** `RouterOutputs['tasks']['get']`: what a procedure returns. */
export type RouterOutputs = inferRouterOutputs<AppRouter>;
export type TaskflowClient = TRPCClient<AppRouter>;
export type TaskflowClientError = TRPCClientError<AppRouter>;
export { TRPCClientError };

type MaybePromise<T> = T | Promise<T>;

/** A bearer token, or a function giving the current one (called for every request, so tokens can expire). */
export type TokenSource = string | null | undefined | (() => MaybePromise<string | null | undefined>);

export interface TaskflowClientOptions {
  /** The server's base URL (`http://127.0.0.1:8000`) or its tRPC endpoint (`…/trpc`). */
  url: string;
  token?: TokenSource;
  /** A fetch to use instead of the global one (tests, Next.js server-side caching options). */
  fetch?: HTTPBatchLinkOptions<AppRouter['_def']['_config']['$types']>['fetch'];
  /** Extra headers for every request (e.g. `x-request-id`). */
  headers?: Record<string, string>;
  /**
   * The EventSource for subscriptions (`events.onChange`). One that takes a `fetch` option, such as
   * the `eventsource` package's (`import { EventSource } from 'eventsource'`), sends the bearer
   * header; the default is the runtime's own.
   */
  EventSource?: EventSourceClass;
}

/** An EventSource class: the runtime's, or one such as the `eventsource` package's. */
export type EventSourceClass = NonNullable<Parameters<typeof httpSubscriptionLink>[0]['EventSource']>;

/** The tRPC endpoint for a base URL; a URL that already ends in `/trpc` is kept. */
export function trpcUrl(url: string): string {
  const base = url.replace(/\/+$/, '');
  return base.endsWith('/trpc') ? base : `${base}/trpc`;
}

/**
 * The terminating link of a TaskFlow client: HTTP batching with the bearer header for queries and
 * mutations, Server-Sent Events for subscriptions. Use it directly
 * with `createTRPCClient` or `@trpc/tanstack-react-query` when you build the client yourself.
 */
export function taskflowLink(options: TaskflowClientOptions): TRPCLink<AppRouter> {
  const headers = async () => {
    const token = typeof options.token === 'function' ? await options.token() : options.token;
    return { ...options.headers, ...(token ? { authorization: `Bearer ${token}` } : {}) };
  };
  const fetchImpl = options.fetch ?? globalThis.fetch;
  return splitLink({
    condition: (op) => op.type === 'subscription',
    // Server-Sent Events; a dropped stream reconnects and resumes after the last event it received.
    true: httpSubscriptionLink<AppRouter, EventSourceClass>({
      url: trpcUrl(options.url),
      ...(options.EventSource ? { EventSource: options.EventSource } : {}),
      eventSourceOptions: async () => {
        const extra = await headers();
        const withHeaders = (url: string | URL, init?: RequestInit) =>
          fetchImpl(url, { ...init, headers: { ...(init?.headers as Record<string, string>), ...extra } });
        return { fetch: withHeaders } as EventSourceInit;
      },
    }),
    false: batchLink(options, headers),
  });
}

function batchLink(
  options: TaskflowClientOptions,
  headers: () => Promise<Record<string, string>>,
): TRPCLink<AppRouter> {
  return httpBatchLink<AppRouter>({
    url: trpcUrl(options.url),
    // Batched GETs carry their inputs in the URL; keep them under what proxies accept.
    maxURLLength: 2000,
    maxItems: MAX_BATCH_CALLS,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    headers,
  });
}

/** A typed client for every procedure: `await client.tasks.start.mutate({ id: 12 })`. */
export function createTaskflowClient(options: TaskflowClientOptions): TaskflowClient {
  return createTRPCClient<AppRouter>({ links: [taskflowLink(options)] });
}

export function isTaskflowError(error: unknown): error is TaskflowClientError {
  return error instanceof TRPCClientError;
}

/** What went wrong with a call, in the terms of the REST error body. */
export interface TaskflowErrorInfo {
  /** A tRPC error code (`NOT_FOUND`, `CONFLICT`, …), or null when no server answered. */
  code: NonNullable<TaskflowClientError['data']>['code'] | null;
  /** The HTTP status, or null when no server answered. */
  status: number | null;
  message: string;
  issues: { path: PropertyKey[]; message: string }[];
  requestId: string | null;
}

/** Reads any error a client call can throw. */
export function errorInfo(error: unknown): TaskflowErrorInfo {
  if (isTaskflowError(error) && error.data) {
    const issues = Array.isArray(error.data.issues) ? error.data.issues : [];
    return {
      code: error.data.code,
      status: error.data.httpStatus,
      message: error.message,
      issues: issues.map((issue) => ({ path: issue.path, message: issue.message })),
      requestId: error.data.requestId,
    };
  }
  // Answers the server sends before tRPC runs (429 from the rate limiter, 413 for a body too large)
  // carry the REST error body, which tRPC cannot read as its own.
  const body = isTaskflowError(error) ? restErrorBody(error.meta?.responseJSON) : null;
  if (body) {
    return {
      code: body.code,
      status: body.status_code,
      message: body.error,
      issues: [],
      requestId: body.requestId,
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: null, status: null, message, issues: [], requestId: null };
}

function restErrorBody(json: unknown): ErrorBody | null {
  if (typeof json !== 'object' || json === null) return null;
  const body = json as Partial<Record<keyof ErrorBody, unknown>>;
  return typeof body.error === 'string' &&
    typeof body.code === 'string' &&
    body.code in ERROR_STATUS &&
    typeof body.status_code === 'number' &&
    typeof body.requestId === 'string'
    ? (body as ErrorBody)
    : null;
}
