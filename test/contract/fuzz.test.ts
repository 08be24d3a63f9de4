/**
 * Input fuzzing of every operation of the live OpenAPI document (GET /openapi.json).
 *
 * Bad cases: each request carries at least one element that is invalid on its own (see
 * helpers/fuzz-cases.ts); the answer must be a 4xx the element can cause, with the API error body,
 * within a few seconds, and tasks, projects, members, workers and the audit log must be unchanged.
 * Adversarial valid cases: hard values the schema allows must never produce a 5xx; nor must forged
 * pagination cursors (opaque strings to the schema). Routes outside the REST mirror (GET /health)
 * take no input: odd query strings and headers must not make them fail.
 *
 * The seed is printed first; replay a run with FUZZ_SEED=<seed> npx vitest run test/fuzz.test.ts.
 * FUZZ_RUNS sets the bad cases per operation (default 80, over 2 000 in all).
 */
import { sql } from 'drizzle-orm';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestApp, expectErrorBody, type HttpResult, type TestApp } from '../helpers/app.js';
import {
  type AuthChoice,
  BAD_TOKEN_NAMES,
  type BadElement,
  badElement,
  describeRequest,
  type FuzzRequest,
  isPlainObject,
  NOISE_HEADERS,
  type Operation,
  operationsOf,
  type Schema,
  serialize,
  urlOf,
  validJsonValue,
  validParamValue,
} from '../helpers/fuzz-cases.js';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;
const BAD_RUNS = Number(process.env.FUZZ_RUNS ?? 80);
const VALID_RUNS = Math.max(5, Math.round(BAD_RUNS / 5));
const MIN_BAD_CASES = 2_000;
const REQUEST_TIMEOUT_MS = 5_000;

console.log(`fuzz seed ${SEED} (replay: FUZZ_SEED=${SEED} npx vitest run test/fuzz.test.ts)`);

// --- the app, its document and some real data ---------------------------------------------------

const t: TestApp = await createTestApp();
afterAll(() => t.close());

const document: Schema = (await t.rest('GET', '/openapi.json')).body;
const apiBase = String(document.servers?.[0]?.url ?? '/api').replace(/\/$/, '');
const operations = operationsOf(document);

const tokens: Record<'user' | 'admin' | 'other', string> = {
  user: await t.token('fuzzer'),
  admin: await t.token('fuzz-admin', { role: 'admin' }),
  other: await t.token('fuzz-other'),
};

/** Signed tokens the verifier must refuse. */
const badTokens: Record<string, string> = await (async () => {
  const valid = tokens.user;
  const [header, payload, signature] = valid.split('.') as [string, string, string];
  const flipped = signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11);
  const tokensByName: Record<string, string> = {
    expired: await t.jwks.sign({ sub: 'fuzzer', role: 'user', exp: Math.floor(Date.now() / 1000) - 3600 }),
    wrongAudience: await t.jwks.sign({ sub: 'fuzzer', role: 'user', aud: 'https://evil.example' }),
    wrongIssuer: await t.jwks.sign({ sub: 'fuzzer', role: 'admin', iss: 'https://evil.example' }),
    tampered: `${header}.${payload}.${flipped}`,
    unknownKid: await t.jwks.sign({ sub: 'fuzzer', role: 'admin' }, { headerKid: 'no-such-kid' }),
    noSub: await t.jwks.sign({ role: 'admin' }),
  };
  expect(Object.keys(tokensByName).sort()).toEqual([...BAD_TOKEN_NAMES].sort());
  return tokensByName;
})();

function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}

async function must(result: Promise<HttpResult>, status: number): Promise<HttpResult> {
  const done = await result;
  expect(done.status, done.raw).toBe(status);
  return done;
}

/** Registers the actors, two projects, tasks in every state, of the fuzzer and of someone else. */
async function seed(): Promise<{ ids: number[] }> {
  for (const token of Object.values(tokens)) await must(t.rest('GET', '/api/workers/me', { token }), 200);
  await must(
    t.rest('POST', '/api/workers', { token: tokens.admin, body: { id: '@fuzz-bot', name: 'Fuzz bot' } }),
    201,
  );
  await must(
    t.rest('POST', '/api/projects', { token: tokens.user, body: { slug: 'fuzz-proj', name: 'Fuzz' } }),
    201,
  );
  await must(
    t.rest('POST', '/api/projects', { token: tokens.other, body: { slug: 'other-proj', name: 'Other' } }),
    201,
  );
  await must(
    t.rest('PUT', '/api/projects/fuzz-proj/members/fuzz-other', {
      token: tokens.user,
      body: { role: 'member' },
    }),
    200,
  );
  const ids: number[] = [];
  const create = async (token: string, body: Record<string, unknown>) =>
    ids.push((await must(t.rest('POST', '/api/tasks', { token, body }), 201)).body.id);
  await create(tokens.user, { title: 'fuzz pending', projectSlug: 'fuzz-proj', labels: ['fuzz'] });
  await create(tokens.user, { title: 'fuzz loose', description: 'no project' });
  await create(tokens.user, { title: 'fuzz parent', projectSlug: 'fuzz-proj' });
  await create(tokens.user, { title: 'fuzz child', projectSlug: 'fuzz-proj', parentId: ids[2] });
  await create(tokens.other, { title: 'other in project', projectSlug: 'other-proj' });
  await create(tokens.other, { title: 'other loose' });
  // Tasks in the later states, straight into the table (the workflow is not what is tested here).
  const seeded = rowsOf<{ id: number }>(
    await t.db.database.db.execute(sql`
      insert into tasks (title, status, assigned_to, created_by, project_slug, progress_percent, blocked_reason, completed_at)
      values ('fuzz started', 'in_progress', 'fuzzer', 'fuzzer', 'fuzz-proj', 30, null, null),
             ('fuzz in review', 'review', 'fuzzer', 'fuzzer', 'fuzz-proj', 90, null, null),
             ('fuzz blocked', 'blocked', 'fuzzer', 'fuzzer', null, 10, 'waiting', null),
             ('fuzz done', 'completed', 'fuzzer', 'fuzzer', 'fuzz-proj', 100, null, now()),
             ('other started', 'in_progress', 'fuzz-other', 'fuzz-other', 'other-proj', 50, null, null)
      returning id`),
  );
  ids.push(...seeded.map((row) => Number(row.id)));
  return { ids };
}

const { ids } = await seed();
const pool = {
  ids: [...ids, 999_999],
  names: ['fuzz-proj', 'other-proj', 'no-such-proj', 'fuzzer', 'fuzz-other', '@fuzz-bot', 'nobody'],
};

// --- "no row changed" --------------------------------------------------------------------------

const SNAPSHOT = sql`select
  (select count(*) from tasks)::int as tasks_count,
  (select md5(coalesce(string_agg(x::text, ',' order by x.id), '')) from tasks x) as tasks,
  (select count(*) from projects)::int as projects_count,
  (select md5(coalesce(string_agg(x::text, ',' order by x.slug), '')) from projects x) as projects,
  (select count(*) from project_members)::int as members_count,
  (select md5(coalesce(string_agg(x::text, ',' order by x.project_slug, x.worker_id), '')) from project_members x) as members,
  (select count(*) from workers)::int as workers_count,
  (select md5(coalesce(string_agg((x.id, x.type, x.name, x.email, x.capabilities, x.created_at)::text, ',' order by x.id), ''))
     from workers x) as workers,
  (select count(*) from audit_log)::int as audit_count,
  (select md5(coalesce(string_agg(x::text, ',' order by x.id), '')) from audit_log x) as audit_log`;

/** Counts and hashes of every table a write could touch (workers without last_seen_at, a heartbeat). */
async function snapshot(): Promise<Record<string, unknown>> {
  const [row] = rowsOf<Record<string, unknown>>(await t.db.database.db.execute(SNAPSHOT));
  return { ...row };
}

/**
 * The state before a bad case: the state after the previous one, which no bad case may change
 * (so one snapshot per case); taken afresh after anything else ran or a case changed rows.
 */
let lastSnapshot: Record<string, unknown> | undefined;
async function stateBefore(): Promise<Record<string, unknown>> {
  const before = lastSnapshot ?? (await snapshot());
  lastSnapshot = undefined; // kept only if this case passes
  return before;
}
async function expectUnchanged(before: Record<string, unknown>, where: string): Promise<void> {
  const after = await snapshot();
  expect(after, `rows changed by ${where}`).toEqual(before);
  lastSnapshot = after;
}

// --- sending -----------------------------------------------------------------------------------

function authHeader(auth: AuthChoice): string | undefined {
  switch (auth.kind) {
    case 'user':
      return `Bearer ${tokens.user}`;
    case 'admin':
      return `Bearer ${tokens.admin}`;
    case 'none':
      return undefined;
    case 'header':
      return auth.value;
    case 'token':
      return `Bearer ${badTokens[auth.name]}`;
  }
}

async function send(op: Operation, request: FuzzRequest): Promise<HttpResult> {
  const headers: Record<string, string> = { ...request.headers };
  const authorization = authHeader(request.auth);
  if (authorization !== undefined) headers.authorization = authorization;
  const payload =
    request.bodyText !== undefined
      ? request.bodyText
      : request.body === undefined
        ? undefined
        : serialize(request.body);
  if (payload !== undefined && request.contentType !== null) {
    headers['content-type'] = request.contentType ?? 'application/json';
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms: ${describeRequest(op, request)}`)),
      REQUEST_TIMEOUT_MS,
    );
  });
  try {
    const response = await Promise.race([
      t.app.inject({
        method: op.method as 'GET',
        url: urlOf(op, request),
        headers,
        ...(payload === undefined ? {} : { payload }),
      }),
      timeout,
    ]);
    let body: unknown;
    try {
      body = response.body.length > 0 ? JSON.parse(response.body) : undefined;
    } catch {
      body = response.body;
    }
    return { status: response.statusCode, headers: response.headers, body, raw: response.body };
  } finally {
    clearTimeout(timer);
  }
}

// --- cases -------------------------------------------------------------------------------------

const BODY_METHODS = ['POST', 'PUT', 'PATCH'];
/** Body methods without a documented body still read one (an empty JSON object). */
const EMPTY_BODY: Schema = { type: 'object', properties: {}, additionalProperties: false };

function withBody(op: Operation): Operation {
  return BODY_METHODS.includes(op.method) && !op.body ? { ...op, body: EMPTY_BODY } : op;
}

/** A request the schema accepts, as hard as the generators make it. */
function validRequest(op: Operation): fc.Arbitrary<FuzzRequest> {
  const path = fc.record(
    Object.fromEntries(
      op.pathParams.map((p) => [p.name, validParamValue(p.schema, pool).map((v) => String(v))]),
    ) as Record<string, fc.Arbitrary<string>>,
  );
  const query = fc
    .tuple(
      ...op.queryParams.map((p) =>
        fc.option(validParamValue(p.schema, pool), { nil: undefined, freq: 2 }).map((value) => {
          if (value === undefined) return [] as [string, string][];
          return (Array.isArray(value) ? value : [value]).map((v): [string, string] => [p.name, v]);
        }),
      ),
    )
    .map((lists) => lists.flat());
  const properties: Record<string, Schema> = op.body?.properties ?? {};
  const body =
    op.body && BODY_METHODS.includes(op.method)
      ? fc.record(
          Object.fromEntries(
            Object.entries(properties).map(([name, schema]) => [name, validJsonValue(schema, pool)]),
          ),
          { requiredKeys: op.body.required ?? [] },
        )
      : fc.constant(undefined);
  const auth = fc.constantFrom<AuthChoice>(
    { kind: 'user' },
    { kind: 'user' },
    { kind: 'user' },
    { kind: 'admin' },
  );
  return fc.record({ path, query, body, auth, headers: NOISE_HEADERS }).map(
    (parts): FuzzRequest => ({
      method: op.method,
      path: parts.path,
      rawPath: {},
      query: parts.query,
      body: parts.body === undefined ? undefined : { ...parts.body },
      auth: parts.auth,
      headers: parts.headers,
    }),
  );
}

interface BadCase {
  request: FuzzRequest;
  elements: BadElement[];
}

function badCase(op: Operation): fc.Arbitrary<BadCase> | null {
  const element = badElement(op);
  if (!element) return null;
  return (
    fc
      .record({ base: validRequest(op), elements: fc.array(element, { minLength: 1, maxLength: 3 }) })
      .map(({ base, elements }) => {
        // Fresh copies: fast-check may replay a value while shrinking.
        const request: FuzzRequest = {
          ...base,
          path: { ...base.path },
          rawPath: {},
          query: [...base.query],
          body: isPlainObject(base.body) ? { ...base.body } : base.body,
          headers: { ...base.headers },
        };
        for (const e of elements) e.apply(request);
        return { request, elements };
      })
      // No content type and an empty body is the documented bodiless call (`curl -X POST …/start`),
      // read as `{}`: valid input, whatever elements made it.
      .filter(
        ({ request }) =>
          !(
            request.contentType === null &&
            (request.bodyText === '' || (request.bodyText === undefined && request.body === undefined))
          ),
      )
  );
}

const stats = { bad: 0, valid: 0, statuses: new Map<number, number>() };
afterAll(() => console.log(`fuzz: ${stats.valid} adversarial valid cases, none a 5xx`));
function count(status: number): void {
  stats.statuses.set(status, (stats.statuses.get(status) ?? 0) + 1);
}

function context(op: Operation, c: { request: FuzzRequest; elements?: BadElement[] }, result?: HttpResult) {
  const what = c.elements ? ` [${c.elements.map((e) => e.what).join('; ')}]` : '';
  const answer = result ? ` -> ${result.status} ${result.raw.slice(0, 300)}` : '';
  return `${describeRequest(op, c.request)}${what}${answer}`;
}

const mirrored = operations.filter((op) => op.template.startsWith(`${apiBase}/`));
const plain = operations.filter((op) => !op.template.startsWith(`${apiBase}/`));

describe('input fuzzing of every operation of /openapi.json', () => {
  it('reads the operations from the live document', () => {
    expect(document.openapi).toMatch(/^3\.1\./);
    expect(mirrored.length).toBeGreaterThanOrEqual(26);
  });

  describe('bad input: a 4xx with the API error body, no hang, no row changed', () => {
    mirrored.forEach((operation, index) => {
      const op = withBody(operation);
      it(op.label, async () => {
        const arbitrary = badCase(op);
        expect(arbitrary, `${op.label} offers no invalid input`).not.toBeNull();
        if (!arbitrary) return;
        // Writes are checked case by case; reads (which must not write either) once around the run.
        const write = op.method !== 'GET';
        const readBefore = write ? undefined : await stateBefore();
        await fc.assert(
          fc.asyncProperty(arbitrary, async (c) => {
            const before = write ? await stateBefore() : undefined;
            const result = await send(op, c.request);
            stats.bad += 1;
            count(result.status);
            const where = context(op, c, result);
            const allowed = [...new Set(c.elements.flatMap((e) => e.statuses))].sort();
            expect(result.status, where).toBeGreaterThanOrEqual(400);
            expect(result.status, where).toBeLessThan(500);
            expect(allowed, `status ${result.status} not among ${allowed}: ${where}`).toContain(
              result.status,
            );
            expectErrorBody(result, result.status);
            if (before) await expectUnchanged(before, where);
          }),
          { numRuns: BAD_RUNS, seed: SEED + index, endOnFailure: process.env.FUZZ_SHRINK !== '1' },
        );
        if (readBefore) await expectUnchanged(readBefore, `${BAD_RUNS} bad reads of ${op.label}`);
      });
    });
  });

  describe('routes outside the REST mirror: odd input is never a 5xx and changes nothing', () => {
    for (const op of plain) {
      it(op.label, async () => {
        const noise = fc.record({
          query: fc.array(fc.tuple(fc.constantFrom('x', 'status', '__proto__', "'; drop"), fc.string()), {
            maxLength: 3,
          }),
          auth: fc.constantFrom<AuthChoice>(
            { kind: 'user' },
            { kind: 'none' },
            { kind: 'header', value: 'Bearer x' },
            { kind: 'token', name: 'expired' },
          ),
          headers: NOISE_HEADERS,
        });
        await fc.assert(
          fc.asyncProperty(noise, async (n) => {
            const request: FuzzRequest = { method: op.method, path: {}, rawPath: {}, body: undefined, ...n };
            const before = await stateBefore();
            const result = await send(op, request);
            const where = context(op, { request }, result);
            expect(result.status, where).toBeLessThan(500);
            if (result.status >= 400) expectErrorBody(result, result.status);
            await expectUnchanged(before, where);
          }),
          { numRuns: VALID_RUNS, seed: SEED },
        );
      });
    }
  });

  it(`ran at least ${MIN_BAD_CASES} bad cases over all operations`, () => {
    console.log(
      `fuzz: ${stats.bad} bad cases over ${mirrored.length} operations (seed ${SEED}); statuses ${JSON.stringify(
        Object.fromEntries([...stats.statuses].sort(([a], [b]) => a - b)),
      )}`,
    );
    if (!process.env.FUZZ_RUNS) expect(stats.bad).toBeGreaterThanOrEqual(MIN_BAD_CASES);
  });

  // Pagination cursors are opaque strings to the schema (any 1..500 characters), so the document cannot
  // say which are bad; the server decodes them (base64url JSON) and must refuse forged ones itself.
  describe('forged pagination cursors: a 4xx, never a 5xx', () => {
    const paged = mirrored.filter(
      (op) => op.method === 'GET' && op.queryParams.some((p) => p.name === 'cursor'),
    );
    paged.forEach((op, index) => {
      const enumOf = (name: string): string[] =>
        op.queryParams.find((p) => p.name === name)?.schema.enum ?? [];
      const scalar = fc.constantFrom<unknown>(
        null,
        'abc',
        '',
        '2026-01-02T03:04:05.000Z',
        '0000-01-01T00:00:00Z',
        '9999-12-31T23:59:59.999-23:59',
        'critical',
        "'; drop table tasks; --",
        1,
        1.5,
        -1,
        0,
        1e300,
        2 ** 31,
        2 ** 63,
        true,
        {},
        [1],
      );
      // The cursor's tag is what it pages through: the last path segment (`tasks`, `audit`).
      const kind = op.template.split('/').at(-1) ?? '';
      const sometimes = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined, freq: 8 });
      const forged = fc
        .record({
          k: fc.constantFrom(kind, kind, kind, 'x'),
          s: sometimes(fc.constantFrom(...enumOf('sort'), 'junk')),
          o: sometimes(fc.constantFrom(...enumOf('order'), 'up')),
          v: sometimes(scalar),
          id: sometimes(scalar),
        })
        .map((cursor) => Object.fromEntries(Object.entries(cursor).filter(([, v]) => v !== undefined)));
      it(op.label, async () => {
        await fc.assert(
          fc.asyncProperty(forged, async (cursor) => {
            const query: [string, string][] = [
              ['cursor', Buffer.from(JSON.stringify(cursor)).toString('base64url')],
            ];
            // Make the cursor belong to the page asked for, so that its position reaches the query.
            if (enumOf('sort').includes(String(cursor.s))) query.push(['sort', String(cursor.s)]);
            if (enumOf('order').includes(String(cursor.o))) query.push(['order', String(cursor.o)]);
            const request: FuzzRequest = {
              method: op.method,
              path: {},
              rawPath: {},
              query,
              body: undefined,
              auth: { kind: 'user' },
              headers: {},
            };
            const result = await send(op, request);
            const where = `${context(op, { request }, result)} cursor=${JSON.stringify(cursor)}`;
            expect(result.status, where).toBeLessThan(500);
            if (result.status >= 400) expectErrorBody(result, result.status);
          }),
          {
            numRuns: VALID_RUNS * 2,
            seed: SEED + 2000 + index,
            endOnFailure: process.env.FUZZ_SHRINK !== '1',
          },
        );
      });
    });
  });

  // Last: these may change rows (they are valid), which the bad cases above must not see.
  describe('adversarial valid input (unicode, control characters, SQL/JSON text, extreme values): never a 5xx', () => {
    mirrored.forEach((operation, index) => {
      const op = withBody(operation);
      it(op.label, async () => {
        await fc.assert(
          fc.asyncProperty(validRequest(op), async (request) => {
            lastSnapshot = undefined;
            const result = await send(op, request);
            stats.valid += 1;
            const where = context(op, { request }, result);
            expect(result.status, where).toBeLessThan(500);
            if (result.status >= 400) expectErrorBody(result, result.status);
          }),
          { numRuns: VALID_RUNS, seed: SEED + 1000 + index, endOnFailure: process.env.FUZZ_SHRINK !== '1' },
        );
      });
    });
  });
});
