import {
  ERROR_REASONS,
  ERROR_STATUS,
  type ErrorBody,
  type ErrorCode,
  type ErrorReason,
} from '../shared/errors.js';

const CODE_OF_STATUS = new Map<number, ErrorCode>(
  Object.entries(ERROR_STATUS).map(([code, status]) => [status, code as ErrorCode]),
);

function isErrorReason(reason: unknown): reason is ErrorReason {
  return typeof reason === 'string' && reason in ERROR_REASONS;
}

function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && code in ERROR_STATUS;
}

/** The API error body; every REST error, whoever raised it, is built here. */
export function errorBody(
  status: number,
  message: string,
  requestId: string,
  options: { code?: unknown; reason?: unknown; issues?: unknown[] | undefined } = {},
): ErrorBody {
  const code = isErrorCode(options.code)
    ? options.code
    : (CODE_OF_STATUS.get(status) ?? (status >= 500 ? 'INTERNAL_SERVER_ERROR' : 'BAD_REQUEST'));
  return {
    // 5xx other than "unavailable" never say more than this.
    error: status >= 500 && status !== 503 ? 'Internal server error' : message,
    code,
    status_code: status,
    ...(isErrorReason(options.reason) ? { reason: options.reason } : {}),
    ...(options.issues ? { issues: options.issues } : {}),
    requestId,
  };
}
