import { readFileSync } from 'node:fs';
import createClient from 'openapi-fetch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPENAPI_TYPES_FILE, renderOpenApiTypes } from '../../server/cli/openapi-types.js';
import type { paths } from '../../shared/openapi-types.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
let baseUrl: string;
beforeAll(async () => {
  t = await createTestApp();
  const address = await t.app.listen({ port: 0, host: '127.0.0.1' });
  baseUrl = `${address}/api`;
});
afterAll(() => t.close());

describe('generated REST types', () => {
  it('are current: shared/openapi-types.ts matches what the live router generates (run `npm run openapi:types`)', async () => {
    expect(readFileSync(OPENAPI_TYPES_FILE, 'utf8')).toBe(await renderOpenApiTypes());
  });
});

describe('an openapi-fetch client built on the generated types', () => {
  it('drives the whole workflow over real HTTP: create → start → progress → review → complete → history', async () => {
    const token = await t.token('rest-agent');
    const api = createClient<paths>({ baseUrl, headers: { authorization: `Bearer ${token}` } });

    const created = await api.POST('/tasks', { body: { title: 'Ship the REST client', labels: ['api'] } });
    expect(created.response.status, JSON.stringify(created.error)).toBe(201);
    const id = created.data?.id;
    if (id === undefined) throw new Error('no task id');

    const started = await api.POST('/tasks/{id}/start', { params: { path: { id } } });
    expect(started.data).toMatchObject({ status: 'in_progress', assignedTo: 'rest-agent' });

    const progressed = await api.POST('/tasks/{id}/progress', {
      params: { path: { id } },
      body: { percent: 60, note: 'halfway' },
    });
    expect(progressed.data?.progressPercent).toBe(60);

    const reviewed = await api.POST('/tasks/{id}/review', { params: { path: { id } } });
    expect(reviewed.data?.status).toBe('review');

    const completed = await api.POST('/tasks/{id}/complete', { params: { path: { id } } });
    expect(completed.data).toMatchObject({ status: 'completed', progressPercent: 100 });
    expect(completed.data?.completedAt).toEqual(expect.any(String));

    const history = await api.GET('/tasks/{id}/history', { params: { path: { id } } });
    expect(history.data?.nextCursor).toBeNull();
    expect(history.data?.items.map((entry) => entry.action)).toEqual([
      'created',
      'started',
      'progressed',
      'submitted',
      'completed',
    ]);

    const listed = await api.GET('/tasks', { params: { query: { status: ['completed'], label: 'api' } } });
    expect(listed.data?.items.map((task) => task.id)).toEqual([id]);

    const again = await api.POST('/tasks/{id}/start', { params: { path: { id } } });
    expect(again.response.status).toBe(409);
    expect(again.error).toMatchObject({ code: 'CONFLICT', status_code: 409 });
  });
});

/** Every error a create can answer, narrowed by `code` as a generated client's user would. */
type CreateResponses = paths['/tasks']['post']['responses'];
type CreateError = Exclude<
  CreateResponses[keyof CreateResponses],
  CreateResponses[201]
>['content']['application/json'];
function describeCreateError(error: CreateError): string {
  switch (error.code) {
    case 'BAD_REQUEST':
      return `fix the input: ${error.issues?.length ?? 0} issue(s)`;
    case 'UNAUTHORIZED':
    case 'FORBIDDEN':
    case 'NOT_FOUND':
    case 'CONFLICT':
    case 'PAYLOAD_TOO_LARGE':
    case 'UNSUPPORTED_MEDIA_TYPE':
    case 'TOO_MANY_REQUESTS':
    case 'SERVICE_UNAVAILABLE':
      return error.error;
    case 'UNPROCESSABLE_CONTENT':
      return 'that idempotency key belongs to another request';
    default: {
      // Fails to compile when the document gains an error code this switch does not narrow.
      const unhandled: never = error;
      return String(unhandled);
    }
  }
}

describe('a generated client and idempotency', () => {
  it('sends the declared Idempotency-Key header: a retry replays, another request with the key answers 422', async () => {
    const token = await t.token('rest-retrier');
    const api = createClient<paths>({ baseUrl, headers: { authorization: `Bearer ${token}` } });
    const key = `create-${Date.now()}`;
    const first = await api.POST('/tasks', {
      params: { header: { 'Idempotency-Key': key } },
      body: { title: 'Once only' },
    });
    const retry = await api.POST('/tasks', {
      params: { header: { 'Idempotency-Key': key } },
      body: { title: 'Once only' },
    });
    expect(first.response.status).toBe(201);
    expect(retry.data?.id).toBe(first.data?.id);

    const reused = await api.POST('/tasks', {
      params: { header: { 'Idempotency-Key': key } },
      body: { title: 'Something else' },
    });
    expect(reused.response.status).toBe(422);
    if (!reused.error) throw new Error('expected an error');
    expect(describeCreateError(reused.error)).toBe('that idempotency key belongs to another request');
    expect(reused.error).toMatchObject({ code: 'UNPROCESSABLE_CONTENT', status_code: 422 });
  });
});
