/**
 * `npm run bench`: TaskFlow (compiled, one process, NODE_ENV=production) against the limit of its stack
 * (test/bench/baseline.ts: bare Fastify + postgres.js doing the same work), on the machine's PostgreSQL
 * in a fresh database, seeded in bulk. Prints per scenario requests/s, p50/p99 latency, errors, peak
 * server RSS and the ratio TaskFlow / baseline; writes results.json, results.md and ratios.svg beside
 * this file. See the README's Performance section.
 *
 *   npm run bench -- [--tasks 100000[,1000000]] [--duration 10] [--warmup 3] [--connections 16]
 *                    [--scenarios 1,2a,2b,3,4,5a,5b,6,7,fanout] [--log-level info] [--pool 10] [--strict]
 *                    [--database-url postgres://postgres@127.0.0.1:5432/postgres] [--no-write]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism, loadavg, setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import postgres from 'postgres';
import { encodeCursor } from '../../server/services/cursor.js';
import {
  CLAIM_NEXT_ID,
  ClaimQueue,
  type DrainMeasure,
  type DrainStats,
  describeDrains,
} from './claim-next.js';
import { type FanoutResult, fanoutLine, fanoutMarkdown, fanoutVerdicts, runFanout } from './fanout.js';
import { percentile, pick } from './sampling.js';
import { CLAIM_PROJECT, progressBar, type SeedInfo, seed } from './seed.js';
import { subscribeWebhooks } from './webhooks.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HERE = fileURLToPath(new URL('.', import.meta.url));

// --- options ------------------------------------------------------------------------------------

const { values: flags } = parseArgs({
  options: {
    tasks: { type: 'string', default: '100000' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '16' },
    scenarios: { type: 'string', default: '1,2a,2b,3,4,5a,5b,6,7,fanout' },
    'log-level': { type: 'string', default: 'info' },
    pool: { type: 'string', default: '10' },
    'database-url': {
      type: 'string',
      default: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    },
    strict: { type: 'boolean', default: false },
    // Experiments: another build of the entry point, extra env for TaskFlow (KEY=VALUE, repeatable).
    'taskflow-entry': { type: 'string', default: 'dist/server/main.js' },
    'taskflow-node-args': { type: 'string', default: '' },
    env: { type: 'string', multiple: true, default: [] },
    'no-write': { type: 'boolean', default: false },
    'keep-logs': { type: 'boolean', default: false },
    // N webhook endpoints subscribed to every change while the scenarios run (see webhooks.ts).
    webhooks: { type: 'string', default: '0' },
    // With --webhooks: the measured TaskFlow instances run with WEBHOOK_SENDERS=false, and a TaskFlow
    // instance of its own, at nice 10 and without traffic, sends the deliveries.
    'senders-apart': { type: 'boolean', default: false },
  },
});

const SIZES = flags.tasks.split(',').map((s) => Number(s.replace(/_/g, '')));
const DURATION = Number(flags.duration);
const WARMUP = Number(flags.warmup);
const CONNECTIONS = Number(flags.connections);
const SELECTED = flags.scenarios.split(',').map((s) => s.trim());
const ADMIN_URL = flags['database-url'];
const WEBHOOKS = Number(flags.webhooks);
const SENDERS_APART = flags['senders-apart'] && WEBHOOKS > 0;
for (const [name, n] of Object.entries({ tasks: Math.min(...SIZES), DURATION, WARMUP, CONNECTIONS })) {
  if (!Number.isFinite(n) || n < 0) throw new Error(`bench: bad --${name.toLowerCase()}`);
}

const taskflowExtraEnv = {
  ...(SENDERS_APART ? { WEBHOOK_SENDERS: 'false' } : {}),
  ...Object.fromEntries(
    flags.env.map((pair) => {
      const at = pair.indexOf('=');
      if (at < 1) throw new Error(`bench: --env wants KEY=VALUE, got ${pair}`);
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
  ),
};

/** The scheduling priority of the sender instance of --senders-apart. */
const SENDERS_NICE = 10;

/** The issue's targets. */
const TARGET = { ratio: 0.7, p99: 1.5, rssMb: 200, coldStartMs: 2000, scaleP50: 1.5, searchP50: 2 };

// --- processes ----------------------------------------------------------------------------------

const children = new Set<ChildProcess>();
const databases = new Set<string>();
let admin: postgres.Sql | null = null;
let jwksServer: Server | null = null;
const logDir = mkdtempSync(join(tmpdir(), 'taskflow-bench-'));

function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'TMPDIR', 'LANG'];
  return {
    ...Object.fromEntries(keep.flatMap((k) => (process.env[k] ? [[k, process.env[k]]] : []))),
    ...extra,
  };
}

interface Child {
  name: string;
  child: ChildProcess;
  url: string;
  log: string;
}

function launch(name: string, command: string, args: string[], env: NodeJS.ProcessEnv, port: number): Child {
  const log = join(logDir, `${name}.log`);
  const fd = openSync(log, 'a');
  // Own process group: `npm start` has a node child, and the whole group is stopped together.
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return { name, child, url: `http://127.0.0.1:${port}`, log };
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

async function waitForHealth(server: Child, timeoutMs = 60_000): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      throw new Error(
        `${server.name} exited (${server.child.exitCode}) before answering:\n${tail(server.log)}`,
      );
    }
    try {
      const response = await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(500) });
      if (response.status === 200) return performance.now() - started;
    } catch {
      // not listening yet
    }
    await sleep(10);
  }
  throw new Error(`${server.name} did not answer /health in ${timeoutMs} ms:\n${tail(server.log)}`);
}

async function stop(server: Child): Promise<void> {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(-(child.pid as number), 'SIGTERM');
  } catch {
    child.kill('SIGTERM');
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-(child.pid as number), 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }, 10_000);
  await exited;
  clearTimeout(timer);
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A process and its descendants (TaskFlow's stream process is its child). */
function treeOf(pid: number): number[] {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean);
    return [pid, ...children.flatMap((child) => treeOf(Number(child)))];
  } catch {
    return [pid];
  }
}

/** Sums `read` over a process and its children; null when the process itself is gone. */
function sumOverTree(pid: number | undefined, read: (pid: number) => number): number | null {
  if (!pid) return null;
  let sum = 0;
  for (const one of treeOf(pid)) {
    try {
      sum += read(one);
    } catch {
      // A child that just exited counts for nothing; the process itself gone, for no number.
      if (one === pid) return null;
    }
  }
  return sum;
}

/** User + system CPU time of a process and its children, in ms (/proc/<pid>/stat, clock ticks of 10 ms). */
function cpuMsOf(pid: number | undefined): number {
  const ms = sumOverTree(pid, (one) => {
    const stat = readFileSync(`/proc/${one}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  });
  return ms ?? Number.NaN;
}

/** RSS of a process and its children (MB). */
function rssOf(pid: number | undefined): number | null {
  return sumOverTree(pid, (one) => {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${one}/status`, 'utf8'));
    return match?.[1] ? Number(match[1]) / 1024 : 0;
  });
}

/** Samples a process's RSS (MB) every 100 ms; `peak` since the last `reset`, `overall` since start. */
class RssSampler {
  peak = 0;
  overall = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly pid: number | undefined) {
    this.timer = setInterval(() => this.sample(), 100);
    this.sample();
  }
  sample(): void {
    const rss = rssOf(this.pid);
    if (rss === null) return;
    this.peak = Math.max(this.peak, rss);
    this.overall = Math.max(this.overall, rss);
  }
  reset(): void {
    this.peak = 0;
    this.sample();
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

// --- auth: a JWKS on a loopback port, EdDSA keys made with jose ---------------------------------

interface Auth {
  jwksUrl: string;
  issuer: string;
  audience: string;
  sign(sub: string): Promise<string>;
}

async function startJwks(): Promise<Auth> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { extractable: true });
  const kid = `bench-${randomBytes(4).toString('hex')}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' };
  const body = JSON.stringify({ keys: [jwk] });
  jwksServer = createServer((req, res) => {
    if (req.url === '/api/auth/jwks') res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => jwksServer?.listen(0, '127.0.0.1', resolve));
  const { port } = jwksServer.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    jwksUrl: `${origin}/api/auth/jwks`,
    issuer: origin,
    audience: origin,
    // Better Auth's shape: sub, email, name; EdDSA, its default.
    sign: (sub) =>
      new SignJWT({ email: `${sub}@bench.test`, name: sub })
        .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' })
        .setSubject(sub)
        .setIssuer(origin)
        .setAudience(origin)
        .setIssuedAt()
        .setExpirationTime('12h')
        .sign(privateKey),
  };
}

// --- load ---------------------------------------------------------------------------------------

interface Measure {
  rps: number;
  requests: number;
  p50: number;
  p99: number;
  errors: number;
  statuses: Record<string, number>;
  rssMb: number;
  /** The server's own CPU time per request (ms): what load on a shared machine distorts least. */
  cpuMsPerRequest: number;
  /** Scenario 7's drain: its rps is tasks/s. */
  drain?: DrainStats;
}

/** One autocannon run; latencies are kept at full resolution (autocannon's histogram is in whole ms). */
function load(url: string, requests: autocannon.Request[], seconds: number) {
  return new Promise<Omit<Measure, 'rssMb' | 'cpuMsPerRequest'>>((resolve, reject) => {
    const latencies: number[] = [];
    const statuses: Record<string, number> = {};
    let failures = 0;
    const instance = autocannon(
      { url, connections: CONNECTIONS, duration: seconds, requests, timeout: 10 },
      (error: Error | null, result: autocannon.Result) => {
        if (error) return reject(error);
        const sorted = Float64Array.from(latencies).sort();
        const ok = latencies.length;
        const non2xx = Object.entries(statuses)
          .filter(([code]) => !code.startsWith('2'))
          .reduce((sum, [, n]) => sum + n, 0);
        resolve({
          rps: (ok + non2xx) / (result.duration || seconds),
          requests: ok + non2xx,
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          errors: non2xx + failures + result.timeouts,
          statuses,
        });
      },
    );
    instance.on('response', (_client: unknown, status: number, _bytes: number, time: number) => {
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status >= 200 && status < 300) latencies.push(time);
    });
    instance.on('reqError', () => {
      failures += 1;
    });
  });
}

// --- scenarios ----------------------------------------------------------------------------------

type Kind = 'baseline' | 'taskflow';

interface Fixtures {
  info: SeedInfo;
  tokens: Map<string, string>;
  /** Sampled task ids of each project. */
  ids: Map<string, number[]>;
  /** A cursor 80 % deep into each (project, status) list, createdAt desc. */
  deep: Map<string, string>;
  /** Next unclaimed pool task and the end of each server's half of the pool. */
  claim: Record<Kind, { next: number; end: number }>;
  /** Scenario 7's agents, when it runs. */
  queue: ClaimQueue | null;
}

/** Requests autocannon sends for a while, or a run driven by its own loop (scenario 7). */
type Scenario = { id: string; name: string } & (
  | { requests(kind: Kind): autocannon.Request[] }
  | { drive(url: string, phase: 'warmup' | 'measure'): Promise<DrainMeasure> }
);

const STATUSES = ['pending', 'in_progress', 'review', 'completed', 'blocked'] as const;

function scenarios(f: Fixtures): Scenario[] {
  const workers = f.info.workers;
  const auth = (worker: string) => ({ authorization: `Bearer ${f.tokens.get(worker)}` });
  const projectOf = (worker: string) => pick(f.info.membership.get(worker) ?? []);
  const visibleId = (worker: string) => pick(f.ids.get(projectOf(worker)) ?? []);
  const json = { 'content-type': 'application/json' };
  const get = (path: () => [string, string]): autocannon.Request[] => [
    {
      method: 'GET',
      setupRequest: (req) => {
        const [worker, p] = path();
        return { ...req, path: p, headers: auth(worker) };
      },
    },
  ];
  const list = (deep: boolean) =>
    get(() => {
      const worker = pick(workers);
      const project = projectOf(worker);
      const status = pick(STATUSES);
      const cursor = deep ? `&cursor=${f.deep.get(`${project}/${status}`)}` : '';
      return [worker, `/api/tasks?status=${status}&project=${project}&limit=50${cursor}`];
    });
  const all: Scenario[] = [
    {
      id: '1',
      name: 'GET /api/tasks/{id}',
      requests: () =>
        get(() => {
          const worker = pick(workers);
          return [worker, `/api/tasks/${visibleId(worker)}`];
        }),
    },
    { id: '2a', name: 'GET /api/tasks?status&project&limit=50', requests: () => list(false) },
    { id: '2b', name: 'GET /api/tasks … deep keyset page', requests: () => list(true) },
    {
      id: '3',
      name: 'POST /api/tasks (+ audit row)',
      requests: () => [
        {
          method: 'POST',
          setupRequest: (req) => {
            const worker = pick(workers);
            const body = {
              title: 'Bench task',
              projectSlug: projectOf(worker),
              priority: 'high',
              labels: ['bench'],
            };
            return {
              ...req,
              path: '/api/tasks',
              headers: { ...auth(worker), ...json },
              body: JSON.stringify(body),
            };
          },
        },
      ],
    },
    {
      id: '4',
      name: 'POST start + complete (fresh tasks)',
      requests: (kind) => {
        const pool = f.claim[kind];
        return [
          {
            method: 'POST',
            setupRequest: (req, ctx) => {
              const context = ctx as { worker?: string; id?: number };
              const worker = pick(workers);
              context.worker = worker;
              // An exhausted pool shows as errors (404) rather than silently reusing tasks.
              context.id = pool.next <= pool.end ? pool.next++ : 2_147_483_647;
              return {
                ...req,
                path: `/api/tasks/${context.id}/start`,
                headers: { ...auth(worker), ...json },
                body: '{}',
              };
            },
          },
          {
            method: 'POST',
            setupRequest: (req, ctx) => {
              const context = ctx as { worker?: string; id?: number };
              return {
                ...req,
                path: `/api/tasks/${context.id}/complete`,
                headers: { ...auth(context.worker as string), ...json },
                body: '{}',
              };
            },
          },
        ];
      },
    },
    {
      id: '5a',
      name: 'tRPC tasks.get',
      requests: () =>
        get(() => {
          const worker = pick(workers);
          return [
            worker,
            `/trpc/tasks.get?input=${encodeURIComponent(JSON.stringify({ id: visibleId(worker) }))}`,
          ];
        }),
    },
    {
      id: '5b',
      name: 'tRPC batch of 10 tasks.get',
      requests: () =>
        get(() => {
          const worker = pick(workers);
          const input = Object.fromEntries(
            Array.from({ length: 10 }, (_, i) => [i, { id: visibleId(worker) }]),
          );
          const paths = Array.from({ length: 10 }, () => 'tasks.get').join(',');
          return [worker, `/trpc/${paths}?batch=1&input=${encodeURIComponent(JSON.stringify(input))}`];
        }),
    },
    {
      id: '6',
      name: 'GET /api/tasks?q (search)',
      // Four hex digits of the md5 in seeded descriptions: about one task in 2 000 matches, across
      // every project, so the caller's visibility decides what is read.
      requests: () =>
        get(() => {
          const worker = pick(workers);
          const q = Math.floor(Math.random() * 0x10000)
            .toString(16)
            .padStart(4, '0');
          return [worker, `/api/tasks?q=${q}&limit=50`];
        }),
    },
  ];
  const queue = f.queue;
  if (queue)
    all.push({ id: CLAIM_NEXT_ID, name: queue.name, drive: (url, phase) => queue.drain(url, phase) });
  return all.filter((s) => SELECTED.includes(s.id));
}

/** Pool size per server for the claim scenario: generous for two requests per task. */
const claimPoolPerServer = () => Math.ceil(1500 * (WARMUP + DURATION)) + 2000;

async function fixtures(sql: postgres.Sql, info: SeedInfo, auth: Auth, tasks: number): Promise<Fixtures> {
  const tokens = new Map<string, string>();
  for (const worker of info.workers) tokens.set(worker, await auth.sign(worker));
  const percent = Math.min(100, (40_000 / Math.max(1, tasks)) * 100);
  const sampled = await sql<{ slug: string; id: number }[]>`
    select project_slug as slug, id from tasks tablesample bernoulli (${percent})
    where project_slug is not null and project_slug <> ${CLAIM_PROJECT}`;
  const ids = new Map<string, number[]>();
  for (const { slug, id } of sampled) ids.set(slug, [...(ids.get(slug) ?? []), id]);
  const deepRows = await sql<{ slug: string; status: string; createdAt: Date; id: number }[]>`
    select slug, status, created_at as "createdAt", id from (
      select project_slug as slug, status, created_at, id,
             row_number() over (partition by project_slug, status order by created_at desc, id desc) as n,
             count(*) over (partition by project_slug, status) as total
      from tasks where project_slug is not null and project_slug <> ${CLAIM_PROJECT}) ranked
    where n = greatest(1, floor(total * 0.8))`;
  const deep = new Map(
    deepRows.map((r) => [
      `${r.slug}/${r.status}`,
      encodeCursor('tasks', { s: 'createdAt', o: 'desc', v: r.createdAt.toISOString(), id: r.id }),
    ]),
  );
  const { first, last } = info.claimIds ?? { first: 0, last: -1 };
  const half = Math.floor((last - first + 1) / 2);
  return {
    info,
    tokens,
    ids,
    deep,
    claim: {
      baseline: { next: first, end: first + half - 1 },
      taskflow: { next: first + half, end: last },
    },
    queue: SELECTED.includes(CLAIM_NEXT_ID) ? await ClaimQueue.prepare(sql, auth.sign) : null,
  };
}

/** The same request to both servers must answer the same JSON (writes: the same but ids and times). */
async function parity(servers: Record<Kind, Child>, f: Fixtures): Promise<string[]> {
  const problems: string[] = [];
  const worker = f.info.workers[0] as string;
  const project = f.info.membership.get(worker)?.[0] as string;
  const headers = { authorization: `Bearer ${f.tokens.get(worker)}` };
  const id = f.ids.get(project)?.[0] as number;
  const reads = [
    `/api/tasks/${id}`,
    `/api/tasks?status=pending&project=${project}&limit=50`,
    `/api/tasks?status=pending&project=${project}&limit=50&cursor=${f.deep.get(`${project}/pending`)}`,
    `/api/tasks?q=a3f&limit=50`,
    `/trpc/tasks.get?input=${encodeURIComponent(JSON.stringify({ id }))}`,
    `/trpc/tasks.get,tasks.get?batch=1&input=${encodeURIComponent(JSON.stringify({ 0: { id }, 1: { id } }))}`,
  ];
  for (const path of reads) {
    const [a, b] = await Promise.all(
      [servers.baseline, servers.taskflow].map(async (s) => {
        const r = await fetch(`${s.url}${path}`, { headers });
        return `${r.status} ${await r.text()}`;
      }),
    );
    if (a !== b) problems.push(`GET ${path}: baseline ${a?.slice(0, 160)} … taskflow ${b?.slice(0, 160)}`);
  }
  const mask = (text: string) =>
    text.replace(/"(id|title|createdAt|updatedAt|completedAt)":("[^"]*"|\d+)/g, '"$1":_');
  const post = async (s: Child, path: string, body: unknown) => {
    const r = await fetch(`${s.url}${path}`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return `${r.status} ${mask(await r.text())}`;
  };
  const create = { title: 'Parity task', projectSlug: project, priority: 'high', labels: ['bench', 'bench'] };
  const created = await Promise.all([
    post(servers.baseline, '/api/tasks', create),
    post(servers.taskflow, '/api/tasks', create),
  ]);
  if (created[0] !== created[1]) problems.push(`POST /api/tasks: ${created[0]} … ${created[1]}`);
  // The workflow pair needs the claim pool (seeded only when scenario 4 runs).
  for (const action of f.info.claimIds ? ['start', 'complete'] : []) {
    const results = await Promise.all(
      (['baseline', 'taskflow'] as const).map((kind) =>
        post(servers[kind], `/api/tasks/${f.claim[kind].next}/${action}`, {}),
      ),
    );
    if (results[0] !== results[1]) problems.push(`POST …/${action}: ${results[0]} … ${results[1]}`);
  }
  f.claim.baseline.next += 1;
  f.claim.taskflow.next += 1;
  return problems;
}

// --- one size -----------------------------------------------------------------------------------

interface ScenarioResult {
  id: string;
  name: string;
  baseline: Measure;
  taskflow: Measure;
  ratio: number;
  p99Ratio: number;
}

interface SizeResult {
  tasks: number;
  seedSeconds: number;
  coldStartMs: { freshDatabase: number; seeded: number };
  idleRssMb: Record<Kind, number>;
  peakRssMb: Record<Kind, number>;
  parity: string[];
  scenarios: ScenarioResult[];
  fanout?: FanoutResult;
  explain: Record<string, string>;
}

async function coldStart(env: NodeJS.ProcessEnv, port: number, label: string): Promise<number> {
  // Exactly what an operator runs: `npm start`, timed until /health answers.
  const server = launch(`npm-start-${label}`, 'npm', ['start', '--silent'], env, port);
  try {
    return await waitForHealth(server, 60_000);
  } finally {
    await stop(server);
  }
}

async function runSize(tasks: number, auth: Auth): Promise<SizeResult> {
  if (!admin) throw new Error('no admin connection');
  const name = `taskflow_bench_${randomBytes(4).toString('hex')}`;
  await admin.unsafe(`create database "${name}"`);
  databases.add(name);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const [taskflowPort, baselinePort] = [await freePort(), await freePort()];
  const serverEnv = (port: number) =>
    baseEnv({
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: url.href,
      AUTH_JWKS_URL: auth.jwksUrl,
      AUTH_ISSUER: auth.issuer,
      AUTH_AUDIENCE: auth.audience,
      LOG_LEVEL: flags['log-level'],
      DB_POOL_MAX: flags.pool,
      DATA_DIR: join(logDir, 'data'),
      // The limiter runs and its cost is measured, but a bench actor sends far more than the default
      // allows (a batch of 10 counts 10), and refusals would be measured instead of the work.
      RATE_LIMIT_PER_MINUTE: '1000000',
    });

  console.log(`\n== ${tasks.toLocaleString('en-US')} tasks (database ${name})`);
  // The first start migrates the fresh database.
  const fresh = await coldStart(serverEnv(taskflowPort), taskflowPort, 'fresh');
  console.log(`cold start (npm start → /health), fresh database: ${fresh.toFixed(0)} ms`);

  const sql = postgres(url.href, { max: 4, onnotice: () => {} });
  try {
    const info = await seed(sql, {
      tasks,
      claimPool: SELECTED.includes('4') ? 2 * claimPoolPerServer() + 4 : 0,
      progress: progressBar('seed'),
    });
    console.log(`seeded ${tasks.toLocaleString('en-US')} tasks in ${info.seconds.toFixed(1)} s`);
    const seeded = await coldStart(serverEnv(taskflowPort), taskflowPort, 'seeded');
    console.log(`cold start (npm start → /health), seeded database: ${seeded.toFixed(0)} ms`);

    const servers: Record<Kind, Child> = {
      baseline: launch(
        'baseline',
        process.execPath,
        ['--import', 'tsx', join(HERE, 'baseline.ts')],
        serverEnv(baselinePort),
        baselinePort,
      ),
      taskflow: launch(
        'taskflow',
        process.execPath,
        [...flags['taskflow-node-args'].split(' ').filter(Boolean), flags['taskflow-entry']],
        {
          ...serverEnv(taskflowPort),
          // The bench's receiver is on loopback.
          ...(WEBHOOKS > 0 ? { WEBHOOK_ALLOW_PRIVATE: 'true' } : {}),
          ...taskflowExtraEnv,
        },
        taskflowPort,
      ),
    };
    await Promise.all([waitForHealth(servers.baseline), waitForHealth(servers.taskflow)]);
    const rss = {
      baseline: new RssSampler(servers.baseline.child.pid),
      taskflow: new RssSampler(servers.taskflow.child.pid),
    };
    const idleRssMb = { baseline: rss.baseline.peak, taskflow: rss.taskflow.peak };
    const webhooks = WEBHOOKS > 0 ? await subscribeWebhooks(sql, WEBHOOKS) : null;
    if (webhooks) console.log(`webhooks: ${WEBHOOKS} endpoints subscribed to every change`);
    const senders = SENDERS_APART ? await startSenders(serverEnv) : null;
    try {
      const f = await fixtures(sql, info, auth, tasks);
      const problems = await parity(servers, f);
      if (problems.length) console.log(`PARITY PROBLEMS:\n  ${problems.join('\n  ')}`);
      else console.log('parity: both servers answer the same JSON');

      const results: ScenarioResult[] = [];
      for (const scenario of scenarios(f)) {
        const measured = {} as Record<Kind, Measure>;
        for (const kind of ['baseline', 'taskflow'] as const) {
          const server = servers[kind];
          rss[kind].reset();
          const run = (phase: 'warmup' | 'measure') =>
            'drive' in scenario
              ? scenario.drive(server.url, phase)
              : load(server.url, scenario.requests(kind), phase === 'warmup' ? WARMUP : DURATION);
          if (WARMUP > 0) await run('warmup');
          const cpuBefore = cpuMsOf(server.child.pid);
          const m = await run('measure');
          const cpu = cpuMsOf(server.child.pid) - cpuBefore;
          measured[kind] = { ...m, rssMb: rss[kind].peak, cpuMsPerRequest: cpu / Math.max(1, m.requests) };
          if (server.child.exitCode !== null) throw new Error(`${kind} died:\n${tail(server.log)}`);
        }
        const r: ScenarioResult = {
          id: scenario.id,
          name: scenario.name,
          baseline: measured.baseline,
          taskflow: measured.taskflow,
          ratio: measured.taskflow.rps / measured.baseline.rps,
          p99Ratio: measured.taskflow.p99 / measured.baseline.p99,
        };
        results.push(r);
        console.log(row(r));
        const drains = drainsOf(r);
        if (drains) console.log(`    ${describeDrains(r.id, drains)}`);
      }
      const fanout = SELECTED.includes('fanout') ? await fanoutScenario(f, serverEnv) : undefined;
      const explain = await explainLists(sql, f);
      return {
        tasks,
        seedSeconds: info.seconds,
        coldStartMs: { freshDatabase: fresh, seeded },
        idleRssMb,
        peakRssMb: { baseline: rss.baseline.overall, taskflow: rss.taskflow.overall },
        parity: problems,
        scenarios: results,
        ...(fanout ? { fanout } : {}),
        explain,
      };
    } finally {
      if (webhooks) {
        const { received, badSignatures } = webhooks.counts();
        console.log(
          `webhooks: ${received} deliveries received, ${badSignatures} bad signatures in the sample, ${await webhooks.pending()} still queued`,
        );
        await webhooks.stop();
      }
      if (senders) await stop(senders);
      rss.baseline.stop();
      rss.taskflow.stop();
      await Promise.all([stop(servers.baseline), stop(servers.taskflow)]);
    }
  } finally {
    await sql.end({ timeout: 5 });
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    databases.delete(name);
  }
}

/** A TaskFlow instance that only sends webhooks (its measured peers have WEBHOOK_SENDERS=false). */
async function startSenders(env: (port: number) => NodeJS.ProcessEnv): Promise<Child> {
  const port = await freePort();
  const senders = launch(
    'taskflow-senders',
    process.execPath,
    [flags['taskflow-entry']],
    { ...env(port), ...taskflowExtraEnv, WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_SENDERS: 'true' },
    port,
  );
  if (senders.child.pid) setPriority(senders.child.pid, SENDERS_NICE);
  await waitForHealth(senders);
  console.log(`webhooks: sent by a TaskFlow instance of their own at nice ${SENDERS_NICE}`);
  return senders;
}

/** The fan-out scenario (fanout.ts), on a TaskFlow instance of its own so its RSS is the streams'. */
async function fanoutScenario(f: Fixtures, env: (port: number) => NodeJS.ProcessEnv): Promise<FanoutResult> {
  const result = await runFanout({
    start: async (extra) => {
      const port = await freePort();
      const args = [...flags['taskflow-node-args'].split(' ').filter(Boolean), flags['taskflow-entry']];
      const server = launch(
        'taskflow-fanout',
        process.execPath,
        args,
        { ...env(port), ...taskflowExtraEnv, ...extra },
        port,
      );
      await waitForHealth(server);
      const rss = new RssSampler(server.child.pid);
      return {
        url: server.url,
        rss,
        cpuMs: () => cpuMsOf(server.child.pid),
        stop: async () => {
          rss.stop();
          await stop(server);
        },
      };
    },
    tokens: f.tokens,
    membership: f.info.membership,
    seconds: DURATION,
    warmup: WARMUP,
  });
  console.log(fanoutLine(result));
  return result;
}

/** The plans of the two list queries as run, top node and index, for the record. */
async function explainLists(sql: postgres.Sql, f: Fixtures): Promise<Record<string, string>> {
  const worker = f.info.workers[0] as string;
  const project = f.info.membership.get(worker)?.[0] as string;
  const visible = sql`(project_slug in (select project_slug from project_members where worker_id = ${worker})
    or (project_slug is null and (created_by = ${worker} or assigned_to = ${worker})))`;
  const plans: Record<string, string> = {};
  const cursor = JSON.parse(Buffer.from(f.deep.get(`${project}/pending`) ?? '', 'base64url').toString());
  for (const [label, after] of [
    ['first page', sql``],
    ['deep page', sql`and (created_at, id) < (${cursor.v}::timestamptz, ${cursor.id})`],
  ] as const) {
    const rows = await sql`explain (analyze, costs off)
      select * from tasks where ${visible} and status in ('pending') and project_slug = ${project} ${after}
      order by created_at desc, id desc limit 51`;
    plans[label] = rows.map((r) => r['QUERY PLAN']).join('\n');
  }
  return plans;
}

// --- reporting ----------------------------------------------------------------------------------

function drainsOf(r: ScenarioResult): { baseline: DrainStats; taskflow: DrainStats } | null {
  return r.baseline.drain && r.taskflow.drain
    ? { baseline: r.baseline.drain, taskflow: r.taskflow.drain }
    : null;
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '—');

function row(r: ScenarioResult): string {
  return `${r.id.padEnd(3)} ${r.name.padEnd(40)} baseline ${fmt(r.baseline.rps).padStart(6)} req/s p50 ${fmt(
    r.baseline.p50,
    2,
  )} p99 ${fmt(r.baseline.p99, 2)} | taskflow ${fmt(r.taskflow.rps).padStart(6)} req/s p50 ${fmt(
    r.taskflow.p50,
    2,
  )} p99 ${fmt(r.taskflow.p99, 2)} err ${r.taskflow.errors}/${r.baseline.errors} rss ${fmt(r.taskflow.rssMb)} MB cpu ${fmt(
    r.baseline.cpuMsPerRequest,
    2,
  )}/${fmt(r.taskflow.cpuMsPerRequest, 2)} ms | ${fmt(r.ratio * 100)} %`;
}

interface Meta {
  date: string;
  commit: string;
  node: string;
  postgres: string;
  cpus: number;
  loadBefore: number[];
  loadAfter: number[];
  uptime: string;
  durationSeconds: number;
  warmupSeconds: number;
  connections: number;
  logLevel: string;
  poolMax: number;
}

interface Results {
  meta: Meta;
  sizes: Record<string, SizeResult & { meta: Meta }>;
}

function verdicts(results: Results): string[] {
  const lines: string[] = [];
  const check = (ok: boolean, text: string) => lines.push(`${ok ? 'PASS' : 'FAIL'}  ${text}`);
  for (const size of Object.values(results.sizes)) {
    const n = size.tasks.toLocaleString('en-US');
    for (const s of size.scenarios) {
      check(
        s.ratio >= TARGET.ratio && s.p99Ratio <= TARGET.p99 && s.taskflow.errors === 0,
        `[${n}] ${s.id} ${s.name}: ${fmt(s.ratio * 100)} % of baseline req/s (≥ 70 %), p99 ${fmt(
          s.p99Ratio,
          2,
        )}× baseline (≤ 1.5×), ${s.taskflow.errors} errors`,
      );
      const drain = s.taskflow.drain;
      if (drain) {
        check(
          drain.duplicates === 0 && drain.unfinished === 0,
          `[${n}] ${s.id} every task handed out once and completed: ${drain.duplicates} duplicates, ${drain.unfinished} unfinished of ${drain.tasks}`,
        );
      }
    }
    check(
      size.peakRssMb.taskflow < TARGET.rssMb,
      `[${n}] TaskFlow peak RSS ${fmt(size.peakRssMb.taskflow)} MB (< 200)`,
    );
    const cold = Math.max(size.coldStartMs.freshDatabase, size.coldStartMs.seeded);
    check(
      cold < TARGET.coldStartMs,
      `[${n}] cold start ${fmt(size.coldStartMs.freshDatabase)} ms fresh / ${fmt(size.coldStartMs.seeded)} ms seeded (< 2000)`,
    );
    check(size.parity.length === 0, `[${n}] same JSON from both servers`);
    for (const [ok, text] of size.fanout ? fanoutVerdicts(size.fanout) : []) check(ok, `[${n}] ${text}`);
  }
  for (const size of Object.values(results.sizes)) {
    const search = size.scenarios.find((s) => s.id === '6');
    const list = size.scenarios.find((s) => s.id === '2a');
    if (!search || !list) continue;
    const ratio = search.taskflow.p50 / list.taskflow.p50;
    check(
      ratio <= TARGET.searchP50,
      `[${size.tasks.toLocaleString('en-US')}] search p50 ${fmt(search.taskflow.p50, 2)} ms vs list ${fmt(
        list.taskflow.p50,
        2,
      )} ms = ${fmt(ratio, 2)}× (≤ 2×)`,
    );
  }
  const small = results.sizes['100000'];
  const large = results.sizes['1000000'];
  if (small && large) {
    for (const id of ['1', '2a', '2b']) {
      const a = small.scenarios.find((s) => s.id === id);
      const b = large.scenarios.find((s) => s.id === id);
      if (!a || !b) continue;
      const ratio = b.taskflow.p50 / a.taskflow.p50;
      check(
        ratio <= TARGET.scaleP50,
        `scale ${id}: p50 ${fmt(b.taskflow.p50, 2)} ms at 1M vs ${fmt(a.taskflow.p50, 2)} ms at 100k = ${fmt(ratio, 2)}× (≤ 1.5×)`,
      );
    }
  }
  return lines;
}

function markdown(results: Results): string {
  const out: string[] = [];
  for (const size of Object.values(results.sizes).sort((a, b) => a.tasks - b.tasks)) {
    const m = size.meta;
    out.push(
      `### ${size.tasks.toLocaleString('en-US')} tasks`,
      '',
      `${m.date} · commit ${m.commit} · Node ${m.node} · ${m.postgres} · ${m.cpus} cores · load average ${m.loadBefore
        .map((l) => l.toFixed(2))
        .join(
          ' ',
        )} before, ${m.loadAfter.map((l) => l.toFixed(2)).join(' ')} after · ${m.connections} connections, ${m.warmupSeconds} s warm-up + ${m.durationSeconds} s per scenario and server · LOG_LEVEL=${m.logLevel}, DB_POOL_MAX=${m.poolMax}`,
      '',
      '| scenario | baseline req/s | TaskFlow req/s | ratio | baseline p50 / p99 (ms) | TaskFlow p50 / p99 (ms) | p99 ratio | errors (TF / base) | TaskFlow RSS (MB) | CPU ms/request (base / TF) |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const s of size.scenarios) {
      out.push(
        `| ${s.id} ${s.name.replace(/\|/g, '\\|')} | ${fmt(s.baseline.rps)} | ${fmt(s.taskflow.rps)} | ${fmt(
          s.ratio * 100,
        )} % | ${fmt(s.baseline.p50, 2)} / ${fmt(s.baseline.p99, 2)} | ${fmt(s.taskflow.p50, 2)} / ${fmt(
          s.taskflow.p99,
          2,
        )} | ${fmt(s.p99Ratio, 2)}× | ${s.taskflow.errors} / ${s.baseline.errors} | ${fmt(s.taskflow.rssMb)} | ${fmt(
          s.baseline.cpuMsPerRequest,
          2,
        )} / ${fmt(s.taskflow.cpuMsPerRequest, 2)} |`,
      );
    }
    for (const s of size.scenarios) {
      const drains = drainsOf(s);
      if (drains) out.push('', describeDrains(s.id, drains));
    }
    out.push(
      '',
      ...(size.fanout ? fanoutMarkdown(size.fanout) : []),
      `Cold start (\`npm start\` → \`/health\` answers): ${fmt(size.coldStartMs.freshDatabase)} ms on a fresh database (migrations included), ${fmt(size.coldStartMs.seeded)} ms on the seeded one. Peak RSS over the run: TaskFlow ${fmt(size.peakRssMb.taskflow)} MB (idle ${fmt(size.idleRssMb.taskflow)} MB), baseline ${fmt(size.peakRssMb.baseline)} MB. Seeding: ${fmt(size.seedSeconds, 1)} s.`,
      '',
    );
  }
  out.push('### Verdict', '', ...verdicts(results).map((l) => `- ${l}`), '');
  return out.join('\n');
}

function svg(results: Results): string {
  const sizes = Object.values(results.sizes).sort((a, b) => a.tasks - b.tasks);
  const ids = [...new Set(sizes.flatMap((s) => s.scenarios.map((x) => x.id)))];
  const colors = ['#4e79a7', '#f28e2b', '#59a14f'];
  const W = 720;
  const H = 320;
  const left = 50;
  const bottom = 260;
  const top = 30;
  const max = Math.max(1.2, ...sizes.flatMap((s) => s.scenarios.map((x) => x.ratio)));
  const y = (v: number) => bottom - (v / max) * (bottom - top);
  const group = (W - left - 20) / Math.max(1, ids.length);
  const bar = (group - 16) / Math.max(1, sizes.length);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="18" font-size="14">TaskFlow requests/s as a share of the baseline's (bare Fastify + postgres.js)</text>`,
  ];
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(
      `<line x1="${left}" x2="${W - 20}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v * 100}%</text>`,
    );
  }
  parts.push(
    `<line x1="${left}" x2="${W - 20}" y1="${y(TARGET.ratio)}" y2="${y(TARGET.ratio)}" stroke="#e15759" stroke-dasharray="6 4"/>`,
    `<text x="${W - 22}" y="${y(TARGET.ratio) - 4}" text-anchor="end" fill="#e15759">target 70%</text>`,
  );
  ids.forEach((id, i) => {
    const x0 = left + i * group + 8;
    sizes.forEach((size, j) => {
      const s = size.scenarios.find((x) => x.id === id);
      if (!s) return;
      const x = x0 + j * bar;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y(s.ratio).toFixed(1)}" width="${(bar - 2).toFixed(1)}" height="${(bottom - y(s.ratio)).toFixed(1)}" fill="${colors[j % colors.length]}"><title>${id} ${s.name}: ${fmt(s.ratio * 100)} %</title></rect>`,
        `<text x="${(x + bar / 2).toFixed(1)}" y="${(y(s.ratio) - 3).toFixed(1)}" text-anchor="middle" font-size="10">${fmt(s.ratio * 100)}</text>`,
      );
    });
    parts.push(
      `<text x="${(x0 + (group - 16) / 2).toFixed(1)}" y="${bottom + 16}" text-anchor="middle">${id}</text>`,
    );
  });
  sizes.forEach((size, j) => {
    parts.push(
      `<rect x="${left + j * 160}" y="${H - 28}" width="12" height="12" fill="${colors[j % colors.length]}"/>`,
      `<text x="${left + j * 160 + 18}" y="${H - 18}">${size.tasks.toLocaleString('en-US')} tasks</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

// --- main ---------------------------------------------------------------------------------------

async function cleanup(): Promise<void> {
  for (const child of children) {
    try {
      process.kill(-(child.pid as number), 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }
  if (admin) {
    for (const name of databases) {
      await admin.unsafe(`drop database if exists "${name}" with (force)`).catch(() => {});
    }
    await admin.end({ timeout: 5 }).catch(() => {});
    admin = null;
  }
  jwksServer?.closeAllConnections();
  jwksServer?.close();
}

async function main(): Promise<number> {
  if (!existsSync(join(ROOT, 'dist/server/main.js'))) throw new Error('run `npm run build` first');
  admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  const [{ version }] = (await admin`select version()`) as unknown as [{ version: string }];
  const meta = (): Meta => ({
    date: new Date().toISOString(),
    commit: gitCommit(),
    node: process.version,
    postgres: version.split(' ').slice(0, 2).join(' '),
    cpus: availableParallelism(),
    loadBefore: loadavg(),
    loadAfter: [],
    uptime: '',
    durationSeconds: DURATION,
    warmupSeconds: WARMUP,
    connections: CONNECTIONS,
    logLevel: flags['log-level'],
    poolMax: Number(flags.pool),
  });
  const auth = await startJwks();
  const file = join(HERE, 'results.json');
  let previous: Results | null = null;
  try {
    previous = JSON.parse(readFileSync(file, 'utf8')) as Results;
  } catch {
    previous = null;
  }
  const results: Results = { meta: meta(), sizes: { ...(previous?.sizes ?? {}) } };
  console.log(
    `bench: ${SIZES.join(', ')} tasks · scenarios ${SELECTED.join(' ')} · ${CONNECTIONS} connections · ${WARMUP} s + ${DURATION} s · load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  for (const tasks of SIZES) {
    const m = meta();
    const size = await runSize(tasks, auth);
    m.loadAfter = loadavg();
    m.uptime = uptime();
    results.sizes[String(tasks)] = { ...size, meta: m };
  }
  results.meta.loadAfter = loadavg();
  results.meta.uptime = uptime();
  console.log('');
  for (const size of Object.values(results.sizes)) {
    if (!SIZES.includes(size.tasks))
      console.log(`(${size.tasks} tasks: kept from the run of ${size.meta.date})`);
  }
  console.log(markdown(results));
  if (!flags['no-write']) {
    writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(join(HERE, 'results.md'), markdown(results));
    writeFileSync(join(HERE, 'ratios.svg'), svg(results));
    console.log(
      `wrote ${['results.json', 'results.md', 'ratios.svg'].map((n) => join('test/bench', n)).join(', ')}`,
    );
  }
  const failed = verdicts(results).some((l) => l.startsWith('FAIL'));
  return flags.strict && failed ? 1 : 0;
}

function gitCommit(): string {
  try {
    const head = readFileSync(join(ROOT, '.git/HEAD'), 'utf8').trim();
    const ref = head.startsWith('ref: ')
      ? readFileSync(join(ROOT, '.git', head.slice(5)), 'utf8').trim()
      : head;
    return ref.slice(0, 7);
  } catch {
    return 'unknown';
  }
}

function uptime(): string {
  try {
    const [up] = readFileSync('/proc/uptime', 'utf8').split(' ');
    return `up ${Math.round(Number(up) / 60)} min, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(', ')}`;
  } catch {
    return '';
  }
}

let exiting = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (exiting) return;
    exiting = true;
    console.error(`\n${signal}: stopping servers and dropping the bench database`);
    void cleanup().finally(() => process.exit(130));
  });
}

let code = 1;
try {
  code = await main();
} catch (error) {
  console.error(`bench failed: ${(error as Error).stack ?? error}`);
  console.error(`server logs: ${logDir}`);
} finally {
  await cleanup();
  if (code === 0 && !flags['keep-logs']) rmSync(logDir, { recursive: true, force: true });
}
process.exit(code);
