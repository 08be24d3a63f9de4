import { readFileSync } from 'node:fs';
import { type AnyTRPCProcedure, initTRPC } from '@trpc/server';
import Fastify from 'fastify';
import { fastifyTRPCOpenApiPlugin, type OpenApiMeta } from 'trpc-to-openapi';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { appRouter } from '../../server/routers/index.js';
import type { CallOptions } from '../../server/trpc/run-procedure.js';

const PATCHED = [
  'adapters/fastify',
  'adapters/node-http/core',
  'adapters/node-http/procedures',
  'utils/method',
].flatMap((file) => [`dist/esm/${file}.mjs`, `dist/cjs/${file}.js`]);

const moduleUrl = (file: string) => new URL(`../../node_modules/trpc-to-openapi/${file}`, import.meta.url);

describe('the trpc-to-openapi patch (server/patches/trpc-to-openapi+3.3.0.patch, applied by postinstall)', () => {
  it('is applied to every file it changes, ESM and CommonJS builds alike', () => {
    for (const file of PATCHED)
      expect(readFileSync(moduleUrl(file), 'utf8'), file).toContain('TaskFlow patch');
  });

  it('decodes percent-encoded path parameters (`/workers/%40bot` is the worker `@bot`)', async () => {
    type Lookup = (
      method: string,
      path: string,
    ) =>
      | { procedure: { path: string; procedure: AnyTRPCProcedure }; pathInput: Record<string, string> }
      | undefined;
    const { createProcedureCache } = (await import(
      moduleUrl('dist/esm/adapters/node-http/procedures.mjs').href
    )) as { createProcedureCache: (router: typeof appRouter) => Lookup };
    const found = createProcedureCache(appRouter)('GET', '/workers/%40release-bot');
    expect(found?.procedure.path).toBe('workers.get');
    expect(found?.pathInput).toEqual({ id: '@release-bot' });
    // A malformed escape is left as it came (the procedure's input check then refuses it).
    expect(createProcedureCache(appRouter)('GET', '/workers/%E0%A4%A')?.pathInput).toEqual({
      id: '%E0%A4%A',
    });
  });

  it('calls each procedure through the `callProcedure` option when one is given', async () => {
    const t = initTRPC.meta<OpenApiMeta>().create();
    const router = t.router({
      hello: t.procedure
        .meta({ openapi: { method: 'GET', path: '/hello' } })
        .input(z.object({ name: z.string() }))
        .output(z.string())
        .query(({ input }) => `hello ${input.name}`),
    });
    const seen: string[] = [];
    const app = Fastify();
    await app.register(fastifyTRPCOpenApiPlugin, {
      basePath: '/api',
      router,
      createContext: () => ({}),
      callProcedure: (procedure: AnyTRPCProcedure, options: CallOptions) => {
        seen.push(`${options.path} ${options.type}`);
        return procedure(options);
      },
    });
    const answer = await app.inject({ method: 'GET', url: '/api/hello?name=ann' });
    await app.close();
    expect(answer.statusCode).toBe(200);
    expect(answer.json()).toBe('hello ann');
    expect(seen).toEqual(['hello query']);
  });
});
