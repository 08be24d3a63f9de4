/** Error codes on the wire (tRPC codes), with their HTTP status. */
export const ERROR_STATUS = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_SUPPORTED: 405,
  TIMEOUT: 408,
  CONFLICT: 409,
  PRECONDITION_FAILED: 412,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNPROCESSABLE_CONTENT: 422,
  TOO_MANY_REQUESTS: 429,
  CLIENT_CLOSED_REQUEST: 499,
  INTERNAL_SERVER_ERROR: 500,
  NOT_IMPLEMENTED: 501,
  BAD_GATEWAY: 502,
  SERVICE_UNAVAILABLE: 503,
  GATEWAY_TIMEOUT: 504,
} as const;
export type ErrorCode = keyof typeof ERROR_STATUS;

/**
 * Why a request was refused, stable for programs to branch on (the message is for people). Present
 * on refusals the workflow explains; absent on plain validation, auth and availability errors.
 */
export const ERROR_REASONS = {
  ALREADY_CLAIMED: 'Somebody else holds the task',
  ALREADY_HELD: 'You already hold the task; a retry of your own claim must reuse its idempotency key',
  ILLEGAL_TRANSITION: 'The action is not legal from the task’s status',
  VERSION_MISMATCH: 'The task is not at `expectedVersion`',
  OPEN_SUBTASKS: 'A subtask is still open',
  HAS_SUBTASKS: 'The task has subtasks',
  PARENT_COMPLETED: 'The parent task is completed',
  LEASE_EXPIRED: 'Your lease on the task expired; it may be somebody else’s now',
  NOT_ASSIGNEE: 'Only the worker holding the task may do this',
  NOT_PERMITTED: 'Your relation to the task does not allow this',
  CONCURRENT_CHANGE: 'The task changed while the request ran; retry',
  IDEMPOTENCY_KEY_REUSED: 'The idempotency key was used for a different request',
} as const;
export type ErrorReason = keyof typeof ERROR_REASONS;
export const ERROR_REASON_NAMES = Object.keys(ERROR_REASONS) as ErrorReason[];

/** The REST error body. */
export interface ErrorBody {
  error: string;
  code: ErrorCode;
  status_code: number;
  reason?: ErrorReason;
  issues?: unknown[];
  requestId: string;
}
