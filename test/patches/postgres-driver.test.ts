import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { describePostgresOnly, TEST_DATABASE_URL } from '../helpers/postgres-only.js';

const fixture = fileURLToPath(new URL('../fixtures/reserved-connection-killed.mjs', import.meta.url));

describe('the postgres.js patch (server/patches/postgres+3.4.9.patch, applied by postinstall)', () => {
  it('is applied to the installed driver', () => {
    for (const file of ['src/connection.js', 'cjs/src/connection.js', 'src/index.js', 'src/queue.js']) {
      const source = readFileSync(new URL(`../../node_modules/postgres/${file}`, import.meta.url), 'utf8');
      expect(source, file).toContain('TaskFlow patch');
    }
  });

  it('keeps a pool queue small when connections cycle through it (the busy queue under steady load)', async () => {
    type Queue<T> = { readonly length: number; push(x: T): T; shift(): T; remove(x: T): T | null };
    const { default: createQueue } = (await import(
      new URL('../../node_modules/postgres/src/queue.js', import.meta.url).href
    )) as { default: <T>(initial?: T[]) => Queue<T> };
    const queue = createQueue<string>();
    const connections = Array.from({ length: 10 }, (_, i) => queue.push(`c${i}`));
    // What the pool does for each query it pipelines onto a busy connection: shift it, push it back.
    for (let i = 0; i < 100_000; i++) queue.push(queue.shift());
    expect(queue.length).toBe(10);

    // remove() scans the queue's array: it must hold the 10 queued connections, not 100 000 holes.
    const scanned: number[] = [];
    const indexOf = Array.prototype.indexOf;
    Array.prototype.indexOf = function (this: unknown[], ...args: Parameters<typeof indexOf>) {
      scanned.push(this.length);
      return indexOf.apply(this, args);
    };
    let removed: string | null;
    try {
      removed = queue.remove('c3');
    } finally {
      Array.prototype.indexOf = indexOf;
    }
    expect(removed).toBe('c3');
    expect(Math.max(...scanned)).toBeLessThan(200);
    expect(queue.length).toBe(9);
    const order = Array.from({ length: 9 }, () => queue.shift());
    expect(order.sort()).toEqual(connections.filter((c) => c !== 'c3').sort());
    expect(queue.length).toBe(0);
  });
});

describePostgresOnly('the postgres.js patch against a real server', () => {
  it('turns a killed backend under a reserved connection or a transaction into catchable errors instead of a crash or a hang', () => {
    const run = spawnSync(process.execPath, [fixture, TEST_DATABASE_URL ?? ''], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(run.error, 'the process hung').toBeUndefined();
    expect(run.stderr).not.toMatch(/TypeError/);
    expect(run.status, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}');
    const closedCodes = ['ECONNRESET', 'CONNECTION_CLOSED', 'EPIPE'];
    expect(result.poolStillWorks).toBe(true);
    // Sent before and after the driver saw the close: each query settles, none waits for ever.
    for (const outcomes of [result.reservedOutcomes, result.afterCloseOutcomes]) {
      expect(outcomes).toHaveLength(2);
      for (const code of outcomes) expect(closedCodes).toContain(code);
    }
    expect(result.afterCloseOutcomes).toEqual(['CONNECTION_CLOSED', 'CONNECTION_CLOSED']);
    // Released right after its error: the next transaction and query settle; the plain query runs.
    expect(closedCodes).toContain(result.failedBeforeRelease);
    expect(result.afterRelease).toHaveLength(2);
    expect(['ok', ...closedCodes]).toContain(result.afterRelease[0]);
    expect(result.afterRelease[1]).toBe('ok');
    expect(result.transactionStage, 'the transaction failed before its backend was killed').toBe('killed');
    expect([...closedCodes, '57P01']).toContain(result.transaction);
  });
});
