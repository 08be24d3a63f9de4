import type { Database } from '../../../db/client.js';
import { tooMany } from '../../errors.js';
import { Horizon } from './horizon.js';

/** A promise and the function that resolves it. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

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
 * committed, and at least every `pollMs`, and wakes the streams waiting for it. Each stream reads its
 * own events from the table up to the horizon, so the table is the only buffer. Started by the first
 * reader, so a process nobody subscribes to holds no LISTEN connection.
 */
export class EventFeed {
  private readonly horizon: Horizon;
  private readonly pollMs: number;
  private readonly gapRetryMs: number;
  readonly maxStreamsPerActor: number;
  private started: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private unlisten: (() => Promise<void>) | null = null;
  private running = false;
  private again = false;
  private changed = signal();
  private readonly streams = new Map<string, number>();
  private readonly closing = new AbortController();

  constructor(
    private readonly database: Database,
    private readonly options: EventFeedOptions,
  ) {
    this.horizon = new Horizon(database.db);
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

  /** Resolves once the horizon is past `after`, or at `signal`, or after `timeoutMs`. */
  async waitBeyond(after: number, signal: AbortSignal, timeoutMs: number): Promise<void> {
    if ((await this.position()) > after || signal.aborted) return;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    await Promise.race([
      this.changed.promise,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
        onAbort = resolve;
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
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
    this.changed.resolve();
    await this.started?.catch(() => {});
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
        while (step === 'more') {
          this.notify();
          step = await this.horizon.advance();
        }
        if (step === 'moved') this.notify();
        blocked = this.horizon.blocked;
      } while (this.again && !this.closing.signal.aborted);
    } catch (error) {
      this.options.log.warn({ errName: (error as Error).name }, 'reading the event table failed');
    }
    this.schedule(blocked ? this.gapRetryMs : this.pollMs);
  }

  private notify(): void {
    const settled = this.changed;
    this.changed = signal();
    settled.resolve();
  }
}
