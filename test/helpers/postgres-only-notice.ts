import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const TEST_ROOT = fileURLToPath(new URL('..', import.meta.url));
const MARKER = 'describePostgresOnly(';

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'fixtures' ? [] : testFiles(path);
    return entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

/**
 * Vitest global setup: after a run without TEST_DATABASE_URL, one line names the suites that were
 * skipped for want of a PostgreSQL server and says how to run them, so a green run on PGlite alone
 * is never mistaken for the whole suite.
 */
export default function setup(): () => void {
  return () => {
    if (process.env.TEST_DATABASE_URL) return;
    const skipped = testFiles(TEST_ROOT)
      .filter((file) => readFileSync(file, 'utf8').includes(MARKER))
      .map((file) => relative(TEST_ROOT, file).replace(/\.test\.ts$/, ''));
    if (skipped.length === 0) return;
    console.log(
      `\nSkipped without TEST_DATABASE_URL: the PostgreSQL-only suites in ${skipped.join(', ')}.\n` +
        'Run them with: TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm test\n',
    );
  };
}
