import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, expectErrorBody, type TestApp } from '../helpers/app.js';

let t: TestApp;
let document: any;
beforeAll(async () => {
  t = await createTestApp();
  document = (await t.rest('GET', '/openapi.json')).body;
});
afterAll(() => t.close());

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

function operations(doc: any): { path: string; method: string; op: any }[] {
  return Object.entries(doc.paths).flatMap(([path, item]: [string, any]) =>
    METHODS.filter((method) => item[method]).map((method) => ({ path, method, op: item[method] })),
  );
}

describe('the OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document according to swagger-parser', async () => {
    expect(document.openapi).toMatch(/^3\.1\./);
    // validate() dereferences in place: give it a copy.
    await expect(SwaggerParser.validate(structuredClone(document))).resolves.toBeTruthy();
  });

  it('gives every operation an id, summary, description, tags, security and documented 4xx responses', () => {
    const ops = operations(document);
    expect(ops.length).toBeGreaterThanOrEqual(26);
    const ids = new Set<string>();
    for (const { path, method, op } of ops) {
      const where = `${method.toUpperCase()} ${path}`;
      expect(op.operationId, where).toEqual(expect.any(String));
      expect(ids.has(op.operationId), `${where} duplicate operationId`).toBe(false);
      ids.add(op.operationId);
      expect(op.summary, where).toEqual(expect.any(String));
      expect(op.description, where).toEqual(expect.any(String));
      expect(op.tags?.length, where).toBeGreaterThan(0);
      const isPublicHealth = op.tags.includes('health');
      if (isPublicHealth) {
        expect(op.security ?? [], where).toEqual([]);
        continue;
      }
      expect(op.security, where).toEqual([{ Authorization: [] }]);
      const errors = Object.keys(op.responses).filter((code) => /^4\d\d$/.test(code));
      expect(errors, where).toEqual(expect.arrayContaining(['400', '401', '403', '404']));
      for (const code of errors) {
        const schema = op.responses[code].content['application/json'].schema;
        expect(schema.$ref, `${where} ${code}`).toMatch(/^#\/components\/schemas\/[A-Z][A-Za-z]+Error$/);
      }
    }
  });

  it('documents errors with the API error body and the success code of each operation', () => {
    const conflict = document.components.schemas.ConflictError;
    expect(conflict.required).toEqual(['error', 'code', 'status_code', 'requestId']);
    expect(conflict.properties.status_code.const).toBe(409);
    expect(Object.keys(document.paths['/tasks'].post.responses)).toContain('201');
    expect(Object.keys(document.paths['/tasks/{id}'].delete.responses)).toContain('204');
    expect(Object.keys(document.paths['/projects/{slug}/members/{workerId}'].delete.responses)).toContain(
      '204',
    );
    expect(Object.keys(document.paths['/workers'].post.responses)).toContain('201');
    expect(document.paths['/tasks'].post.responses['413']).toBeDefined();
  });

  it('shows examples for the main schemas and declares bearer auth for Swagger UI', () => {
    expect(document.components.schemas.Task.examples[0].status).toBe('in_progress');
    expect(document.components.securitySchemes.Authorization).toEqual({
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
    });
  });

  it('puts no example on an optional parameter, so "Try it out" starts with no filter set', () => {
    const withExample: string[] = [];
    let optional = 0;
    for (const [path, item] of Object.entries<any>(document.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        for (const parameter of op.parameters ?? []) {
          if (parameter.required) continue;
          optional++;
          if ('example' in (parameter.schema ?? {}) || 'example' in parameter || 'examples' in parameter) {
            withExample.push(`${method} ${path} ${parameter.name}`);
          }
        }
      }
    }
    expect(optional).toBeGreaterThan(10);
    expect(withExample).toEqual([]);
  });

  it('lists exactly the REST paths the server answers', async () => {
    const token = await t.token('openapi-reader');
    for (const { path, method, op } of operations(document)) {
      if (op.tags.includes('health')) continue;
      const url = `/api${path.replace('{id}', '999999').replace('{slug}', 'no-such-project').replace('{workerId}', 'nobody')}`;
      const result = await t.rest(method.toUpperCase(), url, {
        token,
        ...(op.requestBody ? { body: {} } : {}),
      });
      // Whatever the operation says about these inputs, the route exists: never "No route".
      expect(result.body?.error ?? '', `${method} ${url}`).not.toMatch(/^No route/);
    }
    expectErrorBody(await t.rest('GET', '/api/no-such-thing', { token }), 404, 'NOT_FOUND');
  });
});

describe('the OpenAPI document for code generators', () => {
  it('names operations verb-first and error schemas as types', () => {
    const ids = operations(document).map(({ op }) => op.operationId);
    for (const id of ids) expect(id).toMatch(/^[a-z][A-Za-z]+$/);
    expect(ids).toEqual(
      expect.arrayContaining([
        'startTask',
        'listTasks',
        'getTaskHistory',
        'addProjectMember',
        'getCurrentWorker',
        'getHealth',
      ]),
    );
    const schemaNames = Object.keys(document.components.schemas);
    expect(schemaNames.filter((name) => !/^[A-Za-z]+$/.test(name))).toEqual([]);
    expect(JSON.stringify(document)).not.toContain('#/components/schemas/error.');
  });

  it('declares the Idempotency-Key header and its 422 on every mutation', () => {
    const mutations = operations(document).filter(({ method }) => method !== 'get');
    expect(mutations.length).toBeGreaterThanOrEqual(15);
    for (const { path, method, op } of mutations) {
      const where = `${method.toUpperCase()} ${path}`;
      const header = (op.parameters ?? []).find((p: { in: string; name: string }) => p.in === 'header');
      expect(header?.name, where).toBe('Idempotency-Key');
      expect(header.description, where).toMatch(/body field is used/);
      expect(op.responses['422'].content['application/json'].schema.$ref, where).toBe(
        '#/components/schemas/UnprocessableContentError',
      );
    }
    expect(document.components.schemas.UnprocessableContentError.properties.code.const).toBe(
      'UNPROCESSABLE_CONTENT',
    );
  });

  it('declares the request-id header on every response, rate-limit headers and Retry-After on 429', () => {
    for (const { path, method, op } of operations(document)) {
      for (const [status, response] of Object.entries(op.responses as Record<string, { headers?: object }>)) {
        const names = Object.keys(response.headers ?? {});
        const where = `${method.toUpperCase()} ${path} ${status}`;
        expect(names, where).toContain('X-Request-Id');
        if (path !== '/health') expect(names, where).toContain('X-RateLimit-Remaining');
        if (status === '429') expect(names, where).toContain('Retry-After');
      }
    }
    expect(document.paths['/health'].get.responses['200']).toBeDefined();
  });

  it('carries no safe-integer bounds', () => {
    const text = JSON.stringify(document);
    expect(text).not.toContain(String(Number.MAX_SAFE_INTEGER));
    expect(text).toContain('"maximum":2147483647');
  });

  it('declares the headers the server really sends', async () => {
    const limited = await createTestApp({
      rateLimit: { perActor: 100, perAnonymousIp: 100, redisUrl: null, windowMs: 60_000 },
    });
    try {
      const token = await limited.token('header-reader');
      const answer = await limited.rest('GET', '/api/tasks', { token });
      for (const name of [
        'x-request-id',
        'x-ratelimit-limit',
        'x-ratelimit-remaining',
        'x-ratelimit-reset',
      ]) {
        expect(answer.headers[name], name).toBeDefined();
      }
    } finally {
      await limited.close();
    }
  });
});

describe('Swagger UI', () => {
  it('serves the UI page at /docs with persistAuthorization on', async () => {
    const page = await t.app.inject({ method: 'GET', url: '/docs/' });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('swagger-ui');
    const init = await t.app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
    expect(init.statusCode).toBe(200);
    expect(init.body).toContain('persistAuthorization');
  });
});
