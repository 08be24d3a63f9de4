import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDatabase, type Database } from '../../db/client.js';
import { buildApp } from '../../server/app.js';
import { createLocalVerifier } from '../../server/auth/verifier.js';
import { expectErrorBody, type HttpResult } from '../helpers/app.js';
import { describePostgresOnly } from '../helpers/postgres-only.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const serverUrl = process.env.TEST_DATABASE_URL;

// "Done when": with DATABASE_URL pointing at a server that is down, /health stays 200,
// /api/health/db answers 503 within 3 s, and 200 again once the database is back, without a restart.
// The app reaches a real PostgreSQL through a proxy that this file cuts and restores.
describePostgresOnly('a database outage', () => {
  const name = `taskflow_test_${randomBytes(6).toString('hex')}`;
  let admin: postgres.Sql | undefined;
  let proxy: TcpProxy | undefined;
  let database: Database | undefined;
  let app: FastifyInstance | undefined;

  async function get(url: string): Promise<HttpResult & { ms: number }> {
    if (!app) throw new Error('no app');
    const started = performance.now();
    const response = await app.inject({ method: 'GET', url });
    const ms = performance.now() - started;
    return {
      status: response.statusCode,
      headers: response.headers,
      body: response.body ? JSON.parse(response.body) : undefined,
      raw: response.body,
      ms,
    };
  }

  async function expectUnavailableWithin3s(): Promise<void> {
    // Twice: the second check must not be slower for the first having left a query behind.
    for (let i = 0; i < 2; i++) {
      const db = await get('/api/health/db');
      expectErrorBody(db, 503, 'SERVICE_UNAVAILABLE');
      expect(db.ms).toBeLessThan(3_000);
      const health = await get('/health');
      expect(health.status).toBe(200);
      expect(health.body).toMatchObject({ status: 'ok' });
    }
  }

  async function expectBackWithoutRestart(): Promise<void> {
    // postgres.js reconnects on the next query; allow a short grace for the pool to notice.
    const deadline = Date.now() + 5_000;
    let last = await get('/api/health/db');
    while (last.status !== 200 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      last = await get('/api/health/db');
    }
    expect(last.status, last.raw).toBe(200);
    expect(last.body).toMatchObject({ status: 'ok', database: 'postgres' });
  }

  beforeAll(async () => {
    const server = new URL(serverUrl as string);
    admin = postgres(server.href, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    proxy = new TcpProxy({ host: server.hostname, port: Number(server.port || 5432) });
    await proxy.start();
    const viaProxy = new URL(server.href);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    viaProxy.pathname = `/${name}`;
    database = await createDatabase({ kind: 'postgres', url: viaProxy.href, poolMax: 4 });
    await database.migrate();
    app = await buildApp({
      config: {
        allowedOrigins: ['http://localhost:3000'],
        bodyLimitBytes: 1024 * 1024,
        requestTimeoutMs: 15_000,
        logLevel: 'silent',
      },
      database,
      // Health routes are public; no token is ever verified here.
      verifier: createLocalVerifier({ keys: [] }, { issuer: null, audience: null }),
    });
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await proxy?.restore().catch(() => {});
    await database?.close();
    await proxy?.close();
    await admin?.unsafe(`drop database if exists "${name}" with (force)`);
    await admin?.end();
  });

  it('answers 200 on /health and /api/health/db while the database is reachable', async () => {
    expect((await get('/health')).status).toBe(200);
    const db = await get('/api/health/db');
    expect(db.status, db.raw).toBe(200);
    expect(db.body).toMatchObject({ status: 'ok', database: 'postgres' });
  });

  it('when the database refuses connections: /health 200, /api/health/db 503 with the API error body within 3 s', async () => {
    await proxy?.cut();
    await expectUnavailableWithin3s();
  });

  it('answers 200 again once the database is reachable, on the same app', async () => {
    await proxy?.restore();
    await expectBackWithoutRestart();
  });

  it('when the database accepts connections but never answers: 503 within 3 s, then 200 after it recovers', async () => {
    await proxy?.stall();
    await expectUnavailableWithin3s();
    await proxy?.restore();
    await expectBackWithoutRestart();
  });

  it('serves reads that need the database again after an outage', async () => {
    if (!database) throw new Error('no database');
    const db = database.db;
    // A real table, not just `select 1`, on as many connections as the pool holds.
    const results = await Promise.all(
      [1, 2, 3, 4].map(
        async () =>
          (await db.execute(sql`select count(*)::int as n from audit_log`)) as unknown as { n: number }[],
      ),
    );
    expect(results.map((rows) => rows[0]?.n)).toEqual([0, 0, 0, 0]);
  });
});
