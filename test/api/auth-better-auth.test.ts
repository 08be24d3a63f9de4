import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { betterAuth } from 'better-auth';
import { memoryAdapter } from 'better-auth/adapters/memory';
import { admin } from 'better-auth/plugins/admin';
import { jwt } from 'better-auth/plugins/jwt';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifierFromConfig } from '../../server/auth/verifier-from-config.js';
import { loadConfig } from '../../server/config.js';
import { createTestApp, expectErrorBody, type TestApp, trpcData } from '../helpers/app.js';

/**
 * A real Better Auth (email + password, its `jwt` and `admin` plugins, the in-memory adapter) served
 * on a loopback port through a small node:http → `auth.handler(Request)` adapter, so TaskFlow fetches
 * `/api/auth/jwks` over HTTP exactly as it would in production.
 */
class BetterAuthServer {
  readonly server: Server = createServer((req, res) => {
    this.handle(req)
      .then(async (response) => {
        res.statusCode = response.status;
        response.headers.forEach((value, name) => {
          if (name !== 'set-cookie') res.setHeader(name, value);
        });
        const cookies = response.headers.getSetCookie();
        if (cookies.length > 0) res.setHeader('set-cookie', cookies);
        res.end(Buffer.from(await response.arrayBuffer()));
      })
      .catch(() => {
        res.statusCode = 500;
        res.end();
      });
  });
  baseURL = '';
  jwksFetches = 0;
  auth!: ReturnType<typeof BetterAuthServer.create>;

  static create(baseURL: string) {
    return betterAuth({
      baseURL,
      secret: randomBytes(32).toString('hex'),
      database: memoryAdapter({ user: [], session: [], account: [], verification: [], jwks: [] }),
      emailAndPassword: { enabled: true },
      plugins: [jwt(), admin()],
      telemetry: { enabled: false },
      logger: { disabled: true },
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.baseURL = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    this.auth = BetterAuthServer.create(this.baseURL);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage): Promise<Response> {
    if (req.url === '/api/auth/jwks') this.jwksFetches += 1;
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      for (const one of Array.isArray(value) ? value : value === undefined ? [] : [value]) {
        headers.append(name, one);
      }
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const method = req.method ?? 'GET';
    return this.auth.handler(
      new Request(new URL(req.url ?? '/', this.baseURL), {
        method,
        headers,
        ...(method === 'GET' || method === 'HEAD' ? {} : { body: Buffer.concat(chunks) }),
      }),
    );
  }

  /** What a browser does: POST the form, keep the session cookie. */
  async signUp(email: string, name: string): Promise<{ userId: string; cookie: string }> {
    const response = await fetch(`${this.baseURL}/api/auth/sign-up/email`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: this.baseURL },
      body: JSON.stringify({ email, name, password: 'correct horse battery staple' }),
    });
    expect(response.status, await response.clone().text()).toBe(200);
    const body = (await response.json()) as { user: { id: string } };
    return { userId: body.user.id, cookie: cookieOf(response) };
  }

  async signIn(email: string): Promise<string> {
    const response = await fetch(`${this.baseURL}/api/auth/sign-in/email`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: this.baseURL },
      body: JSON.stringify({ email, password: 'correct horse battery staple' }),
    });
    expect(response.status, await response.clone().text()).toBe(200);
    return cookieOf(response);
  }

  /** The jwt plugin's own endpoint: a JWT for the session. */
  async token(cookie: string): Promise<string> {
    const response = await fetch(`${this.baseURL}/api/auth/token`, { headers: { cookie } });
    expect(response.status).toBe(200);
    return ((await response.json()) as { token: string }).token;
  }
}

function cookieOf(response: Response): string {
  return response.headers
    .getSetCookie()
    .map((cookie) => cookie.split(';')[0])
    .join('; ');
}

let ba: BetterAuthServer;
let t: TestApp;
beforeAll(async () => {
  ba = new BetterAuthServer();
  await ba.start();
  // Configured the way an operator would: only AUTH_SERVER_URL. The JWKS URL, issuer and audience
  // are the defaults TaskFlow derives from it.
  const { verifier, devMode } = await verifierFromConfig(
    loadConfig({ AUTH_SERVER_URL: ba.baseURL, NODE_ENV: 'test' }),
  );
  expect(devMode).toBe(false);
  t = await createTestApp({ listen: true, verifier });
});
afterAll(async () => {
  await t?.close();
  await ba?.stop();
});

describe('interop with a real Better Auth server', () => {
  it('accepts the JWT Better Auth issues to a signed-up user; workers.me shows their id and email', async () => {
    const { userId, cookie } = await ba.signUp('ada@example.com', 'Ada Lovelace');
    const token = await ba.token(cookie);
    // What Better Auth puts in a token by default, which the defaults on our side rely on.
    expect(decodeProtectedHeader(token).alg).toBe('EdDSA');
    expect(decodeJwt(token)).toMatchObject({ sub: userId, iss: ba.baseURL, aud: ba.baseURL });

    const rest = await t.rest('GET', '/api/workers/me', { token });
    expect(rest.status, rest.raw).toBe(200);
    expect(rest.body).toMatchObject({
      id: userId,
      email: 'ada@example.com',
      name: 'Ada Lovelace',
      type: 'human',
      role: 'user',
    });
    expect(trpcData(await t.trpcQuery('workers.me', {}, token))).toEqual(rest.body);
    // The key came from Better Auth's /api/auth/jwks over HTTP, once.
    expect(ba.jwksFetches).toBe(1);
  });

  it('accepts the JWT Better Auth sends in the set-auth-jwt header of get-session', async () => {
    const { userId, cookie } = await ba.signUp('grace@example.com', 'Grace Hopper');
    const session = await fetch(`${ba.baseURL}/api/auth/get-session`, { headers: { cookie } });
    const token = session.headers.get('set-auth-jwt');
    expect(token).toEqual(expect.any(String));
    const rest = await t.rest('GET', '/api/workers/me', { token: token as string });
    expect(rest.body).toMatchObject({ id: userId, email: 'grace@example.com' });
  });

  it("takes the admin plugin's role: its admins may register agents, its users get 403", async () => {
    const user = await ba.signUp('linus@example.com', 'Linus');
    const userToken = await ba.token(user.cookie);
    const body = { id: '@ba-bot', name: 'Bot of Better Auth' };
    expectErrorBody(await t.rest('POST', '/api/workers', { token: userToken, body }), 403, 'FORBIDDEN');

    // An admin made the way a Better Auth deployment does it, with several roles.
    await ba.auth.api.createUser({
      body: {
        email: 'root@example.com',
        password: 'correct horse battery staple',
        name: 'Root',
        role: ['user', 'admin'],
      },
    });
    const adminToken = await ba.token(await ba.signIn('root@example.com'));
    expect(decodeJwt(adminToken).role).toBe('user,admin');
    const registered = await t.rest('POST', '/api/workers', { token: adminToken, body });
    expect(registered.status, registered.raw).toBe(201);
    expect(registered.body).toMatchObject({ id: '@ba-bot', type: 'agent' });
    expect((await t.rest('GET', '/api/workers/me', { token: adminToken })).body.role).toBe('admin');
  });

  it('refuses a token Better Auth signed for another audience or issuer', async () => {
    const { userId } = await ba.signUp('eve@example.com', 'Eve');
    for (const claims of [{ aud: 'http://other-api.test' }, { iss: 'http://other-auth.test' }]) {
      const { token } = await ba.auth.api.signJWT({
        body: { payload: { sub: userId, email: 'eve@example.com', ...claims } },
      });
      expectErrorBody(await t.rest('GET', '/api/workers/me', { token }), 401, 'UNAUTHORIZED');
      const trpc = await t.trpcQuery('workers.me', {}, token);
      expect(trpc.status).toBe(401);
      expect(trpc.body.error.data.code).toBe('UNAUTHORIZED');
    }
  });

  it('refuses a token from another Better Auth instance', async () => {
    const other = new BetterAuthServer();
    await other.start();
    try {
      const { cookie } = await other.signUp('mallory@example.com', 'Mallory');
      const token = await other.token(cookie);
      expectErrorBody(await t.rest('GET', '/api/workers/me', { token }), 401, 'UNAUTHORIZED');
      expect(other.jwksFetches).toBe(0);
    } finally {
      await other.stop();
    }
  });
});
