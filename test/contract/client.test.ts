import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import {
  packageOf,
  type Run,
  readImportLog,
  runProcess,
  writeImportRecorder,
} from '../helpers/run-process.js';

/**
 * The client package as a Next.js app gets it: `@taskflow/client` is packed (`npm run pack:client`,
 * so `files` and `exports` are what a registry would serve), the tarball is unpacked into the
 * node_modules of a copy of test/fixtures/consumer, and only its peers (tRPC, zod) and Node's types
 * are linked beside it from the repository's node_modules: no server package is there, so the
 * router's types must be complete without them. Then `tsc` compiles the fixture, and its program
 * runs against a live server. The package is also installed alone with npm, and its entries are
 * bundled for the browser to measure what a page ships.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = join(ROOT, 'test/fixtures/consumer');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const TSX = join(ROOT, 'node_modules/tsx/dist/cli.mjs');

function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<Run> {
  return runProcess(command, args, { cwd, env });
}

function succeeded(result: Run, what: string): Run {
  expect(result.code, `${what}\n${result.stdout}\n${result.stderr}`).toBe(0);
  return result;
}

let work: string;
let app: string;
let tarball: string;
let packedFiles: string[];
let compile: Run;
let diagnostics: { file: string | null; line: number; code: string; text: string }[];
const expectedErrors = new Map<number, string>();
let t: TestApp;
let url: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'taskflow-consumer-'));

  // `npm run pack:client`: the package as a registry would serve it.
  const packed = succeeded(
    await run(process.execPath, [TSX, 'server/cli/pack-client.ts', '--out', work], ROOT),
    'pack:client',
  );
  tarball = packed.stdout.trim().split('\n').at(-1) as string;
  const listed = succeeded(await run('tar', ['-tzf', tarball], work), 'tar -t');
  packedFiles = listed.stdout
    .trim()
    .split('\n')
    .map((file) => file.replace(/^package\//, ''));

  app = join(work, 'app');
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  for (const entry of ['package.json', 'tsconfig.json', '.src']) {
    cpSync(join(FIXTURE, entry), join(app, entry), { recursive: true });
  }
  for (const entry of ['@trpc', 'zod', '@types']) {
    symlinkSync(join(ROOT, 'node_modules', entry), join(app, 'node_modules', entry));
  }
  mkdirSync(join(work, 'unpacked'));
  succeeded(await run('tar', ['-xzf', tarball, '-C', join(work, 'unpacked')], work), 'tar');
  mkdirSync(join(app, 'node_modules/@taskflow'));
  renameSync(join(work, 'unpacked/package'), join(app, 'node_modules/@taskflow/client'));

  // The type-errors file once more with each directive disarmed (same line numbers), compiled in
  // the same tsc run as the fixture, so the package's types are loaded and checked once: the fixture
  // must get no diagnostic, the disarmed copy exactly the expected ones.
  const source = readFileSync(join(FIXTURE, '.src/type-errors.ts'), 'utf8').split('\n');
  const disarmed = source.map((line, index) => {
    const directive = /\/\/ @ts-expect-error \[(TS\d+)\]/.exec(line);
    if (!directive?.[1]) return line;
    expectedErrors.set(index + 2, directive[1]); // on the next line, 1-based
    return line.replace('@ts-expect-error', '(expected error)');
  });
  mkdirSync(join(app, 'stripped'));
  writeFileSync(join(app, 'stripped/type-errors.ts'), disarmed.join('\n'));
  const fixtureConfig = JSON.parse(readFileSync(join(FIXTURE, 'tsconfig.json'), 'utf8'));
  writeFileSync(
    join(app, 'tsconfig.check.json'),
    JSON.stringify({
      extends: './tsconfig.json',
      compilerOptions: { rootDir: '.' },
      files: [...fixtureConfig.files, 'stripped/type-errors.ts'],
    }),
  );
  compile = await run(process.execPath, [TSC, '-p', 'tsconfig.check.json'], app);
  diagnostics = [...compile.stdout.matchAll(/^(?:(\S+)\((\d+),\d+\): )?error (TS\d+):.*$/gm)].map(
    (match) => ({
      file: match[1] ?? null,
      line: Number(match[2]),
      code: match[3] as string,
      text: match[0],
    }),
  );

  t = await createTestApp();
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
}, 600_000);

afterAll(async () => {
  await t?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('@taskflow/client in a consumer project', () => {
  it('is packed with both entries, their types and the router declarations, and no server code', () => {
    expect(packedFiles).toEqual(
      expect.arrayContaining([
        'package.json',
        'dist/shared/client.js',
        'dist/shared/client.d.ts',
        'dist/shared/client-schemas.js',
        'dist/shared/client-schemas.d.ts',
        'dist/shared/router.d.ts',
        'dist/server/routers/index.d.ts',
      ]),
    );
    expect(packedFiles.filter((file) => file !== 'package.json' && !file.startsWith('dist/'))).toEqual([]);
    expect(packedFiles.filter((file) => /^dist\/(server|db)\/.*(?<!\.d\.ts)$/.test(file))).toEqual([]);
    const manifest = JSON.parse(
      readFileSync(join(app, 'node_modules/@taskflow/client/package.json'), 'utf8'),
    );
    expect(manifest.exports['.']).toEqual({
      types: './dist/shared/client.d.ts',
      default: './dist/shared/client.js',
    });
    expect(manifest.exports['./schemas']).toEqual({
      types: './dist/shared/client-schemas.d.ts',
      default: './dist/shared/client-schemas.js',
    });
    // Nothing of its own to install or run: tRPC and zod are the app's, as ranges.
    expect(manifest.dependencies).toBeUndefined();
    expect(manifest.scripts).toBeUndefined();
    expect(manifest.peerDependencies).toEqual({
      '@trpc/client': '^11.0.0',
      '@trpc/server': '^11.0.0',
      zod: '^4.0.0',
    });
  });

  it('compiles the correct code, and every @ts-expect-error in it is needed', () => {
    // An unneeded directive is itself an error (TS2578), so no diagnostic proves both.
    expect(compile.stderr).toBe('');
    expect(diagnostics.filter((diagnostic) => diagnostic.file !== 'stripped/type-errors.ts')).toEqual([]);
  });

  it('reports exactly the expected error on each line once the directives are removed', () => {
    expect(expectedErrors.size).toBeGreaterThanOrEqual(20);
    const reported = new Map<number, string[]>();
    for (const { file, line, code } of diagnostics) {
      if (file === 'stripped/type-errors.ts') reported.set(line, [...(reported.get(line) ?? []), code]);
    }
    expect([...reported.keys()].sort((a, b) => a - b)).toEqual(
      [...expectedErrors.keys()].sort((a, b) => a - b),
    );
    const source = readFileSync(join(app, 'stripped/type-errors.ts'), 'utf8').split('\n');
    for (const [line, code] of expectedErrors) {
      expect(reported.get(line), `line ${line}: ${source[line - 1]?.trim()}`).toEqual([code]);
    }
  });

  it('runs its calls against a live server', async () => {
    const alice = await t.token('alice');
    const admin = await t.token('root', { role: 'admin' });
    const result = succeeded(
      await run(process.execPath, ['dist/.src/app.js'], app, {
        TASKFLOW_URL: url,
        TASKFLOW_TOKEN: alice,
        TASKFLOW_ADMIN_TOKEN: admin,
      }),
      'consumer program',
    );
    const report = JSON.parse(result.stdout);
    const id = report.created.id;
    expect(report).toEqual({
      created: { id, title: 'Ship the consumer fixture', labels: ['web'], status: 'pending' },
      rejected: expect.stringMatching(/\S/),
      me: { id: 'alice', role: 'user', type: 'human' },
      pendingOfMine: [],
      found: [id],
      before: ['start', 'block'],
      started: { status: 'in_progress', assignedTo: 'alice' },
      secondClaim: { code: 'CONFLICT', status: 409, message: expect.stringMatching(/in_progress/) },
      invalid: { code: 'BAD_REQUEST', paths: ['percent'] },
      during: ['progress', 'submitForReview', 'complete', 'block', 'heartbeat', 'release'],
      completed: { status: 'completed', progressPercent: 100 },
      knownStatuses: 5,
      history: [
        'created:alice:human',
        'started:alice:human',
        'progressed:alice:human',
        'completed:alice:human',
      ],
    });
    // The same row as REST, whoever asks.
    const viaRest = await t.rest('GET', `/api/tasks/${id}`, { token: alice });
    expect(viaRest.body).toMatchObject({ status: 'completed', assignedTo: 'alice', labels: ['web'] });
  }, 60_000);

  it('loads no server code and no zod when the installed light entry is imported', async () => {
    const register = writeImportRecorder(work);
    writeFileSync(join(app, 'probe.mjs'), `await import('@taskflow/client');\n`);
    const log = join(work, 'imports.log');
    succeeded(
      await run(process.execPath, ['--import', register, 'probe.mjs'], app, {
        IMPORT_LOG: log,
      }),
      'probe',
    );
    const urls = readImportLog(log);
    expect(
      urls.some((loaded) => loaded.endsWith('/node_modules/@taskflow/client/dist/shared/client.js')),
    ).toBe(true);
    const packages = new Set(urls.map(packageOf).filter((name): name is string => name !== null));
    expect([...packages].sort()).toEqual(['@taskflow/client', '@trpc/client', '@trpc/server']);
    expect(urls.filter((loaded) => /\/@trpc\/server\/dist\/adapters\//.test(loaded))).toEqual([]);
  }, 60_000);

  it('installs alone with npm: itself and its peers, no other package, no script, no engine warning', async () => {
    const alone = join(work, 'alone');
    mkdirSync(alone);
    writeFileSync(join(alone, 'package.json'), JSON.stringify({ name: 'alone', private: true }));
    // npm installs the peers too; from its cache when it has them.
    const installed = succeeded(
      await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], alone),
      'npm install',
    );
    expect(installed.stderr).not.toMatch(/EBADENGINE|install-scripts/);
    const lock = JSON.parse(readFileSync(join(alone, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { peer?: boolean; hasInstallScript?: boolean }>;
    };
    const entries = Object.entries(lock.packages)
      .filter(([path]) => path !== '')
      .map(([path, entry]) => ({ name: path.replace(/^.*node_modules\//, ''), ...entry }));
    // Everything else is a peer: ours (tRPC, zod) and theirs (tRPC's TypeScript), which the app has.
    expect(entries.filter((entry) => !entry.peer).map((entry) => entry.name)).toEqual(['@taskflow/client']);
    expect(entries.map((entry) => entry.name)).toEqual(
      expect.arrayContaining(['@trpc/client', '@trpc/server', 'zod']),
    );
    expect(entries.filter((entry) => entry.hasInstallScript)).toEqual([]);
  }, 120_000);

  it('ships no zod to a page that imports only the light entry (bundled and minified for the browser)', async () => {
    const { build } = await import('esbuild');
    const bundle = async (code: string) => {
      const result = await build({
        stdin: { contents: code, resolveDir: app, loader: 'ts' },
        bundle: true,
        minify: true,
        format: 'esm',
        platform: 'browser',
        write: false,
        metafile: true,
      });
      const inputs = Object.keys(result.metafile.inputs);
      return { bytes: result.outputFiles[0]?.contents.byteLength ?? 0, inputs };
    };
    const light = await bundle(
      `import { createTaskflowClient, errorInfo, legalActions } from '@taskflow/client';
       console.log(createTaskflowClient, errorInfo, legalActions);`,
    );
    const withSchemas = await bundle(
      `import { TaskCreateInput } from '@taskflow/client/schemas';
       console.log(TaskCreateInput);`,
    );
    expect(light.inputs.some((input) => input.includes('/zod/'))).toBe(false);
    expect(light.inputs.some((input) => input.includes('/@taskflow/client/dist/shared/schemas/'))).toBe(
      false,
    );
    expect(withSchemas.inputs.some((input) => input.includes('/zod/'))).toBe(true);
    console.log(
      `client bundle (minified): light entry ${(light.bytes / 1024).toFixed(1)} KB, ` +
        `schemas entry ${(withSchemas.bytes / 1024).toFixed(1)} KB`,
    );
    // The tRPC client and our helpers; zod alone is several times this.
    expect(light.bytes).toBeLessThan(40 * 1024);
    expect(withSchemas.bytes).toBeGreaterThan(light.bytes + 40 * 1024);
  }, 60_000);
});
