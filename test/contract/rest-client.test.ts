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
    expect(history.data?.map((entry) => entry.action)).toEqual([
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
