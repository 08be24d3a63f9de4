import { and, eq, sql } from 'drizzle-orm';
import type { Database } from '../../../db/client.js';
import { webhookDeliveries } from '../../../db/schema/index.js';
import { toEvent } from '../../routers/dto.js';
import { type EventRow, readEventsById } from '../events/read.js';
import type { RetryPolicy } from './backoff.js';
import {
  anyEnabledEndpoint,
  type Claimed,
  claim,
  isSuccess,
  purgeFinished,
  settleFailed,
  WEBHOOKS_CHANNEL,
} from './queue.js';
import { WebhookSender } from './sender.js';
import { signatureHeaders } from './signing.js';
import type { UrlPolicy } from './ssrf.js';
import { SuccessRecorder } from './success-recorder.js';

export interface WebhookWorkerOptions {
  policy: RetryPolicy;
  /** One attempt's limit, connecting and answering included. */
  timeoutMs: number;
  urls: UrlPolicy;
  /** Due deliveries are looked for this often even without a notification (a lost one only delays). */
  pollMs?: number;
  /** Attempts in flight in this instance; fixed, instead of SENDING_LIMITS. */
  maxInFlight?: number;
  /** Attempts in flight per endpoint, over all instances; fixed, instead of SENDING_LIMITS. */
  perEndpoint?: number;
  /** Whether the API has served a request lately (its senders then keep to the busy limits); without it, always. */
  apiBusy?: () => boolean;
  log: { warn(details: object, message: string): void };
}

/**
 * Attempts in flight, per endpoint (over all instances) and in all (in this instance). The senders
 * share the API's process: while it serves requests they keep to `busy`, so the API comes first.
 * Once it is quiet they take `quiet`, which drains a backlog about half again as fast (a sender
 * mostly waits on its claim, the answer and the record), at less CPU per delivery. Either way a
 * slow endpoint holds an eighth of the slots at most.
 */
export const SENDING_LIMITS = {
  busy: { perEndpoint: 4, maxInFlight: 32 },
  quiet: { perEndpoint: 8, maxInFlight: 64 },
} as const;

// How long a shutdown waits for a claim or for handing attempts back before it goes on without them
// (a claim not handed back is due again when its lease passes).
const CLOSE_WAIT_MS = 2_000;

/** Waits for `work`, at most `ms`. */
async function within(ms: number, work: Promise<unknown> | null): Promise<void> {
  if (!work) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work.catch(() => {}), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

const PURGE_EVERY_MS = 3_600_000;

// A claim outlives its attempt by this much, so it never lapses under a sender that is still waiting.
const LEASE_MARGIN_MS = 5_000;

/**
 * Sends due webhook deliveries, one per process. Woken by the notification of a change that queued
 * a delivery, by its own writes, and every `pollMs`; it claims what is due (see `claim`), sends each
 * delivery without waiting for the others, and writes each result as it comes. A slow endpoint ties
 * up at most `perEndpoint` senders; requests never wait for it.
 */
export class WebhookWorker {
  private readonly sender: WebhookSender;
  private readonly successes: SuccessRecorder;
  private readonly pollMs: number;
  private readonly inFlight = new Map<number, { delivery: Claimed; done: Promise<void> }>();
  private timer: NodeJS.Timeout | null = null;
  private purge: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private closed = false;
  private unlisten: (() => Promise<void>) | null = null;
  private listening = false;

  constructor(
    private readonly database: Database,
    private readonly options: WebhookWorkerOptions,
  ) {
    this.sender = new WebhookSender(options.urls, options.timeoutMs);
    this.successes = new SuccessRecorder(database.db);
    this.pollMs = options.pollMs ?? 1_000;
  }

  start(): void {
    this.wake();
    this.purge = setInterval(() => {
      purgeFinished(this.database.db).catch((error: Error) => {
        this.options.log.warn({ errName: error.name }, 'webhook delivery: purging old deliveries failed');
      });
    }, PURGE_EVERY_MS);
    this.purge.unref();
  }

  /** Looks for due deliveries now; calls while it looks make it look once more. */
  wake(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.look().finally(() => {
      this.running = null;
    });
  }

  /**
   * Stops at once: attempts in flight are cut off and handed back (due again now, their attempt not
   * counted), so a shutdown never waits for a receiver and the next instance retries them.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.purge) clearInterval(this.purge);
    // A claim under way finishes first, so what it took is sent (and cut off) like the rest; none of
    // this may hold a shutdown for long when the database is what is slow.
    await within(CLOSE_WAIT_MS, this.running);
    await this.sender.close();
    await within(CLOSE_WAIT_MS, Promise.allSettled([...this.inFlight.values()].map(({ done }) => done)));
    await this.unlisten?.().catch(() => {});
  }

  private limits(): { perEndpoint: number; maxInFlight: number } {
    const tier = (this.options.apiBusy?.() ?? true) ? SENDING_LIMITS.busy : SENDING_LIMITS.quiet;
    return {
      perEndpoint: this.options.perEndpoint ?? tier.perEndpoint,
      maxInFlight: this.options.maxInFlight ?? tier.maxInFlight,
    };
  }

  private async look(): Promise<void> {
    try {
      do {
        this.again = false;
        const { perEndpoint, maxInFlight } = this.limits();
        const free = maxInFlight - this.inFlight.size;
        if (free <= 0) break;
        const batch = await claim(this.database.db, {
          leaseMs: this.options.timeoutMs + LEASE_MARGIN_MS,
          perEndpoint,
          limit: free,
        });
        // The events of a claim are read in one query, not one per delivery.
        const events = await readEventsById(
          this.database.db,
          batch.flatMap((delivery) => (delivery.eventId === null ? [] : [delivery.eventId])),
        );
        for (const delivery of batch) this.launch(delivery, events);
        if (batch.length === free) this.again = true;
      } while (this.again && !this.closed);
      if (!this.listening) await this.listenOnceNeeded();
    } catch (error) {
      this.options.log.warn({ errName: (error as Error).name }, 'webhook delivery: reading the queue failed');
    }
    this.schedule();
  }

  /** LISTEN only once there is an endpoint: a process without webhooks holds no extra connection. */
  private async listenOnceNeeded(): Promise<void> {
    if (!(await anyEnabledEndpoint(this.database.db))) return;
    this.listening = true;
    try {
      this.unlisten = await this.database.listen(WEBHOOKS_CHANNEL, () => this.wake());
      if (this.closed) await this.unlisten();
    } catch (error) {
      this.options.log.warn(
        { errName: (error as Error).name },
        `LISTEN is unavailable; webhook deliveries are looked for every ${this.pollMs} ms`,
      );
    }
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.wake(), this.pollMs);
    this.timer.unref();
  }

  private launch(delivery: Claimed, events: Map<number, EventRow>): void {
    const done = this.attempt(delivery, events)
      .catch((error: Error) => {
        this.options.log.warn(
          { errName: error.name, deliveryId: delivery.id },
          'webhook delivery: recording an attempt failed',
        );
      })
      .finally(() => {
        this.inFlight.delete(delivery.id);
        this.wake();
      });
    this.inFlight.set(delivery.id, { delivery, done });
  }

  private async attempt(delivery: Claimed, events: Map<number, EventRow>): Promise<void> {
    const body = bodyOf(delivery, events);
    const at = new Date();
    const sent = await this.sender.send(
      delivery.url,
      signatureHeaders(delivery.secret, delivery.messageId, body, at),
      body,
    );
    if (this.closed && sent.statusCode === null) {
      await this.handBack(delivery);
      return;
    }
    const result = { ...sent, at };
    if (isSuccess(sent.statusCode)) await this.successes.record({ delivery, sent: result });
    else await settleFailed(this.database.db, delivery, result, this.options.policy);
  }

  /** Makes a claimed delivery due again at once, its cut-off attempt not counted. */
  private async handBack(delivery: Claimed): Promise<void> {
    await this.database.db
      .update(webhookDeliveries)
      .set({
        attempts: sql`${webhookDeliveries.attempts} - 1`,
        nextAttemptAt: new Date(),
        leaseUntil: null,
      })
      .where(
        and(
          eq(webhookDeliveries.id, delivery.id),
          eq(webhookDeliveries.attempts, delivery.attempts),
          eq(webhookDeliveries.state, 'pending'),
        ),
      );
  }
}

/** The body of a delivery: its ping, or the event JSON. */
function bodyOf(delivery: Claimed, events: Map<number, EventRow>): string {
  if (delivery.eventId === null) return JSON.stringify(delivery.payload ?? {});
  const event = events.get(delivery.eventId);
  // The audit log is append-only: an event a delivery names is always there.
  if (!event) throw new Error(`event ${delivery.eventId} not found`);
  return JSON.stringify(toEvent(event));
}
