import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/spawn-server.js';

/**
 * The README's Next.js recipes are the files of test/fixtures/next, which test/nextjs builds and
 * runs: each ```ts/```tsx block that starts with `// <path>` must be that file, and every file of
 * the app (but the stand-in for Better Auth's endpoint) must be in the README.
 */
const APP = join(ROOT, 'test/fixtures/next');
const NOT_A_RECIPE = new Set(['app/api/auth/token/route.ts']);

function sources(dir: string): string[] {
  return readdirSync(join(APP, dir), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && /\.tsx?$/.test(entry.name))
    .map((entry) => relative(APP, join(entry.parentPath, entry.name)));
}

describe('README Next.js recipes', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```tsx?\n\/\/ ((?:app|lib)\/\S+)\n([\s\S]*?)```/g)].map((match) => ({
    path: match[1] as string,
    body: match[2] as string,
  }));

  it('shows every file of the fixture app once', () => {
    const files = [...sources('app'), ...sources('lib')].filter((file) => !NOT_A_RECIPE.has(file)).sort();
    expect(files.length).toBeGreaterThanOrEqual(10);
    expect(blocks.map((block) => block.path).sort()).toEqual(files);
  });

  it('shows each file exactly as the app compiles it', () => {
    for (const { path, body } of blocks) {
      expect(body, path).toBe(readFileSync(join(APP, path), 'utf8'));
    }
  });
});
