import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
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
 * The client package as a Next.js app gets it: the repository is built and packed (`npm pack`, so
 * `files` and `exports` are what a registry would serve), the tarball is unpacked into the
 * node_modules of a copy of test/fixtures/consumer, and the package's own dependencies are linked
 * beside it from the repository's node_modules (nothing is fetched). Then `tsc` compiles the
 * fixture, and its program runs against a live server.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = join(ROOT, 'test/fixtures/consumer');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<Run> {
  return runProcess(command, args, { cwd, env });
}

function succeeded(result: Run, what: string): Run {
  expect(result.code, `${what}\n${result.stdout}\n${result.stderr}`).toBe(0);
  return result;
}

let work: string;
let app: string;
let packedFiles: string[];
let compile: Run;
let diagnostics: { file: string | null; line: number; code: string; text: string }[];
const expectedErrors = new Map<number, string>();
let t: TestApp;
let url: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'taskflow-consumer-'));
  const pkg = join(work, 'pkg');

  // `npm run build` minus the type check (`npm run typecheck` does that): the emitted JS and
  // declarations are the same, in a fraction of the time.
  succeeded(
    await run(
      process.execPath,
      [TSC, '-p', 'tsconfig.build.json', '--outDir', join(pkg, 'dist'), '--noCheck'],
      ROOT,
    ),
    'build',
  );
  cpSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  cpSync(join(ROOT, 'README.md'), join(pkg, 'README.md'));
  const packed = succeeded(
    await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], pkg),
    'npm pack',
  );
  const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
  if (!info) throw new Error('npm pack reported nothing');
  packedFiles = info.files.map((file) => file.path);

  app = join(work, 'app');
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  for (const entry of ['package.json', 'tsconfig.json', '.src']) {
    cpSync(join(FIXTURE, entry), join(app, entry), { recursive: true });
  }
  for (const entry of readdirSync(join(ROOT, 'node_modules'))) {
    if (!entry.startsWith('.'))
      symlinkSync(join(ROOT, 'node_modules', entry), join(app, 'node_modules', entry));
  }
  mkdirSync(join(work, 'unpacked'));
  succeeded(await run('tar', ['-xzf', join(work, info.filename), '-C', join(work, 'unpacked')], work), 'tar');
  renameSync(join(work, 'unpacked/package'), join(app, 'node_modules/taskflow'));

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

describe('taskflow/client in a consumer project', () => {
  it('is packed with the client entry, its types and the CLI, all under dist/', () => {
    expect(packedFiles).toEqual(
      expect.arrayContaining([
        'package.json',
        'dist/shared/client.js',
        'dist/shared/client.d.ts',
        'dist/shared/router.d.ts',
        'dist/server/routers/index.d.ts',
        'dist/server/cli/taskflow.js',
      ]),
    );
    expect(
      packedFiles.every(
        (file) => file === 'package.json' || file === 'README.md' || file.startsWith('dist/'),
      ),
    ).toBe(true);
    const manifest = JSON.parse(readFileSync(join(app, 'node_modules/taskflow/package.json'), 'utf8'));
    expect(manifest.exports['./client']).toEqual({
      types: './dist/shared/client.d.ts',
      default: './dist/shared/client.js',
    });
    expect(manifest.bin).toEqual({ taskflow: 'dist/server/cli/taskflow.js' });
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
      during: ['progress', 'submitForReview', 'complete', 'block'],
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

  it('loads no server code when the installed package is imported', async () => {
    const register = writeImportRecorder(work);
    writeFileSync(join(app, 'probe.mjs'), `await import('taskflow/client');\n`);
    const log = join(work, 'imports.log');
    succeeded(
      await run(process.execPath, ['--import', register, 'probe.mjs'], app, {
        IMPORT_LOG: log,
      }),
      'probe',
    );
    const urls = readImportLog(log);
    expect(urls.some((loaded) => loaded.endsWith('/node_modules/taskflow/dist/shared/client.js'))).toBe(true);
    const packages = new Set(urls.map(packageOf).filter((name): name is string => name !== null));
    expect([...packages].sort()).toEqual(['@trpc/client', '@trpc/server', 'taskflow', 'zod']);
    expect(urls.filter((loaded) => /\/taskflow\/dist\/(server|db)\//.test(loaded))).toEqual([]);
    expect(urls.filter((loaded) => /\/@trpc\/server\/dist\/adapters\//.test(loaded))).toEqual([]);
  }, 60_000);
});
