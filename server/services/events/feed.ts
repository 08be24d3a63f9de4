import type { Database } from '../../../db/client.js';
import type { Actor } from '../../auth/actor.js';
import { tooMany } from '../../errors.js';
import { type EventFilter, Fanout, type Subscriber } from './fanout.js';
import { Horizon } from './horizon.js';

export const EVENTS_CHANNEL = 'taskflow_events';

export interface EventFeedOptions {
  /** The table is read this often even without a notification (a lost one only delays). */
  pollMs?: number;
  /** How soon a gap held by running transactions is looked at again. */
  gapRetryMs?: number;
  /** Open streams per actor; one more is refused with 429. */
  maxStreamsPerActor?: number;
  log: { warn(details: object, message: string): void };
}

/**
 * One per process: advances the settled horizon when PostgreSQL (or PGlite) says an audit row was
 * committed, and at least every `pollMs`, and has the shared reader hand the new events to the open
 * streams (one read per change, however many streams). Started by the first reader, so a process
 * nobody subscribes to holds no LISTEN connection.
 */
export class EventFeed {
  private readonly horizon: Horizon;
  private readonly fanout: Fanout;
  private readonly pollMs: number;
  private readonly gapRetryMs: number;
  readonly maxStreamsPerActor: number;
  private started: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private unlisten: (() => Promise<void>) | null = null;
  private running = false;
  private again = false;
  private readonly streams = new Map<string, number>();
  private readonly closing = new AbortController();

  constructor(
    private readonly database: Database,
    private readonly options: EventFeedOptions,
  ) {
    this.horizon = new Horizon(database.db);
    this.fanout = new Fanout(database.db, () => this.horizon.position, this.closing.signal, options.log);
    this.pollMs = options.pollMs ?? 1_000;
    this.gapRetryMs = options.gapRetryMs ?? 10;
    this.maxStreamsPerActor = options.maxStreamsPerActor ?? 20;
  }

  /** Aborted when the process shuts down: streams end so their clients reconnect elsewhere. */
  get closed(): AbortSignal {
    return this.closing.signal;
  }

  /** Every audit id up to this one is settled: readers deliver up to it and never need to look back. */
  async position(): Promise<number> {
    // A start that failed (the database down) is tried again by the next reader.
    this.started ??= this.start().catch((error: unknown) => {
      this.started = null;
      throw error;
    });
    await this.started;
    return this.horizon.position;
  }

  /** Every event up to this id has been handed to the streams seated at the shared feed. */
  get shared(): number {
    return this.fanout.position;
  }

  /** Seats a stream that has every event up to `after`; null when it must first read up to `shared`. */
  join(actor: Actor, filter: EventFilter, after: number, signal: AbortSignal): Subscriber | null {
    return this.fanout.join(actor, filter, after, signal);
  }

  leave(subscriber: Subscriber): void {
    this.fanout.leave(subscriber);
  }

  /** Counts an open stream of `actorId`; the returned function ends it. Refuses one over the cap. */
  admit(actorId: string): () => void {
    const open = this.streams.get(actorId) ?? 0;
    if (open >= this.maxStreamsPerActor) {
      throw tooMany(`At most ${this.maxStreamsPerActor} open event streams per caller`);
    }
    this.streams.set(actorId, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = (this.streams.get(actorId) ?? 1) - 1;
      if (now === 0) this.streams.delete(actorId);
      else this.streams.set(actorId, now);
    };
  }

  async close(): Promise<void> {
    this.closing.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.started?.catch(() => {});
    await this.fanout.idle();
    await this.unlisten?.().catch(() => {});
    this.unlisten = null;
  }

  private async start(): Promise<void> {
    try {
      this.unlisten ??= await this.database.listen(EVENTS_CHANNEL, () => this.wake());
    } catch (error) {
      this.options.log.warn(
        { errName: (error as Error).name },
        `LISTEN is unavailable; reading the event table every ${this.pollMs} ms instead`,
      );
    }
    // A shutdown stops the wait for running transactions: no stream will read this horizon.
    await this.horizon.start(this.gapRetryMs, this.closing.signal);
    this.fanout.position = this.horizon.position;
    this.schedule(this.pollMs);
  }

  private schedule(ms: number): void {
    if (this.closing.signal.aborted) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.wake(), ms);
    this.timer.unref();
  }

  /** Advances the horizon; calls arriving while it runs make it run once more. */
  private wake(): void {
    if (this.closing.signal.aborted) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.advance().finally(() => {
      this.running = false;
    });
  }

  private async advance(): Promise<void> {
    let blocked = false;
    try {
      do {
        this.again = false;
        let step = await this.horizon.advance();
        this.fanout.wake();
        while (step === 'more') {
          step = await this.horizon.advance();
          this.fanout.wake();
        }
        blocked = this.horizon.blocked;
      } while (this.again && !this.closing.signal.aborted);
    } catch (error) {
      this.options.log.warn({ errName: (error as Error).name }, 'reading the event table failed');
    }
    // Also when the horizon did not move: a shared read that failed is tried again.
    this.fanout.wake();
    this.schedule(blocked ? this.gapRetryMs : this.pollMs);
  }
}
