// When a failed delivery is tried again. The schedule is a list of delays; the last one repeats until
// the delivery is `giveUpAfterMs` old. Each delay is spread by ±20 % so that many deliveries failing
// together (an endpoint that was down) do not come back together.

/** About 5 s, 30 s, 2 min, 10 min, 1 h, then every 3 h (SPEC §13). */
export const DEFAULT_RETRY_SCHEDULE_MS: readonly number[] = [
  5_000, 30_000, 120_000, 600_000, 3_600_000, 10_800_000,
];
/** A delivery still failing this long after its event is given up, and so is its endpoint. */
export const GIVE_UP_AFTER_MS = 24 * 3_600_000;
export const JITTER = 0.2;

export interface RetryPolicy {
  scheduleMs: readonly number[];
  giveUpAfterMs: number;
}

/**
 * The time of the next attempt after `attempts` failed ones of a delivery created at `createdAt`, or
 * null when it is given up. `random` is in [0, 1).
 */
export function nextAttemptAt(
  policy: RetryPolicy,
  attempts: number,
  createdAt: Date,
  now: Date,
  random: () => number = Math.random,
): Date | null {
  const deadline = createdAt.getTime() + policy.giveUpAfterMs;
  if (now.getTime() >= deadline) return null;
  const { scheduleMs } = policy;
  const base = scheduleMs[Math.min(Math.max(attempts, 1), scheduleMs.length) - 1] ?? 0;
  const delay = base * (1 - JITTER + 2 * JITTER * random());
  const at = now.getTime() + Math.round(delay);
  // One last try at the deadline rather than none past it.
  return new Date(Math.min(at, deadline));
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** `5s,30s,2m,10m,1h,3h` (units ms, s, m, h) → delays in ms; null when it does not read as one. */
export function parseRetrySchedule(text: string): number[] | null {
  const parts = text.split(',').map((part) => part.trim());
  const delays: number[] = [];
  for (const part of parts) {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(part);
    const unit = match?.[2];
    if (!match || !unit) return null;
    const ms = Math.round(Number(match[1]) * (UNIT_MS[unit] ?? 0));
    if (ms <= 0 || ms > 24 * 3_600_000) return null;
    delays.push(ms);
  }
  return delays.length > 0 ? delays : null;
}
