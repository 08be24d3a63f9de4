/**
 * `npm run soak`: TaskFlow (compiled, one process, NODE_ENV=production, rate limits off) on a fresh
 * database of the machine's PostgreSQL, driven with mixed load (reads, lists, creates, claim + progress +
 * complete, history) at bounded concurrency for a fixed time. The server's VmRSS is sampled every second.
 * Prints the request count, the count per status, the 5xx count, p50/p99 latency and the mean RSS of the
 * first quarter against the last quarter; exits non-zero on any 5xx, any request without an answer, or
 * RSS growth of 10 % or more. `--warmup N` runs the same load for N seconds first, with RSS not compared
 * (a cold V8 heap grows for about a minute before it settles; the requests of the warm-up still count). The server, the JWKS endpoint and the database are removed at the end,
 * also on failure or Ctrl-C.
 *
 *   npm run soak -- [--seconds 60] [--warmup 60] [--concurrency 16] [--pool 10]
 *                   [--database-url postgres://postgres@127.0.0.1:5432/postgres]   (or SOAK_DATABASE_URL)
 *                   [--keep-log]   (keep the server's output; with SOAK_NODE_ARGS=--trace-gc: its GC trace)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { JwksServer } from '../helpers/jwks-server.js';
import { childEnv, freePort, productionEnv, ROOT, requestJson } from '../helpers/spawn-server.js';

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '60' },
    concurrency: { type: 'string', default: '16' },
    pool: { type: 'string', default: '10' },
    'keep-log': { type: 'boolean', default: false },
    'database-url': {
      type: 'string',
      default: process.env.SOAK_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    },
  },
});

const SECONDS = Number(flags.seconds);
const WARMUP = Number(flags.warmup);
const CONCURRENCY = Number(flags.concurrency);
const POOL = Number(flags.pool);
const ADMIN_URL = flags['database-url'];
for (const [name, n] of Object.entries({ seconds: SECONDS, concurrency: CONCURRENCY, pool: POOL })) {
  if (!Number.isFinite(n) || n < 1) {
    console.error(`soak: --${name} must be a positive number`);
    process.exit(2);
  }
}
if (!Number.isFinite(WARMUP) || WARMUP < 0) {
  console.error('soak: --warmup must be 0 or more');
  process.exit(2);
}
/** The issue's limit: RSS of the last quarter at most this much above the first quarter. */
const MAX_RSS_GROWTH_PERCENT = 10;
/** A request still unanswered after this is counted as failed (a hang). */
const REQUEST_TIMEOUT_MS = 30_000;
const AGENTS = 8;
const SLUG = 'soak';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// --- resources, all released by `cleanup` ------------------------------------------------------

const dbName = `taskflow_soak_${randomBytes(6).toString('hex')}`;
const logDir = mkdtempSync(join(tmpdir(), 'taskflow-soak-'));
const serverLog = join(logDir, 'server.log');
let admin: postgres.Sql | null = null;
let databaseCreated = false;
let jwks: JwksServer | null = null;
let server: ChildProcess | null = null;
let cleaning: Promise<void> | null = null;

async function stopServer(): Promise<void> {
  const child = server;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await stopServer().catch(() => {});
    await jwks?.stop().catch(() => {});
    if (admin) {
      if (databaseCreated) {
        await admin.unsafe(`drop database if exists "${dbName}" with (force)`).catch((error) => {
          console.error(`soak: could not drop database ${dbName}: ${(error as Error).message}`);
        });
      }
      await admin.end({ timeout: 5 }).catch(() => {});
    }
    if (flags['keep-log']) console.log(`server output kept in ${serverLog}`);
    else rmSync(logDir, { recursive: true, force: true });
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`soak: ${signal}, cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function rssMb(pid: number): number | null {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match?.[1] ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

// --- HTTP ----------------------------------------------------------------------------------------

type Op = 'read' | 'list' | 'create' | 'claim' | 'progress' | 'complete' | 'history' | 'setup';

interface Sample {
  op: Op;
  status: number; // 0: no answer (network error or our timeout)
  ms: number;
}

const samples: Sample[] = [];
const failures: string[] = [];
const tokens = new Map<string, string>();
let baseUrl = '';
let recording = false;

async function call(
  op: Op,
  method: string,
  path: string,
  actor: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const started = performance.now();
  let status = 0;
  let parsed: any;
  try {
    const result = await requestJson(`${baseUrl}${path}`, {
      method,
      token: tokens.get(actor),
      body,
      timeoutMs: REQUEST_TIMEOUT_MS,
    });
    status = result.status;
    parsed = result.body;
    if (status >= 500 && failures.length < 20)
      failures.push(`${op} ${method} ${path} → ${status} ${result.raw}`);
  } catch (error) {
    if (failures.length < 20)
      failures.push(`${op} ${method} ${path} → ${(error as Error).name}: ${(error as Error).message}`);
  }
  if (recording) samples.push({ op, status, ms: performance.now() - started });
  return { status, body: parsed };
}

function expectStatus(what: string, result: { status: number; body: unknown }, status: number): void {
  if (result.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${result.status} ${JSON.stringify(result.body)}`);
  }
}

// --- the run -------------------------------------------------------------------------------------

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] as number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function main(): Promise<number> {
  const entry = join(ROOT, 'dist/server/main.js');
  if (!existsSync(entry))
    throw new Error('dist/server/main.js is missing: run `npm run build` (npm run soak does)');

  admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${dbName}"`);
  databaseCreated = true;
  const databaseUrl = new URL(ADMIN_URL);
  databaseUrl.pathname = `/${dbName}`;

  jwks = new JwksServer();
  await jwks.addKey('EdDSA');
  await jwks.start();
  const owner = 'soak-owner';
  const agents = Array.from({ length: AGENTS }, (_, i) => `soak-w${i + 1}`);
  for (const actor of [owner, ...agents]) {
    tokens.set(actor, await jwks.sign({ sub: actor, role: 'user', name: actor }, { expiresIn: '2h' }));
  }

  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  const fd = openSync(serverLog, 'a');
  const nodeArgs = (process.env.SOAK_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  server = spawn(process.execPath, [...nodeArgs, entry], {
    cwd: ROOT,
    env: childEnv({
      ...productionEnv(databaseUrl.href, jwks.url, { DB_POOL_MAX: String(POOL) }),
      PORT: String(port),
    }),
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const child = server;
  const pid = child.pid as number;

  const startDeadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${tail(serverLog)}`);
    if (Date.now() > startDeadline) throw new Error(`server not up within 60 s:\n${tail(serverLog)}`);
    try {
      const response = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(1_000) });
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }

  // Set-up: a project with the agents as members, and some tasks to read.
  expectStatus(
    'create project',
    await call('setup', 'POST', '/api/projects', owner, { slug: SLUG, name: 'Soak' }),
    201,
  );
  for (const agent of agents) {
    expectStatus('register', await call('setup', 'GET', '/api/workers/me', agent), 200);
    expectStatus(
      'add member',
      await call('setup', 'PUT', `/api/projects/${SLUG}/members/${agent}`, owner, {}),
      200,
    );
  }
  const ids: number[] = [];
  const pending: number[] = [];
  let serial = 0;
  const create = async (actor: string): Promise<void> => {
    serial += 1;
    const result = await call('create', 'POST', '/api/tasks', actor, {
      title: `soak task ${serial}`,
      description: `created by ${actor} during the soak`,
      projectSlug: SLUG,
      priority: (['low', 'medium', 'high', 'critical'] as const)[serial % 4],
      labels: [`l${serial % 7}`],
    });
    if (result.status === 201) {
      ids.push(result.body.id);
      pending.push(result.body.id);
    }
  };
  for (let i = 0; i < 50; i++) await create(owner);

  // The load.
  const rss: { t: number; mb: number }[] = [];
  let stop = false;
  recording = true;
  const startedAt = performance.now();
  const sampler = setInterval(() => {
    const mb = rssMb(pid);
    if (mb !== null) rss.push({ t: (performance.now() - startedAt) / 1000, mb });
  }, 1_000);
  const first = rssMb(pid);
  if (first !== null) rss.push({ t: 0, mb: first });

  const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;
  const sorts = ['createdAt', 'updatedAt', 'priority', 'dueDate'];
  const worker = async (n: number) => {
    const actor = agents[n % agents.length] as string;
    while (!stop && child.exitCode === null) {
      const roll = Math.random();
      if (roll < 0.3) {
        await call('read', 'GET', `/api/tasks/${pick(ids)}`, actor);
      } else if (roll < 0.5) {
        const query = new URLSearchParams({ project: SLUG, limit: '20', sort: pick(sorts) });
        if (Math.random() < 0.3) query.set('status', 'pending');
        await call('list', 'GET', `/api/tasks?${query}`, actor);
      } else if (roll < 0.65) {
        await create(actor);
      } else if (roll < 0.85) {
        // A whole piece of work: claim, report progress, complete; one worker per task.
        const id = pending.shift();
        if (id === undefined) {
          await create(actor);
          continue;
        }
        const claim = await call('claim', 'POST', `/api/tasks/${id}/start`, actor, {});
        if (claim.status !== 200) continue;
        await call('progress', 'POST', `/api/tasks/${id}/progress`, actor, { percent: 50, note: 'halfway' });
        await call('complete', 'POST', `/api/tasks/${id}/complete`, actor, {});
      } else {
        await call('history', 'GET', `/api/tasks/${pick(ids)}/history`, actor);
      }
    }
  };
  const workers = Array.from({ length: CONCURRENCY }, (_, n) => worker(n));
  await sleep((WARMUP + SECONDS) * 1000);
  stop = true;
  await Promise.all(workers);
  recording = false;
  clearInterval(sampler);
  const elapsed = (performance.now() - startedAt) / 1000;
  const serverAlive = child.exitCode === null && child.signalCode === null;

  // The figures.
  const byStatus = new Map<number, number>();
  for (const s of samples) byStatus.set(s.status, (byStatus.get(s.status) ?? 0) + 1);
  const fiveXx = samples.filter((s) => s.status >= 500).length;
  const unanswered = byStatus.get(0) ?? 0;
  const latencies = samples.map((s) => s.ms).sort((a, b) => a - b);
  const ops = [...new Set(samples.map((s) => s.op))];
  const quarter = SECONDS / 4;
  const measured = rss.filter((r) => r.t >= WARMUP);
  const firstQuarter = rss.filter((r) => r.t >= WARMUP && r.t < WARMUP + quarter).map((r) => r.mb);
  const lastQuarter = rss.filter((r) => r.t >= WARMUP + SECONDS - quarter).map((r) => r.mb);
  const firstMean = mean(firstQuarter);
  const lastMean = mean(lastQuarter);
  const growth = ((lastMean - firstMean) / firstMean) * 100;
  const [load1, load5] = loadavg();

  const f = (n: number, digits = 1) => n.toFixed(digits);
  console.log(
    `\nTaskFlow soak: ${f(elapsed)} s of load (${WARMUP > 0 ? `${WARMUP} s warm-up + ` : ''}${SECONDS} s measured), concurrency ${CONCURRENCY}, pool ${POOL}, load average ${f(load1 ?? 0, 2)} / ${f(load5 ?? 0, 2)} (1 / 5 min)`,
  );
  console.log(`requests        ${samples.length} (${f(samples.length / elapsed)}/s)`);
  console.log(
    `per status      ${[...byStatus.entries()]
      .sort(([a], [b]) => a - b)
      .map(([status, n]) => `${status === 0 ? 'no answer' : status}: ${n}`)
      .join(', ')}`,
  );
  console.log(`5xx             ${fiveXx}`);
  console.log(
    `latency         p50 ${f(percentile(latencies, 50))} ms, p99 ${f(percentile(latencies, 99))} ms, max ${f(latencies.at(-1) ?? Number.NaN)} ms`,
  );
  for (const op of ops) {
    const ms = samples
      .filter((s) => s.op === op)
      .map((s) => s.ms)
      .sort((a, b) => a - b);
    console.log(
      `  ${op.padEnd(13)} ${String(ms.length).padStart(6)}  p50 ${f(percentile(ms, 50)).padStart(7)} ms  p99 ${f(percentile(ms, 99)).padStart(7)} ms`,
    );
  }
  console.log(
    `server RSS      first quarter mean ${f(firstMean)} MB (${firstQuarter.length} samples), last quarter mean ${f(lastMean)} MB (${lastQuarter.length} samples), growth ${f(growth, 2)} % (limit < ${MAX_RSS_GROWTH_PERCENT} %); measured min ${f(Math.min(...measured.map((r) => r.mb)))} MB, max ${f(Math.max(...measured.map((r) => r.mb)))} MB`,
  );
  const step = Math.max(1, Math.round((WARMUP + SECONDS) / 12));
  const trace = rss
    .filter((r) => Math.round(r.t) % step === 0)
    .map((r) => `${Math.round(r.t)}s ${f(r.mb, 0)}`);
  console.log(`RSS trace (MB)  ${trace.join(', ')}`);
  console.log(
    `server          ${serverAlive ? 'still running' : `EXITED (${child.exitCode ?? child.signalCode})`}`,
  );

  const problems: string[] = [];
  if (fiveXx > 0) problems.push(`${fiveXx} responses were 5xx`);
  if (unanswered > 0) problems.push(`${unanswered} requests got no answer`);
  if (!serverAlive) problems.push('the server exited during the run');
  if (!(growth < MAX_RSS_GROWTH_PERCENT)) problems.push(`RSS grew ${f(growth, 2)} %`);
  if (firstQuarter.length === 0 || lastQuarter.length === 0) problems.push('too few RSS samples');
  if (problems.length > 0) {
    console.log(`\nFAIL: ${problems.join('; ')}`);
    for (const failure of failures) console.log(`  ${failure}`);
    if (!serverAlive) console.log(tail(serverLog));
    return 1;
  }
  console.log('\nPASS: no 5xx, every request answered, RSS growth under the limit');
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  console.error(`soak: ${(error as Error).message}`);
} finally {
  await cleanup();
}
process.exit(code);
