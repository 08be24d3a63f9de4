import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { type Browser, chromium } from 'playwright-core';

/**
 * Headless Chromium for the browser tests, with no download from a browser CDN: Debian's
 * (`apt-get install chromium`, what CI installs) when it is there, otherwise the one the
 * `@sparticuz/chromium` npm package ships compressed, with the shared libraries it needs, so
 * `npm ci && npm test` works on a machine without a system browser. TASKFLOW_TEST_CHROMIUM names
 * another system browser (a path that does not exist forces the packaged one);
 * TASKFLOW_TEST_CHROMIUM_LIBS=1 makes the packaged one use its own libraries even where the
 * system has them (to prove they suffice).
 */
export const SYSTEM_CHROMIUM = process.env.TASKFLOW_TEST_CHROMIUM ?? '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export interface ChromiumChoice {
  executablePath: string;
  source: 'system' | 'npm';
  env?: Record<string, string>;
}

export async function findChromium(system = SYSTEM_CHROMIUM): Promise<ChromiumChoice> {
  if (existsSync(system)) return { executablePath: system, source: 'system' };
  const { default: packaged } = await import('@sparticuz/chromium');
  // Unpacks into the temporary directory once; later calls find it there.
  const executablePath = await packaged.executablePath();
  // The package unpacks the shared libraries it needs (NSS and friends) only on Amazon Linux; a bare
  // Debian or Ubuntu may lack them too. Use them only then: the system's are preferred.
  const missing = execFileSync('ldd', [executablePath], { encoding: 'utf8' }).includes('not found');
  if (!missing && !process.env.TASKFLOW_TEST_CHROMIUM_LIBS) return { executablePath, source: 'npm' };
  const libs = join(tmpdir(), 'taskflow-chromium-libs');
  if (!existsSync(libs)) unpackLibraries(libs);
  const path = [join(libs, 'lib'), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  return { executablePath, source: 'npm', env: { LD_LIBRARY_PATH: path } };
}

/** Unpacks the package's `al2023.tar.br` (a brotli-compressed tar of `lib/`) into `dir`, atomically. */
function unpackLibraries(dir: string): void {
  let bin = dirname(createRequire(import.meta.url).resolve('@sparticuz/chromium'));
  while (!existsSync(join(bin, 'bin/al2023.tar.br'))) bin = dirname(bin);
  const partial = mkdtempSync(`${dir}-`);
  execFileSync('tar', ['-x', '-C', partial], {
    input: brotliDecompressSync(readFileSync(join(bin, 'bin/al2023.tar.br'))),
  });
  try {
    renameSync(partial, dir);
  } catch {
    // Another test file unpacked them first.
    rmSync(partial, { recursive: true, force: true });
  }
}

export async function launchChromium(system = SYSTEM_CHROMIUM): Promise<Browser> {
  const found = await findChromium(system);
  return chromium.launch({
    executablePath: found.executablePath,
    args: ARGS,
    ...(found.env ? { env: { ...process.env, ...found.env } } : {}),
  });
}
