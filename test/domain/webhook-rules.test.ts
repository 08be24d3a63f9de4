import { Agent } from 'undici';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config.js';
import {
  DEFAULT_RETRY_SCHEDULE_MS,
  GIVE_UP_AFTER_MS,
  JITTER,
  nextAttemptAt,
  parseRetrySchedule,
} from '../../server/services/webhooks/backoff.js';
import { WebhookSender } from '../../server/services/webhooks/sender.js';
import { isPrivateAddress, urlProblem } from '../../server/services/webhooks/ssrf.js';

const policy = { scheduleMs: DEFAULT_RETRY_SCHEDULE_MS, giveUpAfterMs: GIVE_UP_AFTER_MS };
const created = new Date('2026-01-01T00:00:00.000Z');
const later = (ms: number) => new Date(created.getTime() + ms);

describe('webhook back-off', () => {
  it('waits about 5 s, 30 s, 2 min, 10 min, 1 h, then every 3 h', () => {
    const middle = () => 0.5;
    const delays = [1, 2, 3, 4, 5, 6, 7, 8].map(
      (attempts) => Number(nextAttemptAt(policy, attempts, created, created, middle)) - created.getTime(),
    );
    expect(delays).toEqual([5_000, 30_000, 120_000, 600_000, 3_600_000, 10_800_000, 10_800_000, 10_800_000]);
  });

  it('spreads each delay by ±20 %', () => {
    const low = nextAttemptAt(policy, 2, created, created, () => 0);
    const high = nextAttemptAt(policy, 2, created, created, () => 0.999_999);
    expect(Number(low) - created.getTime()).toBe(30_000 * (1 - JITTER));
    expect(Number(high) - created.getTime()).toBeCloseTo(30_000 * (1 + JITTER), -1);
  });

  it('gives up 24 h after the event, with one last try at the deadline', () => {
    const late = later(GIVE_UP_AFTER_MS - 60_000);
    expect(nextAttemptAt(policy, 9, created, late, () => 0.5)).toEqual(later(GIVE_UP_AFTER_MS));
    expect(nextAttemptAt(policy, 10, created, later(GIVE_UP_AFTER_MS))).toBeNull();
  });

  it('reads WEBHOOK_RETRY_SCHEDULE and refuses what is not one', () => {
    expect(parseRetrySchedule('5s, 30s,2m,10m,1h,3h')).toEqual([...DEFAULT_RETRY_SCHEDULE_MS]);
    expect(parseRetrySchedule('100ms,1.5s')).toEqual([100, 1_500]);
    for (const bad of ['', '5', '5x', '-1s', '0s', '25h', '5s,,1m'])
      expect(parseRetrySchedule(bad)).toBeNull();
    expect(loadConfig({ WEBHOOK_RETRY_SCHEDULE: '1s,2s' }).webhooks.retryScheduleMs).toEqual([1_000, 2_000]);
    expect(() => loadConfig({ WEBHOOK_RETRY_SCHEDULE: 'soon' })).toThrow(/WEBHOOK_RETRY_SCHEDULE must be/);
    expect(() => loadConfig({ WEBHOOK_ALLOW_PRIVATE: 'yes' })).toThrow(
      /WEBHOOK_ALLOW_PRIVATE must be true or false/,
    );
    expect(loadConfig({}).webhooks).toEqual({
      allowPrivate: false,
      requireHttps: false,
      retryScheduleMs: DEFAULT_RETRY_SCHEDULE_MS,
      timeoutMs: 10_000,
      senders: true,
    });
  });
});

describe('webhook address rules', () => {
  it.each([
    '127.0.0.1',
    '127.1.2.3',
    '10.0.0.1',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254',
    '100.100.100.200',
    '0.0.0.0',
    '255.255.255.255',
    '224.0.0.1',
    '::1',
    '::',
    'fd00:ec2::254',
    'fc00::1',
    'fe80::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:a9fe:a9fe',
    '64:ff9b::a9fe:a9fe',
    '[::1]',
    'not an address',
  ])('refuses %s', (address) => {
    expect(isPrivateAddress(address)).toBe(true);
  });

  it.each(['93.184.215.14', '1.1.1.1', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])(
    'allows %s',
    (address) => {
      expect(isPrivateAddress(address)).toBe(false);
    },
  );

  it('checks scheme, credentials and every address a host resolves to', async () => {
    const resolve = async (host: string) =>
      host === 'split.test'
        ? [
            { address: '93.184.215.14', family: 4 },
            { address: '10.0.0.5', family: 4 },
          ]
        : [{ address: '93.184.215.14', family: 4 }];
    const strict = { requireHttps: true, allowPrivate: false, resolve };
    expect(await urlProblem('https://hooks.test/x', strict)).toBeNull();
    expect(await urlProblem('http://hooks.test/x', strict)).toMatch(/https/);
    expect(await urlProblem('ftp://hooks.test/x', strict)).toMatch(/http\(s\)/);
    expect(await urlProblem('https://user:pw@hooks.test/x', strict)).toMatch(/credentials/);
    expect(await urlProblem('https://split.test/x', strict)).toMatch(/private/);
    expect(await urlProblem('nonsense', strict)).toMatch(/absolute/);
    const failing = { ...strict, resolve: () => Promise.reject(new Error('ENOTFOUND')) };
    expect(await urlProblem('https://nowhere.test/', failing)).toMatch(/does not resolve/);
    expect(await urlProblem('https://split.test/x', { ...strict, allowPrivate: true })).toBeNull();
  });
});

describe('the webhook sender', () => {
  it("leaves Node's own fetch on Node's dispatcher (undici would take it over on import)", async () => {
    const sender = new WebhookSender(
      { requireHttps: false, allowPrivate: false, resolve: async () => [] },
      1_000,
    );
    const installed = (globalThis as unknown as Record<symbol, unknown>)[
      Symbol.for('undici.globalDispatcher.1')
    ];
    expect(installed instanceof Agent).toBe(false);
    await sender.close();
  });
});
