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
        expect(schema.$ref, `${where} ${code}`).toMatch(/^#\/components\/schemas\/error\./);
      }
    }
  });

  it('documents errors with the API error body and the success code of each operation', () => {
    const conflict = document.components.schemas['error.CONFLICT'];
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
