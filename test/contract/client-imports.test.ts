import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageOf, readImportLog, runProcess, writeImportRecorder } from '../helpers/run-process.js';

/**
 * What a frontend bundle gets from `taskflow/client`: every module Node loads when the client entry
 * (the source, through tsx) is imported, recorded by a resolve hook. test/client.test.ts does the
 * same for the packed package.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// Packages that only make sense in the server process (HTTP, database, auth, logging, MCP, CLI).
const SERVER_ONLY = [
  'fastify',
  '@fastify/cors',
  '@fastify/swagger',
  '@fastify/swagger-ui',
  'drizzle-orm',
  'postgres',
  '@electric-sql/pglite',
  'jose',
  'pino',
  'lru-cache',
  'trpc-to-openapi',
  'zod-openapi',
  '@modelcontextprotocol/sdk',
  'commander',
];

let work: string;
let loaded: string[];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'taskflow-client-imports-'));
  const register = writeImportRecorder(work);
  const entry = pathToFileURL(join(ROOT, 'shared/client.ts')).href;
  writeFileSync(join(work, 'probe.mjs'), `await import(${JSON.stringify(entry)});\n`);
  const log = join(work, 'imports.log');
  // tsx first, so the hook records only what the client itself pulls in.
  const result = await runProcess(
    process.execPath,
    ['--import', 'tsx', '--import', register, join(work, 'probe.mjs')],
    { cwd: ROOT, env: { IMPORT_LOG: log } },
  );
  expect(result.code, result.stderr).toBe(0);
  loaded = readImportLog(log);
}, 60_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the client entry (shared/client.ts)', () => {
  it('loads no server-only package', () => {
    const packages = new Set(loaded.map(packageOf).filter((name): name is string => name !== null));
    expect(packages.size).toBeGreaterThan(0);
    for (const name of SERVER_ONLY) expect(packages.has(name), name).toBe(false);
    // Everything it does load: the tRPC client (and the client-safe core it shares with the server);
    // not zod, which only the schemas entry loads.
    expect([...packages].sort()).toEqual(['@trpc/client', '@trpc/server']);
    expect(loaded.filter((url) => url.includes('/@trpc/server/dist/adapters/'))).toEqual([]);
  });

  it('loads only shared/ from the repository, never server/ or db/', () => {
    const own = loaded
      .filter((url) => url.startsWith('file:') && packageOf(url) === null)
      .map((url) => relative(ROOT, fileURLToPath(url)))
      .filter((path) => !path.startsWith('..'));
    expect(own).toContain('shared/client.ts');
    expect(own.filter((path) => !path.startsWith('shared/'))).toEqual([]);
  });

  it('needs no Node built-in, so a browser bundle can take it', () => {
    expect(loaded.filter((url) => url.startsWith('node:'))).toEqual([]);
  });
});
