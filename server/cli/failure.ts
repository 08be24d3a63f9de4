import { errorInfo } from '../../shared/client.js';

/** Exit codes, documented in the README: scripts can tell a lost claim (5) from a typo (2). */
export const EXIT = {
  failure: 1,
  usage: 2,
  auth: 3,
  notFound: 4,
  conflict: 5,
  unavailable: 6,
  rateLimited: 7,
} as const;

/** A failure of the CLI itself (no token), with its exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

const EXIT_OF_CODE: Partial<Record<string, number>> = {
  BAD_REQUEST: EXIT.usage,
  UNAUTHORIZED: EXIT.auth,
  FORBIDDEN: EXIT.auth,
  NOT_FOUND: EXIT.notFound,
  CONFLICT: EXIT.conflict,
  SERVICE_UNAVAILABLE: EXIT.unavailable,
  TOO_MANY_REQUESTS: EXIT.rateLimited,
};

interface ReportOptions {
  /** The server asked, for "cannot reach" messages. */
  url: string;
  json?: boolean;
}

/**
 * Writes a failure to stderr and returns the exit code: one line for people
 * (`taskflow: CONFLICT: …`), the API's error body for machines (`--json`).
 */
export function reportFailure(error: unknown, options: ReportOptions): number {
  if (error instanceof CliError) {
    writeError(options, error.message);
    return error.exitCode;
  }
  const info = errorInfo(error);
  if (info.code === null) {
    writeError(options, `cannot reach ${options.url}: ${info.message}`);
    return EXIT.unavailable;
  }
  const exitCode = EXIT_OF_CODE[info.code] ?? EXIT.failure;
  const issues = info.issues.map(
    (issue) => `${issue.path.map(String).join('.') || 'input'}: ${issue.message}`,
  );
  if (options.json) {
    process.stderr.write(
      `${JSON.stringify({
        error: info.message,
        code: info.code,
        status_code: info.status,
        ...(info.issues.length > 0 ? { issues: info.issues } : {}),
        requestId: info.requestId,
      })}\n`,
    );
  } else {
    process.stderr.write(`taskflow: ${info.code}: ${[info.message, ...issues].join('; ')}\n`);
  }
  return exitCode;
}

function writeError(options: ReportOptions, message: string): void {
  if (options.json) {
    process.stderr.write(`${JSON.stringify({ error: message, code: null })}\n`);
  } else {
    process.stderr.write(`taskflow: ${message}\n`);
  }
}
