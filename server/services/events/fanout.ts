import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import type { Db } from '../../../db/client.js';
import type { Actor } from '../../auth/actor.js';
import { Audience } from './audience.js';
import { type EventRow, readAllEvents } from './read.js';

const BATCH = 500;

/**
 * The shared reader reads at most this often. Under a steady stream of changes each read carries
 * several, so a stream is written to once for all of them; it adds at most this much to an event's
 * delivery.
 */
const READ_EVERY_MS = 20;

/** Streams handed a batch of events per turn of the event loop. */
const SLICE = 25;

/**
 * Events handed to a stream and not yet taken. A stream that falls this far behind is dropped from
 * the shared feed and reads its own way back from the table (which is the only unbounded buffer).
 */
const MAX_QUEUED = 1_000;

export interface EventFilter {
  project?: string | undefined;
  taskId?: number | undefined;
}

/** One stream's seat at the shared feed: the events it may see, queued until it takes them. */
export class Subscriber {
  private queue: EventRow[] = [];
  private wakeUp: (() => void) | null = null;
  /** Set when it fell too far behind: the stream goes back to reading the table itself. */
  dropped = false;

  constructor(
    readonly actor: Actor,
    readonly filter: EventFilter,
    /** The stream has every event up to this id: the feed gives it only later ones. */
    readonly after: number,
    /** The stream's end (its client gone, or the shutdown). */
    private readonly signal: AbortSignal,
  ) {
    signal.addEventListener('abort', this.onEnd, { once: true });
  }

  private readonly onEnd = () => this.wakeUp?.();

  /**
   * Off the feed: the stream's signal lets go of this seat. A stream that falls behind and rejoins
   * takes a new seat on the same signal, which would otherwise keep every old one.
   */
  unseat(): void {
    this.signal.removeEventListener('abort', this.onEnd);
  }

  /**
   * Every event queued since the last take, oldest first (at least one); null once the stream ends
   * or the subscriber is dropped. All at once, so the stream writes them to its client in one go.
   */
  async take(): Promise<EventRow[] | null> {
    while (this.queue.length === 0 && !this.dropped && !this.signal.aborted) {
      await new Promise<void>((resolve) => {
        this.wakeUp = resolve;
      });
      this.wakeUp = null;
    }
    if (this.dropped || this.signal.aborted) return null;
    const rows = this.queue;
    this.queue = [];
    return rows;
  }

  wants(row: EventRow): boolean {
    const { id, projectSlug, taskId } = row.entry;
    return (
      id > this.after &&
      (this.filter.project === undefined || projectSlug === this.filter.project) &&
      (this.filter.taskId === undefined || taskId === this.filter.taskId)
    );
  }

  /** Queues `row`; false (and dropped) when the stream is too far behind to queue more. */
  offer(row: EventRow): boolean {
    if (this.queue.length >= MAX_QUEUED) {
      this.dropped = true;
      this.queue = [];
    } else {
      this.queue.push(row);
    }
    this.wakeUp?.();
    return !this.dropped;
  }
}

/**
 * One reader per process: when the horizon moves it reads the new events once, whoever may see them,
 * and hands each to the streams whose caller may see it and whose filter it matches. A stream behind
 * the shared position reads its own pages from the table until it has caught up, then joins.
 */
export class Fanout {
  /** Every event up to this id has been handed to the streams that had joined. */
  position = 0;
  private readonly subscribers = new Set<Subscriber>();
  private readonly audience: Audience;
  private reading = false;
  private again = false;
  private lastRead = Number.NEGATIVE_INFINITY;
  private done: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly horizon: () => number,
    private readonly closed: AbortSignal,
    private readonly log: { warn(details: object, message: string): void },
  ) {
    this.audience = new Audience(db);
  }

  /**
   * Seats a stream that has every event up to `after`; null when the feed has already handed out
   * events past it (the stream reads up to `position` itself, then tries again). Synchronous, so no
   * batch is handed out between the check and the seat: nothing is skipped or given twice.
   */
  join(actor: Actor, filter: EventFilter, after: number, signal: AbortSignal): Subscriber | null {
    if (after < this.position) return null;
    const subscriber = new Subscriber(actor, filter, after, signal);
    this.subscribers.add(subscriber);
    this.audience.add(actor);
    return subscriber;
  }

  leave(subscriber: Subscriber): void {
    if (!this.subscribers.delete(subscriber)) return;
    this.audience.remove(subscriber.actor);
    subscriber.unseat();
  }

  /** Reads up to the horizon; calls arriving while it reads make it read once more. */
  wake(): void {
    if (this.closed.aborted) return;
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    this.done = this.run();
  }

  /** Resolves once a read in progress has finished (for shutdown). */
  idle(): Promise<void> {
    return this.done;
  }

  private async run(): Promise<void> {
    try {
      do {
        this.again = false;
        // The changes of a busy stretch go out together: one read, and one socket write per stream
        // for all of them, instead of one per change.
        const wait = this.lastRead + READ_EVERY_MS - performance.now();
        if (wait > 0) await sleep(wait);
        this.lastRead = performance.now();
        await this.drain();
      } while (this.again && !this.closed.aborted);
    } catch (error) {
      // The next wake-up (a notification or the poll) reads from the same position again.
      this.log.warn({ errName: (error as Error).name }, 'reading events for the open streams failed');
    } finally {
      // In the same step as the last look at `again`: a wake-up in between is never lost.
      this.reading = false;
    }
  }

  private async drain(): Promise<void> {
    while (!this.closed.aborted && this.position < this.horizon()) {
      const upTo = this.horizon();
      if (this.subscribers.size === 0) {
        // No one to hand events to: a stream that joins later reads these itself.
        this.position = upTo;
        return;
      }
      const rows = await readAllEvents(this.db, { after: this.position, upTo, limit: BATCH });
      await this.audience.prepare(rows);
      // The streams seated now get these rows; from the position's update on, a stream that joins
      // is behind it and reads them itself. Nothing awaits between the two.
      const seated = [...this.subscribers];
      const last = rows.at(-1);
      this.position = rows.length === BATCH && last ? last.entry.id : upTo;
      await this.handOutInSlices(seated, rows);
    }
  }

  /**
   * Writing an event to a thousand sockets takes milliseconds; done at once it would hold every
   * request that arrives meanwhile. A slice of streams at a time, with the event loop's I/O (the
   * API's requests and their queries) let through between slices.
   */
  private async handOutInSlices(seated: Subscriber[], rows: EventRow[]): Promise<void> {
    for (const [i, subscriber] of seated.entries()) {
      if (i > 0 && i % SLICE === 0) await nextTurn();
      if (this.subscribers.has(subscriber)) this.handOut(subscriber, rows);
    }
  }

  private handOut(subscriber: Subscriber, rows: EventRow[]): void {
    for (const row of rows) {
      if (!subscriber.wants(row) || !this.audience.sees(subscriber.actor, row)) continue;
      if (!subscriber.offer(row)) {
        this.leave(subscriber);
        return;
      }
    }
  }
}
