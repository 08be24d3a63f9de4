import { systemResolve, type UrlPolicy } from './ssrf.js';

export * as attempts from './attempts.js';
export { DEFAULT_RETRY_SCHEDULE_MS, GIVE_UP_AFTER_MS } from './backoff.js';
export * as endpoints from './endpoints.js';
export { notifySenders } from './queue.js';
export { type Resolve, systemResolve, type UrlPolicy } from './ssrf.js';
export { WebhookWorker, type WebhookWorkerOptions } from './worker.js';

/** What procedures need of webhook delivery: the URL rules, and a way to have a new delivery sent now. */
export interface WebhookRuntime {
  urls: UrlPolicy;
  /** Looks for due deliveries at once (after a `test` commits), instead of at the next poll. */
  wake(): void;
}

/** For contexts without a delivery worker (scripts, some tests): the strict URL rules, no wake-up. */
export const detachedWebhooks: WebhookRuntime = {
  urls: { requireHttps: false, allowPrivate: false, resolve: systemResolve },
  wake: () => {},
};
