import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const url = process.env.TEST_DATABASE_URL;
const fixture = fileURLToPath(new URL('./fixtures/reserved-connection-killed.mjs', import.meta.url));

describe('the postgres.js patch (server/patches/postgres+3.4.9.patch, applied by postinstall)', () => {
  it('is applied to the installed driver', () => {
    for (const file of ['src/connection.js', 'cjs/src/connection.js', 'src/index.js']) {
      const source = readFileSync(new URL(`../node_modules/postgres/${file}`, import.meta.url), 'utf8');
      expect(source, file).toContain('TaskFlow patch');
    }
  });

  it.skipIf(!url)(
    'turns a killed backend under a reserved connection or a transaction into catchable errors instead of a crash or a hang',
    () => {
      const run = spawnSync(process.execPath, [fixture, url ?? ''], { encoding: 'utf8', timeout: 20_000 });
      expect(run.error, 'the process hung').toBeUndefined();
      expect(run.stderr).not.toMatch(/TypeError/);
      expect(run.status, run.stderr).toBe(0);
      const result = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}');
      expect(result.poolStillWorks).toBe(true);
      expect(result.reservedOutcomes).toHaveLength(2);
      for (const code of result.reservedOutcomes)
        expect(['ECONNRESET', 'CONNECTION_CLOSED', 'EPIPE']).toContain(code);
      expect(['ECONNRESET', 'CONNECTION_CLOSED', 'EPIPE', '57P01']).toContain(result.transaction);
    },
  );
});
