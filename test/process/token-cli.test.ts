import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { DEV_AUDIENCE, DEV_ISSUER, devKeyFile, loadOrCreateDevKey } from '../../server/auth/dev-keys.js';
import { runTs } from '../helpers/spawn-server.js';

// `npm run token` signs with the key of the server's DATA_DIR; it never makes one of its own.
describe('npm run token', () => {
  const work = mkdtempSync(join(tmpdir(), 'taskflow-token-'));

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('refuses, naming the DATA_DIR, when no server made a key there, and makes none', async () => {
    const elsewhere = join(work, 'not-the-servers');
    const result = await runTs('server/cli/token.ts', ['--sub', 'alice'], { DATA_DIR: elsewhere });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`no development key at ${devKeyFile(elsewhere)}`);
    expect(result.stderr).toContain('DATA_DIR the server uses');
    expect(existsSync(devKeyFile(elsewhere))).toBe(false);
  });

  it('signs with the key the server made in the same DATA_DIR', async () => {
    const dataDir = join(work, 'server');
    const key = await loadOrCreateDevKey(dataDir);
    const result = await runTs('server/cli/token.ts', ['--sub', 'alice'], { DATA_DIR: dataDir });
    expect(result.code, result.stderr).toBe(0);
    const { payload } = await jwtVerify(result.stdout.trim(), createLocalJWKSet({ keys: [key.publicJwk] }), {
      issuer: DEV_ISSUER,
      audience: DEV_AUDIENCE,
    });
    expect(payload.sub).toBe('alice');
  });
});
