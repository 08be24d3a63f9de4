/**
 * The CLI's fetch: every mutation carries an Idempotency-Key, and a request the server could not take
 * (429, 502-504, or no connection) is sent again with the same key, waiting what `Retry-After` asks,
 * until the budget runs out. The key is what makes resending a mutation safe: the server replays the
 * first answer instead of acting twice.
 */

const RETRIED_STATUSES = new Set([429, 502, 503, 504]);
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 10_000;

export interface RetryingFetchOptions {
  /** How long, from the first attempt, a request may keep being retried. 0 disables retries. */
  budgetMs: number;
  /**
   * The key of the first mutation; later ones in the same run get `-2`, `-3`, … so that a script
   * rerun with the same key replays every step. Without it each mutation gets a random key.
   */
  idempotencyKey?: string;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/** Seconds or an HTTP date, as `Retry-After` allows; null when absent or unreadable. */
export function retryAfterMs(header: string | null, now: number): number | null {
  if (header === null) return null;
  if (/^\d+$/.test(header.trim())) return Number(header) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

export function retryingFetch(options: RetryingFetchOptions): typeof fetch {
  const send = options.fetch ?? fetch;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((done) => setTimeout(done, ms)));
  const now = options.now ?? Date.now;
  let mutations = 0;
  const nextKey = () => {
    mutations += 1;
    if (!options.idempotencyKey) return globalThis.crypto.randomUUID();
    return mutations === 1 ? options.idempotencyKey : `${options.idempotencyKey}-${mutations}`;
  };

  return async (input, init) => {
    const headers = new Headers(init?.headers);
    // tRPC sends mutations, and only mutations, as POST.
    if ((init?.method ?? 'GET').toUpperCase() === 'POST' && !headers.has('idempotency-key')) {
      headers.set('idempotency-key', nextKey());
    }
    const request = { ...init, headers };
    const deadline = now() + options.budgetMs;
    for (let attempt = 0; ; attempt++) {
      const backoff = Math.min(FIRST_BACKOFF_MS * 2 ** attempt, MAX_BACKOFF_MS);
      let response: Response;
      try {
        response = await send(input, request);
      } catch (error) {
        if (init?.signal?.aborted || now() + backoff > deadline) throw error;
        await sleep(backoff);
        continue;
      }
      if (!RETRIED_STATUSES.has(response.status)) return response;
      const wait = retryAfterMs(response.headers.get('retry-after'), now()) ?? backoff;
      if (now() + wait > deadline) return response;
      await response.body?.cancel();
      await sleep(wait);
    }
  };
}
