import type postgres from 'postgres';

/**
 * Bulk seeding in SQL (generate_series, INSERT … SELECT), for the benchmark and the EXPLAIN test.
 *
 * Shape: `workers` human workers (`w0001`…), `projects` projects (`proj-01`…), every worker a member
 * of five projects (so each project has workers × 5 / projects members, its owner among them), and
 * `tasks` tasks: 95 % in a project, created by and (unless pending) assigned to members of it, the
 * rest project-less; status, priority, labels, due dates and timestamps (over the last year) drawn at
 * random. Optionally a separate pool of pending, unassigned tasks in the project `claim-pool`, of
 * which every worker is a member, for the claim + complete scenario (kept out of the other projects
 * so it does not change what the read scenarios see).
 *
 * The tasks' secondary indexes are dropped during the insert and rebuilt afterwards (from their own
 * `pg_indexes` definitions, so whatever the migrations made is what is rebuilt), and foreign-key
 * triggers are skipped when the role may (`session_replication_role`): the data is consistent by
 * construction. Ends with VACUUM ANALYZE, so plans and index-only scans are as in a settled database.
 */

export interface SeedOptions {
  tasks: number;
  projects?: number;
  workers?: number;
  /** Pending, unassigned tasks in `claim-pool` (0: no pool project). */
  claimPool?: number;
  /** Rows per INSERT statement (one progress step each). */
  chunk?: number;
  progress?: (step: string, done: number, total: number) => void;
}

export interface SeedInfo {
  workers: string[];
  projects: string[];
  /** Projects of each worker (without the claim pool). */
  membership: Map<string, string[]>;
  /** Owner of each project. */
  owners: Map<string, string>;
  claimProject: string | null;
  /** The pool's task ids, ascending. */
  claimIds: { first: number; last: number } | null;
  seconds: number;
}

export const CLAIM_PROJECT = 'claim-pool';
/** Memberships per worker; must stay ≤ projects. */
const MEMBERSHIPS = 5;
/** Stride between a worker's projects: 11 × k mod 50 is distinct for k < 5. */
const STRIDE = 11;

export function workerId(index: number, total: number): string {
  return `w${String(index + 1).padStart(Math.max(4, String(total).length), '0')}`;
}

export function projectSlug(index: number, total: number): string {
  return `proj-${String(index + 1).padStart(Math.max(2, String(total).length), '0')}`;
}

export async function seed(sql: postgres.Sql, options: SeedOptions): Promise<SeedInfo> {
  const started = performance.now();
  const P = options.projects ?? 50;
  const W = options.workers ?? 200;
  const N = options.tasks;
  const pool = options.claimPool ?? 0;
  const chunk = options.chunk ?? 50_000;
  const progress = options.progress ?? (() => {});
  if (W < P) throw new Error('seed: need at least as many workers as projects');
  const workerWidth = Math.max(4, String(W).length);
  const projectWidth = Math.max(2, String(P).length);
  const K = Math.min(MEMBERSHIPS, P);
  const perProject = Math.floor(W / P);

  // One connection for the whole seeding: session settings stick.
  const db = await sql.reserve();
  try {
    await db`set maintenance_work_mem = '256MB'`;
    await db`set synchronous_commit = off`;
    try {
      await db`set session_replication_role = replica`;
    } catch {
      // Not a superuser: foreign keys are checked row by row, slower but the same data.
    }

    // SQL expressions for "worker #i" and "project #j" (0-based), matching workerId/projectSlug.
    const wid = (i: string) => `'w' || lpad(((${i}) + 1)::text, ${workerWidth}, '0')`;
    const pslug = (j: string) => `'proj-' || lpad(((${j}) + 1)::text, ${projectWidth}, '0')`;

    await db.unsafe(
      `insert into workers (id, type, name, email)
       select ${wid('i')}, 'human', 'Worker ' || (i + 1), ${wid('i')} || '@bench.test'
       from generate_series(0, ${W - 1}) i`,
    );
    await db.unsafe(
      `insert into projects (slug, name, description, owner_id)
       select ${pslug('j')}, 'Project ' || (j + 1), 'Seeded project', ${wid('j')}
       from generate_series(0, ${P - 1}) j`,
    );
    // Worker i belongs to projects (i + 11k) mod P, k < 5; worker j owns project j.
    await db.unsafe(
      `insert into project_members (project_slug, worker_id, role)
       select ${pslug(`(i + ${STRIDE} * k) % ${P}`)}, ${wid('i')},
              (case when k = 0 and i < ${P} then 'owner' else 'member' end)::member_role
       from generate_series(0, ${W - 1}) i, generate_series(0, ${K - 1}) k
       on conflict do nothing`,
    );
    if (pool > 0) {
      await db.unsafe(
        `insert into projects (slug, name, description, owner_id)
         values ('${CLAIM_PROJECT}', 'Claim pool', 'Fresh tasks for the claim benchmark', ${wid('0')})`,
      );
      await db.unsafe(
        `insert into project_members (project_slug, worker_id, role)
         select '${CLAIM_PROJECT}', ${wid('i')}, (case when i = 0 then 'owner' else 'member' end)::member_role
         from generate_series(0, ${W - 1}) i`,
      );
    }

    const indexes = await db<{ indexname: string; indexdef: string }[]>`
      select indexname, indexdef from pg_indexes
      where schemaname = current_schema() and tablename = 'tasks'
        and indexname not in (select conname from pg_constraint where conrelid = 'tasks'::regclass)`;
    for (const index of indexes) await db.unsafe(`drop index "${index.indexname}"`);

    // A random member of project pj: worker ((pj - 11k) mod P) + P·m for random k < 5, m < W/P.
    const member = (k: string, m: string) =>
      wid(`((pj - ${STRIDE} * ${k}) % ${P} + ${P}) % ${P} + ${P} * ${m}`);
    const statuses = `(array['pending','in_progress','review','completed','blocked'])`;
    const labels = `(array['bug','feature','docs','ops','ui','backend','urgent','research'])`;
    for (let from = 1; from <= N; from += chunk) {
      const to = Math.min(N, from + chunk - 1);
      await db.unsafe(`
        insert into tasks (title, description, status, priority, progress_percent, assigned_to,
                           project_slug, labels, due_date, blocked_reason, created_by, created_at,
                           updated_at, completed_at)
        select 'Task ' || g,
               case when r_desc < 0.3 then null else 'Seeded task ' || g || ': ' || md5(g::text) end,
               st::task_status,
               (array['low','medium','high','critical'])[1 + floor(r_pri * 4)::int]::task_priority,
               case st when 'completed' then 100 when 'in_progress' then floor(r_prog * 100)::int
                       when 'review' then 90 else 0 end,
               case
                 when pj is null then (case when r_asg < 0.5 then null else ${wid('cw')} end)
                 when st = 'pending' and r_asg < 0.6 then null
                 when st = 'blocked' and r_asg < 0.5 then null
                 else ${member('ak', 'am')}
               end,
               case when pj is null then null else ${pslug('pj')} end,
               case floor(r_lab * 4)::int
                 when 0 then '{}'::text[]
                 when 1 then array[${labels}[1 + (g % 8)]]
                 else array[${labels}[1 + (g % 8)], ${labels}[1 + ((g / 8) % 8)]]
               end,
               case when r_due < 0.4 then null else ca + r_due * interval '60 days' end,
               case when st = 'blocked' then 'Waiting on a dependency' end,
               case when pj is null then ${wid('cw')} else ${member('ck', 'cm')} end,
               ca,
               ca + r_upd * (now() - ca),
               case when st = 'completed' then ca + r_upd * (now() - ca) end
        from (
          select g,
                 case when random() < 0.05 then null else floor(random() * ${P})::int end as pj,
                 ${statuses}[1 + floor(random() * 5)::int] as st,
                 now() - random() * interval '365 days' as ca,
                 floor(random() * ${K})::int as ak, floor(random() * ${perProject})::int as am,
                 floor(random() * ${K})::int as ck, floor(random() * ${perProject})::int as cm,
                 floor(random() * ${W})::int as cw,
                 random() as r_desc, random() as r_pri, random() as r_prog, random() as r_asg,
                 random() as r_lab, random() as r_due, random() as r_upd
          from generate_series(${from}, ${to}) g
        ) s`);
      progress('tasks', to, N);
    }

    let claimIds: SeedInfo['claimIds'] = null;
    if (pool > 0) {
      const [range] = await db.unsafe<{ first: number; last: number }[]>(`
        with inserted as (
          insert into tasks (title, project_slug, created_by, created_at, updated_at)
          select 'Claim me ' || g, '${CLAIM_PROJECT}', ${wid('0')},
                 now() - interval '400 days', now() - interval '400 days'
          from generate_series(1, ${pool}) g
          returning id
        )
        select min(id)::int as first, max(id)::int as last from inserted`);
      claimIds = range ?? null;
      progress('claim pool', pool, pool);
    }

    let built = 0;
    progress('indexes', 0, indexes.length);
    for (const index of indexes) {
      await db.unsafe(index.indexdef);
      progress('indexes', ++built, indexes.length);
    }
    await db`set session_replication_role = origin`.catch(() => {});
    for (const table of ['workers', 'projects', 'project_members', 'tasks']) {
      await db.unsafe(`vacuum analyze ${table}`);
    }
    progress('vacuum analyze', 1, 1);

    const members = await db<{ workerId: string; projects: string[] }[]>`
      select worker_id as "workerId", array_agg(project_slug order by project_slug) as projects
      from project_members where project_slug <> ${CLAIM_PROJECT} group by worker_id`;
    const owners = await db<{ slug: string; ownerId: string }[]>`
      select project_slug as slug, worker_id as "ownerId" from project_members
      where role = 'owner' and project_slug <> ${CLAIM_PROJECT}`;
    return {
      workers: Array.from({ length: W }, (_, i) => workerId(i, W)),
      projects: Array.from({ length: P }, (_, j) => projectSlug(j, P)),
      membership: new Map(members.map((m) => [m.workerId, m.projects])),
      owners: new Map(owners.map((o) => [o.slug, o.ownerId])),
      claimProject: pool > 0 ? CLAIM_PROJECT : null,
      claimIds,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    db.release();
  }
}

/** A one-line progress bar on stderr (a TTY redraws it in place; elsewhere it prints at the end). */
export function progressBar(label = 'seed'): (step: string, done: number, total: number) => void {
  const tty = process.stderr.isTTY;
  return (step, done, total) => {
    const width = 30;
    const fraction = total > 0 ? done / total : 1;
    const filled = Math.round(fraction * width);
    const line = `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(
      Math.round(fraction * 100),
    ).padStart(3)}% ${step} ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')}`;
    if (tty) process.stderr.write(`\r${line.padEnd(90)}${done >= total ? '\n' : ''}`);
    else if (done >= total) process.stderr.write(`${line}\n`);
  };
}
