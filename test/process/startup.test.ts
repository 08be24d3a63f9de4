import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { JwksServer } from '../helpers/jwks-server.js';
import { packageOf, readImportLog, writeImportRecorder } from '../helpers/run-process.js';
import {
  freePort,
  killStrays,
  productionEnv,
  type RunningServer,
  requestJson,
  startServer,
} from '../helpers/spawn-server.js';

/**
 * Cold start (the performance issue: under 2 s): the server loads what its configuration needs and
 * nothing more. The MCP SDK waits for the first /mcp call, ioredis for a REDIS_URL, and PGlite for a
 * deployment without DATABASE_URL. A resolve hook records every module the real entry point loads.
 */
describe('start-up', () => {
  let work: string;
  let log: string;
  let jwks: JwksServer;
  let db: TestDatabase;
  let server: RunningServer;

  const packagesLoaded = () => new Set(readImportLog(log).flatMap((url) => packageOf(url) ?? []));

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'taskflow-startup-'));
    log = join(work, 'imports.log');
    jwks = new JwksServer();
    await jwks.addKey('EdDSA');
    await jwks.start();
    db = await createTestDatabase();
    const { DATABASE_URL: _unused, ...withoutDatabase } = productionEnv('', jwks.url);
    server = await startServer({
      ...(db.url ? productionEnv(db.url, jwks.url) : { ...withoutDatabase, DATA_DIR: join(work, 'data') }),
      // The in-memory rate limiter stays on: only a REDIS_URL should bring ioredis in.
      RATE_LIMIT_PER_MINUTE: '1000',
      PORT: String(await freePort()),
      NODE_OPTIONS: `--import ${writeImportRecorder(work)}`,
      IMPORT_LOG: log,
    });
  }, 120_000);

  afterAll(async () => {
    killStrays();
    await db?.cleanup();
    await jwks?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('loads neither the MCP SDK nor ioredis, and PGlite only without DATABASE_URL', () => {
    const loaded = packagesLoaded();
    expect(loaded.has('fastify')).toBe(true);
    expect(loaded.has('@modelcontextprotocol/sdk')).toBe(false);
    expect(loaded.has('ioredis')).toBe(false);
    expect(loaded.has('@electric-sql/pglite')).toBe(db.url === null);
  });

  it('loads the MCP SDK on the first /mcp call, which is answered', async () => {
    const token = await jwks.sign({ sub: 'startup-agent', role: 'user', name: 'startup-agent' });
    const answer = await requestJson(`${server.url}/mcp`, {
      method: 'POST',
      token,
      headers: { accept: 'application/json, text/event-stream' },
      timeoutMs: 20_000,
      body: {
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-06-18',
          capabilities: {},
          clientInfo: { name: 'raw', version: '0' },
        },
      },
    });
    expect(answer.status, answer.raw).toBe(200);
    expect(answer.body.result.serverInfo.name).toBe('taskflow');
    expect(packagesLoaded().has('@modelcontextprotocol/sdk')).toBe(true);
  });
});
