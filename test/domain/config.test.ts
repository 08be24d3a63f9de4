import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_REQUEST_TIMEOUT_MS,
  databaseOptions,
  loadConfig,
  PGLITE_SEED,
  procedureDeadlineMs,
  streamProcessOptions,
} from '../../server/config.js';
import { freePort, killStrays, runTs } from '../helpers/spawn-server.js';

function configError(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('procedureDeadlineMs', () => {
  it('stays below every request timeout REQUEST_TIMEOUT_MS allows, and is 10 s at the default', () => {
    for (const timeout of [100, 101, 150, 999, 1_500, DEFAULT_REQUEST_TIMEOUT_MS, 600_000]) {
      expect(procedureDeadlineMs(timeout)).toBeLessThan(timeout);
      expect(procedureDeadlineMs(timeout)).toBeGreaterThanOrEqual(timeout / 2);
    }
    expect(procedureDeadlineMs(DEFAULT_REQUEST_TIMEOUT_MS)).toBe(10_000);
  });
});

describe('loadConfig', () => {
  it('starts from the documented defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 8000,
      host: '127.0.0.1',
      databaseUrl: null,
      dataDir: resolve('./.taskflow'),
      auth: { jwksUrl: null, issuer: null, audience: null, tokenCacheSize: 10_000 },
      allowedOrigins: ['http://localhost:3000'],
      logLevel: 'info',
      nodeEnv: 'development',
      maxAnswerBytes: 4 * 1024 * 1024,
      agentLeaseSeconds: 600,
    });
    // No DATABASE_URL: the embedded database, kept in the data directory, a new one from the build's seed.
    expect(databaseOptions(config)).toEqual({
      kind: 'pglite',
      dataDir: resolve('./.taskflow', 'pglite'),
      seedFile: PGLITE_SEED,
    });
  });

  it('writes event streams in a process of their own on PostgreSQL, in the API process on PGlite', () => {
    const url = 'postgres://app:pw@db.internal:6543/taskflow';
    const onPostgres = loadConfig({ DATABASE_URL: url, STATEMENT_TIMEOUT_MS: '3000' });
    expect(onPostgres.eventStreams).toBe('process');
    // Its own small pool on the same database, with the same statement timeout.
    expect(streamProcessOptions(onPostgres)).toEqual({
      database: { kind: 'postgres', url, poolMax: 4, statementTimeoutMs: 3000 },
    });
    const inline = loadConfig({ DATABASE_URL: url, EVENT_STREAMS: 'inline' });
    expect(inline.eventStreams).toBe('inline');
    expect(streamProcessOptions(inline)).toBeUndefined();
    expect(loadConfig({}).eventStreams).toBe('inline');
    expect(streamProcessOptions(loadConfig({}))).toBeUndefined();
    expect(() => loadConfig({ EVENT_STREAMS: 'process' })).toThrow(
      /EVENT_STREAMS=process needs DATABASE_URL/,
    );
    expect(() => loadConfig({ EVENT_STREAMS: 'threads' })).toThrow(/EVENT_STREAMS must be process or inline/);
  });

  it('sends webhooks from every instance unless WEBHOOK_SENDERS=false, which needs a shared database', () => {
    const url = 'postgres://app:pw@db.internal:6543/taskflow';
    expect(loadConfig({}).webhooks.senders).toBe(true);
    expect(loadConfig({ DATABASE_URL: url, WEBHOOK_SENDERS: 'false' }).webhooks.senders).toBe(false);
    expect(() => loadConfig({ WEBHOOK_SENDERS: 'false' })).toThrow(
      /WEBHOOK_SENDERS=false needs DATABASE_URL/,
    );
    expect(() => loadConfig({ DATABASE_URL: url, WEBHOOK_SENDERS: 'no' })).toThrow(
      /WEBHOOK_SENDERS must be true or false/,
    );
  });

  it('treats an empty variable as unset', () => {
    const config = loadConfig({ PORT: '', DATABASE_URL: '', NODE_ENV: '', AUTH_SERVER_URL: '' });
    expect(config).toMatchObject({ port: 8000, databaseUrl: null, nodeEnv: 'development' });
  });

  it('reads every variable it documents', () => {
    const config = loadConfig({
      PORT: '9001',
      HOST: '0.0.0.0',
      DATABASE_URL: 'postgres://app:pw@db.internal:6543/taskflow',
      DATA_DIR: '/var/lib/taskflow',
      AUTH_SERVER_URL: 'https://auth.example.com/base',
      ALLOWED_ORIGINS: ' https://a.example , https://b.example,',
      LOG_LEVEL: 'warn',
      NODE_ENV: 'production',
      AUTH_TOKEN_CACHE_SIZE: '0',
      MAX_ANSWER_BYTES: '1048576',
      AGENT_LEASE_SECONDS: '90',
    });
    expect(config).toMatchObject({
      port: 9001,
      maxAnswerBytes: 1_048_576,
      host: '0.0.0.0',
      databaseUrl: 'postgres://app:pw@db.internal:6543/taskflow',
      dataDir: '/var/lib/taskflow',
      allowedOrigins: ['https://a.example', 'https://b.example'],
      logLevel: 'warn',
      nodeEnv: 'production',
      agentLeaseSeconds: 90,
      // Better Auth's JWKS path and its default iss/aud: the origin of the auth server.
      auth: {
        jwksUrl: 'https://auth.example.com/api/auth/jwks',
        issuer: 'https://auth.example.com',
        audience: 'https://auth.example.com',
        tokenCacheSize: 0,
      },
    });
    expect(databaseOptions(config)).toMatchObject({
      kind: 'postgres',
      url: 'postgres://app:pw@db.internal:6543/taskflow',
    });
  });

  it('lets AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE override what AUTH_SERVER_URL implies', () => {
    const config = loadConfig({
      AUTH_SERVER_URL: 'https://auth.example.com',
      AUTH_JWKS_URL: 'https://keys.example.com/jwks.json',
      AUTH_ISSUER: 'issuer-x',
      AUTH_AUDIENCE: 'taskflow-api',
    });
    expect(config.auth).toEqual({
      jwksUrl: 'https://keys.example.com/jwks.json',
      issuer: 'issuer-x',
      audience: 'taskflow-api',
      tokenCacheSize: 10_000,
    });
  });

  it('accepts a Neon URL with sslmode=require and the postgresql:// scheme', () => {
    const url =
      'postgresql://neondb_owner:npg_secret@ep-cool-name-123456.eu-central-1.aws.neon.tech/neondb?sslmode=require';
    expect(loadConfig({ DATABASE_URL: url }).databaseUrl).toBe(url);
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '-1'],
    ['PORT', '65536'],
    ['PORT', '80.5'],
    ['DATABASE_URL', 'nonsense'],
    ['DATABASE_URL', 'mysql://root@localhost/taskflow'],
    ['AUTH_SERVER_URL', 'auth.example.com'],
    ['AUTH_JWKS_URL', 'ftp://auth.example.com/jwks'],
    ['LOG_LEVEL', 'loud'],
    ['NODE_ENV', 'staging'],
    ['DB_POOL_MAX', '0'],
    ['AUTH_TOKEN_CACHE_SIZE', '-1'],
    ['BODY_LIMIT_BYTES', 'lots'],
    ['REQUEST_TIMEOUT_MS', '5'],
    ['AGENT_LEASE_SECONDS', '5'],
    ['AGENT_LEASE_SECONDS', '86401'],
  ])('refuses %s=%j with a one-line message naming the variable', (name, value) => {
    const message = configError({ [name]: value });
    expect(message).toMatch(new RegExp(`^Invalid configuration: ${name} `));
    expect(message).not.toContain('\n');
  });

  it('refuses an answer limit below 64 KiB', () => {
    expect(configError({ MAX_ANSWER_BYTES: '1000' })).toMatch(
      /^Invalid configuration: MAX_ANSWER_BYTES must be at least 65536/,
    );
  });

  it('names the first bad variable when several are bad', () => {
    expect(configError({ PORT: 'abc', LOG_LEVEL: 'loud' })).toMatch(/PORT|LOG_LEVEL/);
  });

  it('never echoes the password of a rejected database URL', () => {
    const message = configError({ DATABASE_URL: 'mysql://admin:hunter2@db.example.com/taskflow' });
    expect(message).toMatch(/^Invalid configuration: DATABASE_URL /);
    expect(message).not.toContain('hunter2');
    expect(message).toContain('db.example.com');
  });

  it('refuses NODE_ENV=production without AUTH_SERVER_URL or AUTH_JWKS_URL (no dev keys in production)', () => {
    const message = configError({ NODE_ENV: 'production' });
    expect(message).toMatch(/AUTH_SERVER_URL or AUTH_JWKS_URL/);
    expect(message).toMatch(/NODE_ENV=production/);
    expect(() =>
      loadConfig({ NODE_ENV: 'production', AUTH_JWKS_URL: 'https://a.example/jwks' }),
    ).not.toThrow();
    expect(() => loadConfig({ NODE_ENV: 'production', AUTH_SERVER_URL: 'https://a.example' })).not.toThrow();
  });
});

// The real entry point, as `npm start` runs it (from sources here): a bad environment must stop it
// before anything else with exit code 1 and a single line on stderr, never a stack trace.
describe.concurrent('server/main.ts with a bad environment', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'taskflow-config-'));
  afterAll(() => {
    killStrays();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function expectRefusal(
    env: Record<string, string>,
    names: RegExp,
    localExpect: typeof expect,
  ): Promise<string> {
    const result = await runTs('server/main.ts', [], { DATA_DIR: dataDir, ...env });
    localExpect(result.code, result.stderr).toBe(1);
    localExpect(result.signal).toBeNull();
    localExpect(result.stdout).toBe('');
    const lines = result.stderr.split('\n').filter((line) => line.trim() !== '');
    localExpect(lines, result.stderr).toHaveLength(1);
    localExpect(lines[0]).toMatch(names);
    localExpect(result.stderr).not.toMatch(/\n\s+at |Error:|node:internal/);
    return lines[0] ?? '';
  }

  it('PORT=abc exits 1 naming PORT', async ({ expect }) => {
    await expectRefusal({ PORT: 'abc' }, /^Invalid configuration: PORT .*"abc"/, expect);
  });

  it('DATABASE_URL=nonsense exits 1 naming DATABASE_URL', async ({ expect }) => {
    await expectRefusal({ DATABASE_URL: 'nonsense' }, /^Invalid configuration: DATABASE_URL /, expect);
  });

  it('NODE_ENV=production without auth settings exits 1 naming them', async ({ expect }) => {
    await expectRefusal({ NODE_ENV: 'production' }, /AUTH_SERVER_URL or AUTH_JWKS_URL/, expect);
  });

  it('a bad DATABASE_URL with a password exits 1 without printing the password', async ({ expect }) => {
    const line = await expectRefusal(
      { DATABASE_URL: 'mysql://admin:hunter2@db.example.com/taskflow' },
      /^Invalid configuration: DATABASE_URL /,
      expect,
    );
    expect(line).not.toContain('hunter2');
  });

  it('a DATABASE_URL nobody answers on exits 1 naming DATABASE_URL', async ({ expect }) => {
    const port = await freePort();
    const line = await expectRefusal(
      { DATABASE_URL: `postgres://taskflow:hunter2@127.0.0.1:${port}/taskflow` },
      /^Cannot prepare the database .*DATABASE_URL/,
      expect,
    );
    expect(line).not.toContain('hunter2');
  });
});
