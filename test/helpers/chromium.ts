import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { type Browser, chromium } from 'playwright-core';

/**
 * Headless Chromium for the browser tests, with no download from a browser CDN: Debian's
 * (`apt-get install chromium`, what CI installs) when it is there, otherwise the build the
 * `@sparticuz/chromium` npm package ships brotli-compressed, unpacked once into the temporary
 * directory with the shared libraries it brings, so `npm ci && npm test` works on a machine without a
 * system browser. TASKFLOW_TEST_CHROMIUM names another system browser (a path that does not exist
 * forces the packaged one); TASKFLOW_TEST_CHROMIUM_LIBS=1 makes the packaged one use its own
 * libraries even where the system has them (to prove they suffice).
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
  const dir = unpackPackaged();
  const executablePath = join(dir, 'chromium');
  // NSS and friends: a bare Debian or Ubuntu may lack them. The system's are preferred.
  const missing = execFileSync('ldd', [executablePath], { encoding: 'utf8' }).includes('not found');
  if (!missing && !process.env.TASKFLOW_TEST_CHROMIUM_LIBS) return { executablePath, source: 'npm' };
  const path = [join(dir, 'lib'), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  return { executablePath, source: 'npm', env: { LD_LIBRARY_PATH: path } };
}

/**
 * Unpacks the package's `chromium.br` (the binary) and `al2023.tar.br` (its libraries, in `lib/`)
 * into a directory of the temporary folder named after the package's version, atomically: test
 * files running side by side either find it complete or unpack their own copy and drop it.
 */
function unpackPackaged(): string {
  let pkg = dirname(createRequire(import.meta.url).resolve('@sparticuz/chromium'));
  while (!existsSync(join(pkg, 'bin/chromium.br'))) pkg = dirname(pkg);
  const { version } = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string };
  const dir = join(tmpdir(), `taskflow-chromium-${version}`);
  if (existsSync(dir)) return dir;
  const partial = mkdtempSync(`${dir}-`);
  writeFileSync(join(partial, 'chromium'), brotliDecompressSync(readFileSync(join(pkg, 'bin/chromium.br'))), {
    mode: 0o755,
  });
  execFileSync('tar', ['-x', '-C', partial], {
    input: brotliDecompressSync(readFileSync(join(pkg, 'bin/al2023.tar.br'))),
  });
  try {
    renameSync(partial, dir);
  } catch {
    // Another test file was first.
    rmSync(partial, { recursive: true, force: true });
  }
  return dir;
}

export async function launchChromium(system = SYSTEM_CHROMIUM): Promise<Browser> {
  const found = await findChromium(system);
  return chromium.launch({
    executablePath: found.executablePath,
    args: ARGS,
    ...(found.env ? { env: { ...process.env, ...found.env } } : {}),
  });
}
