import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/**
 * Packs `@taskflow/client`, the package a frontend installs: shared/ compiled to JavaScript, the
 * declarations of the router (server/ and db/ as .d.ts only, so `AppRouter` is complete), and a
 * manifest with tRPC and zod as peer dependencies, no dependency of its own and no script. It is
 * staged in dist/client-package and packed there (or in --out); prints the tarball's path.
 *
 * Its entries: `.` (client, error helpers, workflow, types; no zod at run time) and `./schemas`.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const { values } = parseArgs({ options: { out: { type: 'string' } } });
const stage = join(ROOT, 'dist/client-package');
const out = resolve(values.out ?? stage);

rmSync(stage, { recursive: true, force: true });
// The type check is `npm run typecheck`'s job; this only emits.
execFileSync(
  process.execPath,
  [
    join(ROOT, 'node_modules/typescript/bin/tsc'),
    ...['-p', 'tsconfig.build.json', '--outDir', join(stage, 'dist'), '--noCheck'],
    ...['--sourceMap', 'false', '--declarationMap', 'false'],
  ],
  { cwd: ROOT, stdio: 'inherit' },
);

// Server and database code only as declarations: the router's types need them, a browser never.
for (const dir of ['server', 'db']) {
  const base = join(stage, 'dist', dir);
  for (const file of readdirSync(base, { recursive: true, withFileTypes: true })) {
    if (file.isFile() && !file.name.endsWith('.d.ts')) rmSync(join(file.parentPath, file.name));
  }
}

const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  license: string;
};
const manifest = {
  name: '@taskflow/client',
  version: root.version,
  description:
    'Typed client for the TaskFlow API: tRPC client, error helpers, workflow rules and zod schemas.',
  type: 'module',
  license: root.license,
  // Lets bundlers drop the modules a page does not use.
  sideEffects: false,
  exports: {
    '.': { types: './dist/shared/client.d.ts', default: './dist/shared/client.js' },
    './schemas': { types: './dist/shared/client-schemas.d.ts', default: './dist/shared/client-schemas.js' },
    './package.json': './package.json',
  },
  files: ['dist'],
  // Ranges, not pins: the app's tRPC (and @trpc/tanstack-react-query's) must be the same copy.
  peerDependencies: { '@trpc/client': '^11.0.0', '@trpc/server': '^11.0.0', zod: '^4.0.0' },
};
writeFileSync(join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);

mkdirSync(out, { recursive: true });
const packed = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out], {
  cwd: stage,
  encoding: 'utf8',
});
const [info] = JSON.parse(packed) as { filename: string }[];
if (!info) throw new Error('npm pack reported nothing');
console.log(join(out, info.filename));
