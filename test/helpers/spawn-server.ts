import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { HttpResult } from './app.js';
import { TEST_AUDIENCE, TEST_ISSUER } from './jwks-server.js';

/** The repository root: the entry point is run from here, as `npm start` would. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * A clean environment for a child: nothing TaskFlow reads leaks in from the test runner
 * (vitest sets NODE_ENV=test; a developer may have DATABASE_URL set), only what is given.
 */
export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'TMPDIR', 'LANG'];
  const base = Object.fromEntries(keep.flatMap((k) => (process.env[k] ? [[k, process.env[k]]] : [])));
  return { ...base, ...env };
}

const running = new Set<ChildProcess>();

/** Kills whatever a test left running; call it from `afterAll`/`afterEach`. */
export function killStrays(): void {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  running.clear();
}

export interface Spawned {
  child: ChildProcess;
  /** Everything written so far. */
  output: { stdout: string; stderr: string };
  exited: Promise<ProcessResult>;
}

/** Runs `node --import tsx <script> ...args` from the repository root, like `npm start` runs the build. */
export function spawnTs(script: string, args: string[], env: Record<string, string>): Spawned {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const output = { stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    output.stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    output.stderr += chunk;
  });
  const exited = new Promise<ProcessResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal, ...output });
    });
  });
  return { child, output, exited };
}

/** Runs a script to completion; kills it if it takes longer than `timeoutMs`. */
export async function runTs(
  script: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<ProcessResult> {
  const { child, exited } = spawnTs(script, args, env);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** A loopback port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** A development token from the real CLI, signed with the key kept in `dataDir`. */
export async function devToken(dataDir: string, sub: string, extra: string[] = []): Promise<string> {
  const result = await runTs('server/cli/token.ts', ['--sub', sub, ...extra], { DATA_DIR: dataDir });
  if (result.code !== 0) throw new Error(`token CLI failed (${result.code}): ${result.stderr}`);
  return result.stdout.trim();
}

/**
 * The environment of a production-mode server on `databaseUrl` that trusts the test JWKS at `jwksUrl`,
 * rate limits off (load tests would trip them); `overrides` win.
 */
export function productionEnv(
  databaseUrl: string,
  jwksUrl: string,
  overrides: Record<string, string> = {},
): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    NODE_ENV: 'production',
    AUTH_JWKS_URL: jwksUrl,
    AUTH_ISSUER: TEST_ISSUER,
    AUTH_AUDIENCE: TEST_AUDIENCE,
    RATE_LIMIT_PER_MINUTE: '0',
    DB_POOL_MAX: '10',
    LOG_LEVEL: 'warn',
    ...overrides,
  };
}

export interface RunningServer extends Spawned {
  url: string;
}

/**
 * Starts the real entry point (`server/main.ts`) and resolves once `/health` answers 200.
 * Rejects (and kills the child) if it exits first or is not up within `timeoutMs`; a fresh
 * PGlite data directory takes a while to initialise on a busy machine.
 */
export async function startServer(
  env: Record<string, string> & { PORT: string },
  timeoutMs = 90_000,
): Promise<RunningServer> {
  const spawned = spawnTs('server/main.ts', [], env);
  const url = `http://127.0.0.1:${env.PORT}`;
  let exit: ProcessResult | null = null;
  void spawned.exited.then((result) => {
    exit = result;
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exit) {
      const { code, stderr } = exit as ProcessResult;
      throw new Error(`server exited with ${code} before answering: ${stderr}`);
    }
    try {
      const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) });
      if (response.status === 200) return { ...spawned, url };
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  spawned.child.kill('SIGKILL');
  throw new Error(`server did not answer /health within ${timeoutMs} ms: ${spawned.output.stderr}`);
}

/** Two instances of one deployment (`env` without a PORT), each on a port of its own. */
export async function startPair(env: Record<string, string>): Promise<[RunningServer, RunningServer]> {
  const ports = [await freePort(), await freePort()];
  const [a, b] = await Promise.all(ports.map((port) => startServer({ ...env, PORT: String(port) })));
  return [a as RunningServer, b as RunningServer];
}

export interface JsonRequest {
  method: string;
  /** A bearer token for the Authorization header. */
  token?: string;
  /** Sent as JSON with its content type; no body when undefined. */
  body?: unknown;
  headers?: Record<string, string>;
  timeoutMs: number;
}

/**
 * One request to a running server over real HTTP: the status, headers and raw body, parsed when
 * it is JSON. Network errors and the timeout are thrown.
 */
export async function requestJson(url: string, request: JsonRequest): Promise<HttpResult> {
  const response = await fetch(url, {
    method: request.method,
    headers: {
      ...(request.token ? { authorization: `Bearer ${request.token}` } : {}),
      ...(request.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...request.headers,
    },
    ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
    signal: AbortSignal.timeout(request.timeoutMs),
  });
  const raw = await response.text();
  let body: unknown;
  try {
    body = raw ? JSON.parse(raw) : undefined;
  } catch {
    body = raw;
  }
  return { status: response.status, headers: Object.fromEntries(response.headers), body, raw };
}
