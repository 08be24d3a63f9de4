import { readFileSync } from 'node:fs';
import type { AnyTRPCProcedure } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import { appRouter } from '../../server/routers/index.js';

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
});
