import { EventSource } from 'eventsource';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AUDIT_ACTIONS } from '../../shared/enums.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { JwksServer } from '../helpers/jwks-server.js';
import { describePostgresOnly } from '../helpers/postgres-only.js';
import {
  killStrays,
  productionEnv,
  type RunningServer,
  requestJson,
  startPair,
} from '../helpers/spawn-server.js';

// Events issue, "Done when" 1, last clause, with real processes: a client follows the event stream
// on instance A while changes are written through A and B; A gets SIGTERM. A's stream ends, A exits
// 0, and the client (an EventSource, reconnecting by itself as browsers do, to wherever the "load
// balancer" now sends it) resumes on B from its Last-Event-ID with every event, none twice.
describePostgresOnly('SIGTERM on the instance a client follows', () => {
  let jwks: JwksServer | undefined;
  let db: TestDatabase | undefined;
  let sql: postgres.Sql | undefined;
  let a: RunningServer;
  let b: RunningServer;
  let token = '';

  beforeAll(async () => {
    jwks = new JwksServer();
    await jwks.addKey('EdDSA');
    await jwks.start();
    token = await jwks.sign({ sub: 'fo-owner', role: 'user', name: 'fo-owner' });
    db = await createTestDatabase();
    if (!db.url) throw new Error('no database url');
    sql = postgres(db.url, { max: 1, onnotice: () => {} });
    const env = productionEnv(db.url, jwks.url);
    [a, b] = await startPair(env);
    const project = await requestJson(`${b.url}/api/projects`, {
      method: 'POST',
      token,
      body: { slug: 'fo', name: 'Failover' },
      timeoutMs: 10_000,
    });
    expect(project.status, project.raw).toBe(201);
  }, 120_000);

  afterAll(async () => {
    killStrays();
    await sql?.end({ timeout: 5 });
    await db?.cleanup();
    await jwks?.stop();
  });

  async function auditIdsAfter(after: number): Promise<number[]> {
    if (!sql) throw new Error('no sql');
    const rows = await sql<{ id: string }[]>`select id from audit_log
      where project_slug = 'fo' and id > ${after} order by id`;
    return rows.map((row) => Number(row.id));
  }

  it('ends the stream cleanly; the client resumes on the other instance without loss or repeats', async () => {
    const task = await requestJson(`${b.url}/api/tasks`, {
      method: 'POST',
      token,
      body: { title: 'v0', projectSlug: 'fo' },
      timeoutMs: 10_000,
    });
    expect(task.status, task.raw).toBe(201);
    const start = (await auditIdsAfter(0)).at(-1) ?? 0;

    let target = a.url;
    const received: number[] = [];
    const connectedTo: string[] = [];
    const source = new EventSource(`${a.url}/api/events?project=fo&after=${start}`, {
      fetch: (url, init) => {
        connectedTo.push(target);
        return fetch(String(url).replace(a.url, target), {
          ...init,
          headers: { ...init?.headers, authorization: `Bearer ${token}` },
        });
      },
    });
    for (const action of AUDIT_ACTIONS) {
      source.addEventListener(action, (event) => received.push(Number(event.lastEventId)));
    }

    // Writes go on through both instances the whole time; those sent to A after it stopped fail.
    let writing = true;
    let n = 0;
    const writer = (async () => {
      while (writing) {
        n += 1;
        const via = n % 2 === 0 ? a.url : b.url;
        await requestJson(`${via}/api/tasks/${task.body.id}`, {
          method: 'PATCH',
          token,
          body: { title: `v${n}` },
          timeoutMs: 10_000,
        }).catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();

    try {
      await expect.poll(() => received.length, { timeout: 15_000 }).toBeGreaterThanOrEqual(10);
      target = b.url;
      a.child.kill('SIGTERM');
      const exit = await a.exited;
      expect(exit.code, exit.stderr).toBe(0);
      // The client waits the stream's `retry` (1 s) before reconnecting: writes through B go on meanwhile.
      const beforeFailover = received.length;
      await expect.poll(() => received.length, { timeout: 15_000 }).toBeGreaterThan(beforeFailover + 10);
      writing = false;
      await writer;
      const all = await auditIdsAfter(start);
      await expect.poll(() => received.at(-1), { timeout: 15_000 }).toBe(all.at(-1));
      expect(received).toEqual(all);
      expect(connectedTo[0]).toBe(a.url);
      expect(connectedTo.slice(1)).toContain(b.url);
    } finally {
      writing = false;
      await writer;
      source.close();
    }
  }, 90_000);
});
