import { isIP } from 'node:net';
import { Agent, buildConnector, request } from 'undici';
import { VERSION } from '../../version.js';
import { assertPublicHost, type UrlPolicy } from './ssrf.js';

// Importing undici makes its Agent the dispatcher of Node's own fetch when none is set yet (a
// process-wide symbol both share). Node 20's built-in fetch then runs on this copy, and streamed
// answers (Server-Sent Events read through fetch) stall. The sender passes its own dispatcher to every
// request, so the global one is handed back: Node's fetch installs its own when it first runs.
const NODE_FETCH_DISPATCHER = Symbol.for('undici.globalDispatcher.1');
const globals = globalThis as unknown as Record<symbol, unknown>;
if (globals[NODE_FETCH_DISPATCHER] instanceof Agent) globals[NODE_FETCH_DISPATCHER] = undefined;

export interface SendResult {
  /** The HTTP status, or null when there was no answer. */
  statusCode: number | null;
  /** Why there was no answer (time-out, refused, connection error). */
  error: string | null;
  durationMs: number;
}

// An answer's body is not used; reading a little of it lets the connection be reused.
const BODY_READ_LIMIT = 64 * 1024;

/**
 * Posts signed webhook bodies. The connection goes to an address checked at connect time: the host is
 * resolved by the policy's resolver, every address it gave must be allowed, and the socket is opened
 * to that address (TLS still checks the certificate against the host name), so a DNS answer that
 * changed since the endpoint was created cannot take the request into the private network.
 * Redirects are not followed (undici's request does not), time-outs are the sender's own.
 */
export class WebhookSender {
  private readonly agent: Agent;

  constructor(
    private readonly policy: UrlPolicy,
    private readonly timeoutMs: number,
  ) {
    const connectTimeout = Math.min(timeoutMs, 10_000);
    const base = buildConnector({ timeout: connectTimeout });
    this.agent = new Agent({
      connect: (options, callback) => {
        assertPublicHost(options.hostname, this.policy).then(
          (addresses) => {
            const chosen = addresses[0];
            if (!chosen) return callback(new Error(`${options.hostname} does not resolve`), null);
            const servername = isIP(options.hostname.replace(/^\[|\]$/g, '')) ? undefined : options.hostname;
            base({ ...options, hostname: chosen.address, ...(servername ? { servername } : {}) }, callback);
          },
          (error: Error) => callback(error, null),
        );
      },
      connectTimeout,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      keepAliveTimeout: 4_000,
    });
  }

  async send(url: string, headers: Record<string, string>, body: string): Promise<SendResult> {
    const started = performance.now();
    const took = () => Math.round(performance.now() - started);
    try {
      const response = await request(url, {
        dispatcher: this.agent,
        method: 'POST',
        headers: {
          ...headers,
          'content-type': 'application/json',
          'user-agent': `TaskFlow-Webhooks/${VERSION}`,
        },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await response.body.dump({ limit: BODY_READ_LIMIT }).catch(() => {});
      return { statusCode: response.statusCode, error: null, durationMs: took() };
    } catch (error) {
      return { statusCode: null, error: describe(error, this.timeoutMs), durationMs: took() };
    }
  }

  /** Ends every connection and request in flight at once (a shutdown does not wait for receivers). */
  async close(): Promise<void> {
    await this.agent.destroy().catch(() => {});
  }
}

/** A short, safe account of a failed request for the deliveries list. */
function describe(error: unknown, timeoutMs: number): string {
  if (!(error instanceof Error)) return 'request failed';
  if (error.name === 'TimeoutError' || /timeout/i.test(error.name)) return `no answer within ${timeoutMs} ms`;
  if (error.name === 'UnsafeAddressError') return `refused at connect: ${error.message}`;
  const code = (error as { code?: unknown }).code ?? (error.cause as { code?: unknown } | undefined)?.code;
  const message = error.message.slice(0, 200);
  return typeof code === 'string' ? `${code}: ${message}` : message;
}
