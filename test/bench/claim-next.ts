import { Agent, request } from 'node:http';
import type postgres from 'postgres';
import { percentile } from './sampling.js';

/**
 * Scenario 7 of `npm run bench`: agents draining a work queue. 64 agents (workers of type `agent`,
 * each with a token of its own and the capabilities the tasks need) loop on `POST
 * /api/tasks/claim-next` then `POST /api/tasks/{id}/complete` until the claim answers `{ task: null }`,
 * over a batch of pending tasks seeded for that server alone in the project `agent-queue`, where
 * nobody else works (the rest of the board is invisible to the agents). Each step depends on the one
 * before, so the loops are plain HTTP calls rather than autocannon's fixed request lists.
 *
 * Measured: tasks per second over the whole drain, p50/p99 of every call and of claims and
 * completions apart, errors. Then the database is asked whether the queue behaved: every task of
 * the batch completed, with exactly one `started` row (`via: claimNext`) and one `completed` row;
 * a task handed out twice is a duplicate, one left behind is unfinished.
 */

export const CLAIM_NEXT_ID = '7';
const PROJECT = 'agent-queue';
const AGENTS = 64;
/** What the issue asks for: 20 000 pending tasks per server; a tenth of that warms each server up. */
const TASKS = 20_000;
const WARMUP_TASKS = 2_000;
const CAPABILITIES = ['python', 'bench'];

export interface DrainStats {
  tasks: number;
  seconds: number;
  /** Tasks handed out more than once (to the agents, or by the audit log's `started` rows). */
  duplicates: number;
  /** Tasks of the batch not completed, or without exactly one `started` and one `completed` row. */
  unfinished: number;
  claim: { p50: number; p99: number };
  complete: { p50: number; p99: number };
}

/** What a drain measures, in the shape of the bench's other scenarios (`rps` is tasks per second). */
export interface DrainMeasure {
  rps: number;
  requests: number;
  p50: number;
  p99: number;
  errors: number;
  statuses: Record<string, number>;
  drain: DrainStats;
}

const summary = (latencies: number[]) => {
  const sorted = Float64Array.from(latencies).sort();
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
};

/** One POST on a kept-alive connection: status and parsed body (null unless JSON). */
function post(agent: Agent, url: URL, token: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': 2,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = null;
          try {
            body = JSON.parse(text);
          } catch {
            body = null;
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end('{}');
  });
}

export class ClaimQueue {
  readonly name = 'claim-next + complete, 64 agents (tasks/s)';

  private constructor(
    private readonly sql: postgres.Sql,
    private readonly tokens: string[],
    private readonly measuredTasks: number,
  ) {}

  /** The agents (registered with their capabilities, members of the queue's project) and their tokens. */
  static async prepare(
    sql: postgres.Sql,
    sign: (sub: string) => Promise<string>,
    tasks = TASKS,
  ): Promise<ClaimQueue> {
    const ids = Array.from({ length: AGENTS }, (_, i) => `agent-${String(i + 1).padStart(2, '0')}`);
    await sql`insert into workers (id, type, name, email, capabilities)
      select id, 'agent', 'Bench agent ' || id, id || '@bench.test', ${CAPABILITIES}::text[]
      from unnest(${ids}::text[]) id`;
    await sql`insert into projects (slug, name, description, owner_id)
      values (${PROJECT}, 'Agent queue', 'Tasks for the claim-next benchmark', ${ids[0] as string})`;
    await sql`insert into project_members (project_slug, worker_id, role)
      select ${PROJECT}, id, (case when id = ${ids[0] as string} then 'owner' else 'member' end)::member_role
      from unnest(${ids}::text[]) id`;
    const tokens = await Promise.all(ids.map(sign));
    return new ClaimQueue(sql, tokens, tasks);
  }

  /** Seeds a batch for one server, lets the agents drain it, and checks the result in the database. */
  async drain(serverUrl: string, phase: 'warmup' | 'measure'): Promise<DrainMeasure> {
    const batch = await this.seedBatch(phase === 'warmup' ? WARMUP_TASKS : this.measuredTasks);
    const claimUrl = new URL('/api/tasks/claim-next', serverUrl);
    const agent = new Agent({ keepAlive: true, maxSockets: AGENTS });
    const claims: number[] = [];
    const completions: number[] = [];
    const statuses: Record<string, number> = {};
    const handedOut = new Set<number>();
    let duplicates = 0;
    let errors = 0;
    const count = (status: number) => {
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status < 200 || status >= 300) errors += 1;
    };
    // One agent: claim, complete, again, until the queue answers null. A failed call is an error
    // and the loop goes on; twenty in a row end it, so a broken server cannot spin forever.
    const work = async (token: string) => {
      let failures = 0;
      while (failures < 20) {
        let started = performance.now();
        const claim = await post(agent, claimUrl, token).catch(() => ({ status: 0, body: null }));
        count(claim.status);
        if (claim.status !== 200) {
          failures += 1;
          continue;
        }
        claims.push(performance.now() - started);
        const task = (claim.body as { task: { id: number } | null }).task;
        if (task === null) return;
        if (handedOut.has(task.id)) duplicates += 1;
        handedOut.add(task.id);
        started = performance.now();
        const done = await post(agent, new URL(`/api/tasks/${task.id}/complete`, serverUrl), token).catch(
          () => ({ status: 0, body: null }),
        );
        count(done.status);
        if (done.status === 200) completions.push(performance.now() - started);
        failures = done.status === 200 ? 0 : failures + 1;
      }
    };
    const started = performance.now();
    try {
      await Promise.all(this.tokens.map(work));
    } finally {
      agent.destroy();
    }
    const seconds = (performance.now() - started) / 1000;
    const audit = await this.check(batch);
    const all = summary([...claims, ...completions]);
    return {
      rps: batch.tasks / seconds,
      requests: claims.length + completions.length,
      p50: all.p50,
      p99: all.p99,
      errors,
      statuses,
      drain: {
        tasks: batch.tasks,
        seconds,
        duplicates: Math.max(duplicates, audit.duplicates),
        unfinished: audit.unfinished,
        claim: summary(claims),
        complete: summary(completions),
      },
    };
  }

  /**
   * Pending tasks with mixed priorities, due dates and required capabilities (all within the
   * agents'), so the claim's order and capability match do real work; then VACUUM ANALYZE, so each
   * server starts from a settled table rather than the previous drain's dead rows.
   */
  private async seedBatch(n: number): Promise<{ first: number; last: number; tasks: number }> {
    const [range] = await this.sql<{ first: number; last: number }[]>`
      with inserted as (
        insert into tasks (title, project_slug, priority, due_date, labels, required_capabilities, created_by)
        select 'Queued ' || g, ${PROJECT},
               (array['low','medium','high','critical'])[1 + floor(random() * 4)::int]::task_priority,
               case when random() < 0.4 then null else now() + random() * interval '30 days' end,
               array['bench'],
               case floor(random() * 3)::int when 0 then '{}'::text[] when 1 then array['python']
                    else array['python', 'bench'] end,
               'agent-01'
        from generate_series(1, ${n}) g
        returning id
      )
      select min(id)::int as first, max(id)::int as last from inserted`;
    if (!range) throw new Error('claim-next: the batch was not inserted');
    await this.sql`vacuum analyze tasks`;
    return { ...range, tasks: n };
  }

  /** Duplicates and unfinished tasks of a batch, from the tasks and the audit log. */
  private async check(batch: {
    first: number;
    last: number;
  }): Promise<{ duplicates: number; unfinished: number }> {
    const [row] = await this.sql<{ duplicates: number; unfinished: number }[]>`
      with rows as (
        select t.id, t.status,
               count(a.id) filter (where a.action = 'started' and a.context ->> 'via' = 'claimNext') as started,
               count(a.id) filter (where a.action = 'completed') as completed
        from tasks t left join audit_log a on a.task_id = t.id
        where t.id between ${batch.first} and ${batch.last}
        group by t.id, t.status
      )
      select count(*) filter (where started > 1)::int as duplicates,
             count(*) filter (where status <> 'completed' or started <> 1 or completed <> 1)::int as unfinished
      from rows`;
    return row ?? { duplicates: Number.NaN, unfinished: Number.NaN };
  }
}

const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '—');

/** Scenario 7's figures beyond the table's: per server, tasks/s, claim and complete latency, and the audit check. */
export function describeDrains(id: string, drains: { baseline: DrainStats; taskflow: DrainStats }): string {
  const one = (label: string, d: DrainStats) =>
    `${label} ${d.tasks.toLocaleString('en-US')} tasks in ${d.seconds.toFixed(1)} s = ${(d.tasks / d.seconds).toFixed(0)} tasks/s, claim p50 / p99 ${ms(
      d.claim.p50,
    )} / ${ms(d.claim.p99)} ms, complete ${ms(d.complete.p50)} / ${ms(d.complete.p99)} ms, ${d.duplicates} duplicates, ${d.unfinished} unfinished`;
  return `Scenario ${id}: ${one('baseline', drains.baseline)}; ${one('TaskFlow', drains.taskflow)}.`;
}
