import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { exportSPKI, importJWK, type JWTPayload, SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_AUDIENCE, DEV_ISSUER, loadOrCreateDevKey, signDevToken } from '../../server/auth/dev-keys.js';
import {
  AuthUnavailableError,
  cacheVerifiedTokens,
  createLocalVerifier,
  InvalidTokenError,
  type TokenVerifier,
} from '../../server/auth/verifier.js';
import { verifierFromConfig } from '../../server/auth/verifier-from-config.js';
import { loadConfig } from '../../server/config.js';
import { createTestApp, expectErrorBody, type HttpResult, type TestApp, trpcData } from '../helpers/app.js';
import { TEST_AUDIENCE, TEST_ISSUER, type TestAlg } from '../helpers/jwks-server.js';

const COOLDOWN_MS = 1_000;
const now = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** The caller's identity over both surfaces: REST GET /api/workers/me and tRPC workers.me. */
async function me(t: TestApp, authorization?: string): Promise<{ rest: HttpResult; trpc: HttpResult }> {
  const headers: Record<string, string> = authorization ? { authorization } : {};
  const rest = await t.rest('GET', '/api/workers/me', { headers });
  // trpcQuery only takes a bearer token; raw headers go through `rest` on the tRPC path.
  const trpc = await t.rest('GET', `/trpc/workers.me?input=${encodeURIComponent('{}')}`, { headers });
  return { rest, trpc };
}

function expectTrpcError(result: HttpResult, status: number, code: string): void {
  expect(result.status, result.raw).toBe(status);
  expect(result.body.error.data.code).toBe(code);
  expect(result.body.error.data.httpStatus).toBe(status);
  expect(result.raw).not.toMatch(/stack|\bat .+\.(ts|js):\d+/);
}

async function expectUnauthorized(t: TestApp, authorization?: string, reason?: string): Promise<void> {
  const { rest, trpc } = await me(t, authorization);
  expectErrorBody(rest, 401, 'UNAUTHORIZED'); // includes `WWW-Authenticate: Bearer`
  expectTrpcError(trpc, 401, 'UNAUTHORIZED');
  if (reason) {
    expect(rest.body.error).toBe(reason);
    expect(trpc.body.error.message).toBe(reason);
  }
}

async function expectUnavailable(t: TestApp, token: string): Promise<void> {
  const { rest, trpc } = await me(t, `Bearer ${token}`);
  expectErrorBody(rest, 503, 'SERVICE_UNAVAILABLE');
  expect(rest.body.error).toBe('Auth server unreachable');
  expect(rest.headers['www-authenticate']).toBeUndefined();
  expectTrpcError(trpc, 503, 'SERVICE_UNAVAILABLE');
}

async function expectAccepted(t: TestApp, token: string, id: string): Promise<void> {
  const { rest, trpc } = await me(t, `Bearer ${token}`);
  expect(rest.status, rest.raw).toBe(200);
  expect(rest.body.id).toBe(id);
  expect(trpcData(trpc)).toEqual(rest.body);
}

async function workerExists(t: TestApp, id: string): Promise<boolean> {
  const result: any = await t.db.database.db.execute(sql`select 1 from workers where id = ${id}`);
  return (Array.isArray(result) ? result : result.rows).length > 0;
}

describe('bearer tokens verified against a remote JWKS', () => {
  let t: TestApp;
  const kids = {} as Record<TestAlg, string>;
  let unpublished: string;
  const sign = (claims: JWTPayload, options: { kid?: string; headerKid?: string } = {}) =>
    t.jwks.sign({ role: 'user', ...claims }, options);

  beforeAll(async () => {
    t = await createTestApp({ listen: true, cooldownMs: COOLDOWN_MS });
    kids.EdDSA = t.jwks.key().kid;
    // Published before the first request, so the first fetch already holds them all.
    kids.ES256 = await t.jwks.addKey('ES256');
    kids.RS256 = await t.jwks.addKey('RS256');
    kids.PS256 = await t.jwks.addKey('PS256');
    unpublished = await t.jwks.addKey('EdDSA', false);
  });
  afterAll(() => t.close());

  describe('accepts', () => {
    it.each(['EdDSA', 'ES256', 'RS256', 'PS256'] as const)(
      'a valid %s token on REST and tRPC',
      async (alg) => {
        const id = `user-${alg.toLowerCase()}`;
        await expectAccepted(t, await sign({ sub: id }, { kid: kids[alg] }), id);
      },
    );

    it('fetches the JWKS once for all of them and then serves from its cache', async () => {
      expect(t.jwks.fetches).toBe(1);
      await expectAccepted(t, await sign({ sub: 'cached' }, { kid: kids.ES256 }), 'cached');
      expect(t.jwks.fetches).toBe(1);
    });

    it('the scheme in any case ("bearer") as RFC 7235 wants', async () => {
      const { rest } = await me(t, `bearer ${await sign({ sub: 'lowercase' })}`);
      expect(rest.status, rest.raw).toBe(200);
    });

    it('a token expired or not yet valid by less than the clock tolerance', async () => {
      await expectAccepted(t, await sign({ sub: 'skew-exp', exp: now() - 2 }), 'skew-exp');
      await expectAccepted(t, await sign({ sub: 'skew-nbf', nbf: now() + 2 }), 'skew-nbf');
    });
  });

  describe('answers 401 with WWW-Authenticate: Bearer on REST and tRPC for', () => {
    it('no Authorization header', async () => {
      await expectUnauthorized(t);
      // and on a mutation, over both surfaces
      expectErrorBody(await t.rest('POST', '/api/tasks', { body: { title: 'x' } }), 401, 'UNAUTHORIZED');
      expectTrpcError(await t.trpcMutation('tasks.create', { title: 'x' }), 401, 'UNAUTHORIZED');
    });

    it('an expired token', async () => {
      const token = await sign({ sub: 'mallory', exp: now() - 60 });
      await expectUnauthorized(t, `Bearer ${token}`, 'Token expired');
    });

    it('a token whose nbf is in the future', async () => {
      const token = await sign({ sub: 'mallory', nbf: now() + 60 });
      await expectUnauthorized(t, `Bearer ${token}`, 'Token not yet valid');
    });

    it('a token from another issuer', async () => {
      const token = await sign({ sub: 'mallory', iss: 'http://evil.test' });
      await expectUnauthorized(t, `Bearer ${token}`, 'Invalid token: "iss" claim check failed');
    });

    it('a token for another audience', async () => {
      const token = await sign({ sub: 'mallory', aud: 'http://other-api.test' });
      await expectUnauthorized(t, `Bearer ${token}`, 'Invalid token: "aud" claim check failed');
    });

    it('an unsigned token (alg none)', async () => {
      const token = new UnsecuredJWT({ sub: 'mallory', role: 'admin' })
        .setIssuer(TEST_ISSUER)
        .setAudience(TEST_AUDIENCE)
        .setIssuedAt()
        .setExpirationTime('15m')
        .encode();
      await expectUnauthorized(t, `Bearer ${token}`, 'Token algorithm not allowed');
    });

    it('an HS256 token signed with the public key as the HMAC secret', async () => {
      // The classic algorithm-confusion attack: the public key is public, so anyone can do this.
      const key = t.jwks.key(kids.RS256);
      const publicKey = (await importJWK(key.publicJwk, 'RS256', { extractable: true })) as Parameters<
        typeof exportSPKI
      >[0];
      const pem = await exportSPKI(publicKey);
      for (const secret of [pem, JSON.stringify(key.publicJwk)]) {
        const token = await new SignJWT({ sub: 'mallory', role: 'admin' })
          .setProtectedHeader({ alg: 'HS256', kid: kids.RS256, typ: 'JWT' })
          .setIssuer(TEST_ISSUER)
          .setAudience(TEST_AUDIENCE)
          .setExpirationTime('15m')
          .sign(new TextEncoder().encode(secret));
        await expectUnauthorized(t, `Bearer ${token}`, 'Token algorithm not allowed');
      }
    });

    it('a token signed by a key the JWKS does not publish (unknown kid)', async () => {
      const token = await sign({ sub: 'mallory' }, { kid: unpublished });
      await expectUnauthorized(t, `Bearer ${token}`, 'Token signed by an unknown key');
    });

    it('a token signed by another key under a published kid', async () => {
      const token = await sign({ sub: 'mallory' }, { kid: unpublished, headerKid: kids.EdDSA });
      await expectUnauthorized(t, `Bearer ${token}`);
    });

    it('a token whose payload was tampered with', async () => {
      const [header, , signature] = (await sign({ sub: 'mallory' })).split('.');
      const forged = {
        sub: 'mallory',
        role: 'admin',
        iss: TEST_ISSUER,
        aud: TEST_AUDIENCE,
        exp: now() + 900,
      };
      await expectUnauthorized(t, `Bearer ${header}.${b64url(forged)}.${signature}`);
    });

    it('a malformed token', async () => {
      const [, payload, signature] = (await sign({ sub: 'mallory' })).split('.');
      const headers = [
        Buffer.from('{"alg":"EdDSA",').toString('base64url'), // not JSON
        b64url(['EdDSA']), // JSON, not an object
        b64url({ kid: kids.EdDSA }), // no alg
        b64url({ alg: 42, kid: kids.EdDSA }),
      ];
      for (const header of headers) {
        await expectUnauthorized(t, `Bearer ${header}.${payload}.${signature}`);
      }
      await expectUnauthorized(t, `Bearer ${payload}.${signature}`); // two segments
      await expectUnauthorized(t, 'Bearer not-a-jwt');
      await expectUnauthorized(t, 'Bearer a b'); // not one token68
      await expectUnauthorized(t, 'Bearer ');
    });

    it('a token without sub, or with a sub that is no worker id', async () => {
      await expectUnauthorized(t, `Bearer ${await sign({ name: 'nobody' })}`);
      await expectUnauthorized(t, `Bearer ${await sign({ sub: '' })}`);
      await expectUnauthorized(t, `Bearer ${await sign({ sub: ' mallory' })}`);
      await expectUnauthorized(t, `Bearer ${await sign({ sub: 'x'.repeat(101) })}`);
    });

    it('a token without exp', async () => {
      const key = t.jwks.key(kids.EdDSA);
      const token = await new SignJWT({ sub: 'mallory' })
        .setProtectedHeader({ alg: 'EdDSA', kid: key.kid })
        .setIssuer(TEST_ISSUER)
        .setAudience(TEST_AUDIENCE)
        .sign(key.privateKey);
      await expectUnauthorized(t, `Bearer ${token}`);
    });

    it('credentials in another scheme (Basic, Token, or a bare token)', async () => {
      const valid = await sign({ sub: 'mallory' });
      await expectUnauthorized(t, `Basic ${Buffer.from('mallory:secret').toString('base64')}`);
      await expectUnauthorized(t, `Basic ${valid}`);
      await expectUnauthorized(t, `Token ${valid}`);
      await expectUnauthorized(t, valid);
    });

    it('tRPC as well as REST: WWW-Authenticate: Bearer on a tRPC 401', async () => {
      const { trpc } = await me(t);
      expectTrpcError(trpc, 401, 'UNAUTHORIZED');
      expect(trpc.headers['www-authenticate']).toBe('Bearer');
    });

    it('every one of them, without registering the worker the token names', async () => {
      expect(await workerExists(t, 'mallory')).toBe(false);
    });
  });

  describe('key rotation', () => {
    it('accepts a key newly published in the JWKS (new kid) without a restart', async () => {
      await sleep(COOLDOWN_MS + 100);
      const before = t.jwks.fetches;
      const kid = await t.jwks.addKey('ES256');
      await expectAccepted(t, await sign({ sub: 'rotated' }, { kid }), 'rotated');
      expect(t.jwks.fetches).toBe(before + 1);
    });

    it('refetches once, not once per request, for a burst of 100 concurrent unknown kids', async () => {
      const tokens = await Promise.all(
        Array.from({ length: 100 }, () =>
          sign({ sub: 'flood' }, { kid: unpublished, headerKid: randomUUID() }),
        ),
      );
      await sleep(COOLDOWN_MS + 100);
      const before = t.jwks.fetches;
      const started = Date.now();
      const results = await Promise.all(tokens.map((token) => t.rest('GET', '/api/workers/me', { token })));
      const elapsed = Date.now() - started;
      for (const result of results) expectErrorBody(result, 401, 'UNAUTHORIZED');
      // Concurrent lookups share one fetch; only a burst outlasting the cool-down (a loaded machine)
      // may legitimately cause another.
      const fetched = t.jwks.fetches - before;
      expect(fetched).toBeGreaterThanOrEqual(1);
      expect(fetched).toBeLessThanOrEqual(Math.floor(elapsed / COOLDOWN_MS) + 1);
    });

    it('fetches the JWKS at most once per cool-down under a sustained flood of unknown kids', async () => {
      await sleep(COOLDOWN_MS + 100);
      const before = t.jwks.fetches;
      const started = Date.now();
      let sent = 0;
      while (Date.now() - started < 3 * COOLDOWN_MS + 200) {
        const tokens = await Promise.all(
          Array.from({ length: 20 }, () =>
            sign({ sub: 'flood' }, { kid: unpublished, headerKid: randomUUID() }),
          ),
        );
        const results = await Promise.all(
          tokens.map((token, i) =>
            i % 2 === 0 ? t.rest('GET', '/api/workers/me', { token }) : t.trpcQuery('workers.me', {}, token),
          ),
        );
        for (const result of results) expect(result.status).toBe(401);
        sent += results.length;
      }
      const elapsed = Date.now() - started;
      const fetched = t.jwks.fetches - before;
      expect(sent).toBeGreaterThan(100);
      expect(fetched).toBeGreaterThanOrEqual(1);
      expect(fetched).toBeLessThanOrEqual(Math.floor(elapsed / COOLDOWN_MS) + 1);
    });
  });

  describe('an unreachable JWKS', () => {
    it('keeps accepting tokens of keys it already holds while the JWKS server is down', async () => {
      await t.jwks.stop();
      await expectAccepted(t, await sign({ sub: 'during-outage' }, { kid: kids.RS256 }), 'during-outage');
    });

    it('answers 503 with the API error body for a key it would have to fetch, then 200 once the server is back', async () => {
      const kid = await t.jwks.addKey('EdDSA'); // published while the server is down
      const token = await sign({ sub: 'after-outage' }, { kid });
      await sleep(COOLDOWN_MS + 100);
      await expectUnavailable(t, token);
      await t.jwks.start(); // same port, no restart of TaskFlow
      await expectAccepted(t, token, 'after-outage');
    });

    it('answers 503 within the timeout when the JWKS server hangs', async () => {
      t.jwks.mode = 'hang';
      const token = await sign({ sub: 'hung' }, { kid: await t.jwks.addKey('ES256') });
      await sleep(COOLDOWN_MS + 100);
      const started = Date.now();
      const result = await t.rest('GET', '/api/workers/me', { token });
      expectErrorBody(result, 503, 'SERVICE_UNAVAILABLE');
      expect(Date.now() - started).toBeLessThan(3_000); // the test verifier's timeout is 1 s
      expectTrpcError(await t.trpcQuery('workers.me', {}, token), 503, 'SERVICE_UNAVAILABLE');
      t.jwks.mode = 'ok';
      await expectAccepted(t, token, 'hung');
    });

    it.each(['error', 'garbage'] as const)(
      'answers 503 when the JWKS endpoint answers with %s',
      async (mode) => {
        t.jwks.mode = mode;
        const token = await sign({ sub: `jwks-${mode}` }, { kid: await t.jwks.addKey('EdDSA') });
        await sleep(COOLDOWN_MS + 100);
        await expectUnavailable(t, token);
        t.jwks.mode = 'ok';
        await expectAccepted(t, token, `jwks-${mode}`);
      },
    );

    it('never lets an outage turn a bad token into a good one', async () => {
      await t.jwks.stop();
      await expectUnauthorized(t, `Bearer ${await sign({ sub: 'mallory', exp: now() - 60 })}`);
      await expectUnauthorized(
        t,
        `Bearer ${await sign({ sub: 'mallory' }, { kid: unpublished, headerKid: kids.EdDSA })}`,
      );
      await t.jwks.start();
    });
  });

  describe('public operations', () => {
    it('do not need a token, and a bad one does not fail them', async () => {
      expect((await t.rest('GET', '/api/health/db')).status).toBe(200);
      expect((await t.rest('GET', '/api/health/db', { token: 'garbage' })).status).toBe(200);
      expect((await t.trpcQuery('health.db', {})).status).toBe(200);
    });
  });

  describe('the OpenAPI document', () => {
    it('declares bearer JWT security on every protected operation', async () => {
      const doc = (await t.rest('GET', '/openapi.json')).body;
      const schemes = doc.components.securitySchemes;
      const [name] = Object.keys(schemes);
      expect(schemes[name as string]).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
      for (const [path, item] of Object.entries<any>(doc.paths)) {
        for (const [method, op] of Object.entries<any>(item)) {
          const expected = path.startsWith('/health') ? undefined : [{ [name as string]: [] }];
          expect(op.security?.length ? op.security : undefined, `${method} ${path}`).toEqual(expected);
        }
      }
    });
  });
});

describe('a JWKS cache that has aged out', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ listen: true, cooldownMs: 100, cacheMaxAgeMs: 400 });
  });
  afterAll(() => t.close());

  it('answers 503 on a cold start while the JWKS server is down, and 200 once it is up', async () => {
    await t.jwks.stop();
    const token = await t.token('cold-start');
    await expectUnavailable(t, token);
    await t.jwks.start();
    await expectAccepted(t, token, 'cold-start');
  });

  it('still accepts a key it held when the JWKS server goes down (stale-if-error)', async () => {
    await t.jwks.stop();
    await sleep(500);
    await expectAccepted(t, await t.token('stale'), 'stale');
    // but not a key it never saw
    const token = await t.jwks.sign({ sub: 'new-key' }, { kid: await t.jwks.addKey('EdDSA') });
    await expectUnavailable(t, token);
    await t.jwks.start();
    await expectAccepted(t, token, 'new-key');
  });

  it('refuses a key withdrawn from the JWKS once the cache has been refreshed', async () => {
    const first = t.jwks.key().kid;
    const token = await t.token('withdrawn');
    await expectAccepted(t, token, 'withdrawn');
    t.jwks.unpublish(first);
    await sleep(500);
    await expectUnauthorized(t, `Bearer ${token}`);
  });
});

describe('development mode', () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'taskflow-auth-'));
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  const devConfig = (dir: string) => loadConfig({ DATA_DIR: dir, NODE_ENV: 'development' });

  it('makes an Ed25519 key in DATA_DIR, readable by the owner only, and keeps it across restarts', async () => {
    const { verifier, devMode } = await verifierFromConfig(devConfig(dataDir));
    expect(devMode).toBe(true);
    const file = join(dataDir, 'dev-signing-key.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const key = JSON.parse(readFileSync(file, 'utf8'));
    expect(key.publicJwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' });
    expect(key.publicJwk.d).toBeUndefined();

    const token = await signDevToken(await loadOrCreateDevKey(dataDir), { sub: 'alice', role: 'admin' });
    await expect(verifier.verify(token)).resolves.toMatchObject({ sub: 'alice', role: 'admin' });
    // a restart reads the same key: the token still verifies
    const restarted = await verifierFromConfig(devConfig(dataDir));
    await expect(restarted.verifier.verify(token)).resolves.toMatchObject({ sub: 'alice' });
  });

  it('verifies through the same checks: expiry, issuer and the key are enforced', async () => {
    const { verifier } = await verifierFromConfig(devConfig(dataDir));
    const key = await loadOrCreateDevKey(dataDir);
    const expired = await signDevToken(key, { sub: 'alice', ttl: '-1m' });
    await expect(verifier.verify(expired)).rejects.toBeInstanceOf(InvalidTokenError);
    const otherDir = mkdtempSync(join(tmpdir(), 'taskflow-auth-other-'));
    try {
      const foreign = await signDevToken(await loadOrCreateDevKey(otherDir), { sub: 'alice' });
      await expect(verifier.verify(foreign)).rejects.toBeInstanceOf(InvalidTokenError);
    } finally {
      rmSync(otherDir, { recursive: true, force: true });
    }
  });

  it('lets a development token declare an agent (`npm run token -- --agent`), which a remote JWKS never may', async () => {
    const { verifier } = await verifierFromConfig(devConfig(dataDir));
    const token = await signDevToken(await loadOrCreateDevKey(dataDir), { sub: '@bot', agent: true });
    await expect(verifier.verify(token)).resolves.toMatchObject({ sub: '@bot', declaredType: 'agent' });
  });

  it('is never used when a JWKS is configured, and production refuses to start without one', async () => {
    const { devMode } = await verifierFromConfig(
      loadConfig({ DATA_DIR: dataDir, AUTH_SERVER_URL: 'http://127.0.0.1:1/' }),
    );
    expect(devMode).toBe(false);
    expect(() => loadConfig({ DATA_DIR: dataDir, NODE_ENV: 'production' })).toThrow(/AUTH_SERVER_URL/);
  });

  it('reports an unreachable JWKS as unavailable, not as a bad token', async () => {
    const { verifier } = await verifierFromConfig(
      loadConfig({ DATA_DIR: dataDir, AUTH_JWKS_URL: 'http://127.0.0.1:1/api/auth/jwks' }),
    );
    const token = await signDevToken(await loadOrCreateDevKey(dataDir), { sub: 'alice' });
    await expect(verifier.verify(token)).rejects.toBeInstanceOf(AuthUnavailableError);
  });
});

describe('verified-token cache', () => {
  let dataDir: string;
  let key: Awaited<ReturnType<typeof loadOrCreateDevKey>>;
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'taskflow-token-cache-'));
    key = await loadOrCreateDevKey(dataDir);
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  /** The real jose verifier, counting the signatures it checks. */
  function counted(): { verifier: TokenVerifier; checks: () => number } {
    const real = createLocalVerifier(
      { keys: [key.publicJwk] },
      { issuer: DEV_ISSUER, audience: DEV_AUDIENCE },
    );
    let checks = 0;
    return {
      verifier: {
        verify: (token) => {
          checks++;
          return real.verify(token);
        },
      },
      checks: () => checks,
    };
  }

  it('checks a token once and answers its claims from memory after that, per token', async () => {
    const inner = counted();
    const verifier = cacheVerifiedTokens(inner.verifier, { maxEntries: 100 });
    const alice = await signDevToken(key, { sub: 'alice', role: 'admin' });
    const bob = await signDevToken(key, { sub: 'bob' });
    for (let i = 0; i < 3; i++) {
      await expect(verifier.verify(alice)).resolves.toMatchObject({ sub: 'alice', role: 'admin' });
    }
    expect(inner.checks()).toBe(1);
    await expect(verifier.verify(bob)).resolves.toMatchObject({ sub: 'bob', role: 'user' });
    expect(inner.checks()).toBe(2);
  });

  it('never remembers a refusal: a bad token is checked, and refused, every time', async () => {
    const inner = counted();
    const verifier = cacheVerifiedTokens(inner.verifier, { maxEntries: 100 });
    const good = await signDevToken(key, { sub: 'alice' });
    const forged = `${good.slice(0, -4)}AAAA`;
    await expect(verifier.verify(forged)).rejects.toBeInstanceOf(InvalidTokenError);
    await expect(verifier.verify(forged)).rejects.toBeInstanceOf(InvalidTokenError);
    expect(inner.checks()).toBe(2);
  });

  it('forgets a token when it expires and after maxAgeMs, whichever comes first', async () => {
    const inner = counted();
    const verifier = cacheVerifiedTokens(inner.verifier, { maxEntries: 100, maxAgeMs: 300 });
    const token = await signDevToken(key, { sub: 'alice' });
    await verifier.verify(token);
    await verifier.verify(token);
    expect(inner.checks()).toBe(1);
    await sleep(400);
    await verifier.verify(token);
    expect(inner.checks()).toBe(2);

    // `exp` two seconds ahead: cached until then, refused by the real check afterwards (the
    // verifier allows 5 s of clock skew, so the refusal comes once that has passed too).
    const shortLived = cacheVerifiedTokens(inner.verifier, { maxEntries: 100, maxAgeMs: 60_000 });
    const soon = await signDevToken(key, { sub: 'alice', ttl: '2s' });
    await shortLived.verify(soon);
    await shortLived.verify(soon);
    expect(inner.checks()).toBe(3);
    await sleep(2_100);
    await shortLived.verify(soon).catch(() => undefined);
    expect(inner.checks()).toBe(4);
  });

  it('is off with maxEntries 0 (AUTH_TOKEN_CACHE_SIZE=0): every request checks the signature', async () => {
    const inner = counted();
    const verifier = cacheVerifiedTokens(inner.verifier, { maxEntries: 0 });
    const token = await signDevToken(key, { sub: 'alice' });
    await verifier.verify(token);
    await verifier.verify(token);
    expect(inner.checks()).toBe(2);
  });
});
