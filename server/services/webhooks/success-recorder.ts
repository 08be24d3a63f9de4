import type { Db } from '../../../db/client.js';
import { type Succeeded, settleSucceeded } from './queue.js';

/** The most 2xx answers one statement records. */
const MOST_PER_STATEMENT = 64;

interface Waiting {
  succeeded: Succeeded;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Records 2xx answers in groups, the way a database groups commits: the first goes at once, and
 * those that come while its statement runs go together in the next. Under load one commit covers
 * many deliveries instead of one each; idle, an answer waits for nothing.
 */
export class SuccessRecorder {
  private waiting: Waiting[] = [];
  private running: Promise<void> | null = null;

  constructor(private readonly db: Db) {}

  /** Resolves once the answer is recorded (or skipped, its claim lost); rejects if the statement failed. */
  record(succeeded: Succeeded): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ succeeded, resolve, reject });
      this.running ??= this.drain();
    });
  }

  private async drain(): Promise<void> {
    while (this.waiting.length > 0) {
      const group = this.waiting.splice(0, MOST_PER_STATEMENT);
      try {
        await settleSucceeded(
          this.db,
          group.map((one) => one.succeeded),
          new Date(),
        );
        for (const one of group) one.resolve();
      } catch (error) {
        for (const one of group) one.reject(error);
      }
    }
    this.running = null;
  }
}
