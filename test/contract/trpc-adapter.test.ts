import { fastifyTRPCPlugin } from '@trpc/server/adapters/fastify';
import Fastify, { type FastifyInstance, type FastifyRequest, type InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteVerifier } from '../../server/auth/verifier.js';
import { DEFAULT_MAX_ANSWER_BYTES } from '../../server/config.js';
import { appRouter } from '../../server/routers/index.js';
import { EventFeed } from '../../server/services/events/index.js';
import { WorkerRegistry } from '../../server/services/worker-service.js';
import { createContext } from '../../server/trpc/context.js';
import { trpcPlugin } from '../../server/trpc/fastify-adapter.js';
import { MAX_BATCH_CALLS } from '../../shared/limits.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { JwksServer, TEST_AUDIENCE, TEST_ISSUER } from '../helpers/jwks-server.js';

// The in-repo adapter (server/trpc/fastify-adapter.ts) against tRPC's own fastify plugin, both on
// the same router, context and database: every request below must get the same status, the same
// tRPC headers and the same JSON from both.

let db: TestDatabase;
let jwks: JwksServer;
let ours: FastifyInstance;
let theirs: FastifyInstance;
let token: string;

beforeAll(async () => {
  jwks = new JwksServer();
  await jwks.addKey('EdDSA');
  await jwks.start();
  db = await createTestDatabase();
  const deps = {
    database: db.database,
    verifier: createRemoteVerifier({ jwksUrl: jwks.url, issuer: TEST_ISSUER, audience: TEST_AUDIENCE }),
    registry: new WorkerRegistry(),
    events: new EventFeed(db.database, { log: { warn: () => {} } }),
    deadlineMs: 10_000,
  };
  ours = Fastify({ routerOptions: { maxParamLength: 5000 } });
  await ours.register(trpcPlugin, {
    prefix: '/trpc',
    router: appRouter,
    createContext: (request: FastifyRequest) => createContext(deps, request),
    maxBatchCalls: MAX_BATCH_CALLS,
    maxAnswerBytes: DEFAULT_MAX_ANSWER_BYTES,
  });
  theirs = Fastify({ routerOptions: { maxParamLength: 5000 } });
  await theirs.register(fastifyTRPCPlugin, {
    prefix: '/trpc',
    trpcOptions: {
      router: appRouter,
      createContext: ({ req }: { req: FastifyRequest }) => createContext(deps, req),
      maxBatchSize: MAX_BATCH_CALLS,
    },
  });
  await Promise.all([ours.ready(), theirs.ready()]);
  token = await jwks.sign({ sub: 'contract-alice', role: 'user', name: 'Alice' });
  // Both servers answer about the same task.
  await ours.inject({
    method: 'POST',
    url: '/trpc/tasks.create',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    payload: JSON.stringify({ title: 'Shared task' }),
  });
});

afterAll(async () => {
  await ours?.close();
  await theirs?.close();
  await db?.cleanup();
  await jwks?.stop();
});

const VOLATILE = new Set(['id', 'createdAt', 'updatedAt', 'requestId']);

/** JSON with what differs between two runs of the same call (new ids, times, request ids) masked. */
function masked(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(masked);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, v]) => [key, VOLATILE.has(key) && v !== null ? '…' : masked(v)]),
    );
  }
  return value;
}

function parsed(raw: string, streamed: boolean): unknown {
  if (raw === '') return raw;
  // A streamed answer's lines arrive in the order the calls finish; their number is what is fixed.
  if (streamed) return raw.trim().split('\n').length;
  return JSON.parse(raw);
}

/** Both servers' answers to one request, framing aside (tRPC's plugin streams every answer). */
async function answers(request: InjectOptions) {
  const streamed =
    (request.headers as Record<string, string> | undefined)?.['trpc-accept'] === 'application/jsonl';
  return Promise.all(
    [ours, theirs].map(async (app) => {
      const response = await app.inject(request);
      const contentType = response.headers['content-type'] as string | undefined;
      return {
        status: response.statusCode,
        // Fastify adds `; charset=utf-8` to the JSON the adapter sends as a string.
        contentType: contentType?.replace('; charset=utf-8', ''),
        vary: response.headers.vary,
        allow: response.headers.allow,
        // A whole JSON answer has its length; a streamed one is chunked.
        framing: streamed ? response.headers['transfer-encoding'] : undefined,
        body: masked(parsed(response.body, streamed)),
      };
    }),
  );
}

const auth = () => ({ authorization: `Bearer ${token}` });
const json = () => ({ ...auth(), 'content-type': 'application/json' });
const input = (value: unknown) => encodeURIComponent(JSON.stringify(value));
const batchOf = (n: number) => Array.from({ length: n }, () => 'tasks.get').join(',');
const batchInput = (n: number) =>
  input(Object.fromEntries(Array.from({ length: n }, (_, i) => [i, { id: 1 }])));

const cases: [string, () => InjectOptions][] = [
  [
    'a GET query',
    () => ({ method: 'GET', url: `/trpc/tasks.get?input=${input({ id: 1 })}`, headers: auth() }),
  ],
  ['a GET query without input', () => ({ method: 'GET', url: '/trpc/tasks.list', headers: auth() })],
  [
    'a batch of queries, one failing (207)',
    () => ({
      method: 'GET',
      url: `/trpc/tasks.list,tasks.get?batch=1&input=${input({ 0: {}, 1: { id: 2_000_000_000 } })}`,
      headers: auth(),
    }),
  ],
  [
    'a batch of as many calls as allowed',
    () => ({
      method: 'GET',
      url: `/trpc/${batchOf(MAX_BATCH_CALLS)}?batch=1&input=${batchInput(MAX_BATCH_CALLS)}`,
      headers: auth(),
    }),
  ],
  [
    'a batch over the limit',
    () => ({
      method: 'GET',
      url: `/trpc/${batchOf(MAX_BATCH_CALLS + 1)}?batch=1&input=${batchInput(MAX_BATCH_CALLS + 1)}`,
      headers: auth(),
    }),
  ],
  [
    'a POST mutation',
    () => ({ method: 'POST', url: '/trpc/tasks.create', headers: json(), payload: '{"title":"Write it"}' }),
  ],
  [
    'a batch of mutations',
    () => ({
      method: 'POST',
      url: '/trpc/tasks.create,tasks.create?batch=1',
      headers: json(),
      payload: JSON.stringify({ 0: { title: 'One' }, 1: { title: '' } }),
    }),
  ],
  [
    'a mutation with invalid input (zod issues)',
    () => ({ method: 'POST', url: '/trpc/tasks.create', headers: json(), payload: '{"title":""}' }),
  ],
  [
    'a mutation with malformed JSON',
    () => ({ method: 'POST', url: '/trpc/tasks.create', headers: json(), payload: '{"title":' }),
  ],
  ['a mutation over GET (405)', () => ({ method: 'GET', url: '/trpc/tasks.create', headers: auth() })],
  [
    'a query over POST (405)',
    () => ({ method: 'POST', url: '/trpc/tasks.list', headers: json(), payload: '{}' }),
  ],
  ['an unknown procedure', () => ({ method: 'GET', url: '/trpc/tasks.nothing', headers: auth() })],
  [
    'a batch naming a property every object has',
    () => ({ method: 'GET', url: '/trpc/tasks.list,toString?batch=1&input=%7B%7D', headers: auth() }),
  ],
  ['a mutation without a body', () => ({ method: 'POST', url: '/trpc/tasks.create', headers: auth() })],
  [
    'a query with a percent-encoded path',
    () => ({ method: 'GET', url: `/trpc/tasks%2Eget?input=${input({ id: 1 })}`, headers: auth() }),
  ],
  ['no token', () => ({ method: 'GET', url: `/trpc/tasks.get?input=${input({ id: 1 })}` })],
  [
    'mixed procedure types in one batch',
    () => ({ method: 'GET', url: '/trpc/tasks.list,tasks.create?batch=1&input=%7B%7D', headers: auth() }),
  ],
  [
    'a batch whose input is not an object',
    () => ({ method: 'GET', url: '/trpc/tasks.list,tasks.list?batch=1&input=5', headers: auth() }),
  ],
  [
    'a POST with an unsupported content type',
    () => ({
      method: 'POST',
      url: '/trpc/tasks.create',
      headers: { ...auth(), 'content-type': 'text/plain' },
      payload: '{"title":"x"}',
    }),
  ],
  ['a HEAD request', () => ({ method: 'HEAD', url: '/trpc/tasks.list', headers: auth() })],
  [
    'a batch streamed as JSON lines',
    () => ({
      method: 'GET',
      url: `/trpc/tasks.list,tasks.get?batch=1&input=${input({ 0: {}, 1: { id: 1 } })}`,
      headers: { ...auth(), 'trpc-accept': 'application/jsonl' },
    }),
  ],
];

describe("the in-repo tRPC adapter answers as tRPC's own fastify plugin", () => {
  it.each(cases)('%s', async (_name, request) => {
    const [mine, reference] = await answers(request());
    expect(mine).toEqual(reference);
  });

  it('refuses a batch over the limit with 400 in the error shape, running none of its calls', async () => {
    const [mine] = await answers({
      method: 'POST',
      url: `/trpc/${Array.from({ length: MAX_BATCH_CALLS + 1 }, () => 'tasks.create').join(',')}?batch=1`,
      headers: json(),
      payload: JSON.stringify(
        Object.fromEntries(Array.from({ length: MAX_BATCH_CALLS + 1 }, (_, i) => [i, { title: `n${i}` }])),
      ),
    });
    expect(mine?.status).toBe(400);
    expect(mine?.body).toMatchObject({ error: { data: { code: 'BAD_REQUEST', httpStatus: 400 } } });
    const listed = await ours.inject({
      method: 'GET',
      url: '/trpc/tasks.list?input=%7B%7D',
      headers: auth(),
    });
    const titles = (listed.json() as { result: { data: { items: { title: string }[] } } }).result.data.items;
    expect(titles.map((task) => task.title)).not.toContain('n0');
  });
});

describe('the in-repo tRPC adapter', () => {
  it('sends a whole JSON answer as one body with its Content-Length', async () => {
    const response = await ours.inject({
      method: 'GET',
      url: `/trpc/tasks.get,tasks.get?batch=1&input=${input({ 0: { id: 1 }, 1: { id: 1 } })}`,
      headers: auth(),
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-length']).toBe(String(Buffer.byteLength(response.body)));
    expect(response.headers['transfer-encoding']).toBeUndefined();
  });
});
