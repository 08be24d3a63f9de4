import { gt, sql } from 'drizzle-orm';
import { type Db, rowsOf } from '../../../db/client.js';
import { auditLog } from '../../../db/schema/index.js';

// Audit ids are handed out at insert, not at commit: id 104 can become visible after 105. The
// horizon is the id up to which every audit id is settled (committed and visible, or never to be),
// so readers that only deliver up to it never skip an event and never need to go back.
//
// When the next id is missing below a visible one, the transactions that could still hold it are
// the ones that have inserted into audit_log and not ended: an id below a visible row was taken
// before that row's transaction committed, so before this read, and an INSERT takes its lock on the
// table (held to the transaction's end) before it draws an id. Their virtual transaction ids are
// noted (a real xid may come only after the id, so `pg_current_snapshot()`'s in-progress list could
// miss one), and once all of them have ended, every id below the highest one read is final. Other
// transactions, however long, never hold delivery back; a gap held by a long writer delays it, and
// the statement and idle-in-transaction timeouts bound that.

const BATCH = 1000;

// Transactions other than this one holding a lock on audit_log that a reader does not take: every
// one that inserted into it. A lock row names its holder's virtual transaction.
const RUNNING = sql`select distinct l.virtualtransaction as virtualxid from pg_locks l
  where l.locktype = 'relation' and l.relation = to_regclass('audit_log') and l.granted
    and l.database = (select oid from pg_database where datname = current_database())
    and l.mode <> 'AccessShareLock' and l.pid <> pg_backend_pid()`;

async function runningTransactions(db: Db): Promise<string[]> {
  return rowsOf(await db.execute(RUNNING)).map((row) => String((row as { virtualxid: unknown }).virtualxid));
}

async function anyStillRunning(db: Db, vxids: string[]): Promise<boolean> {
  if (vxids.length === 0) return false;
  const rows = rowsOf(
    await db.execute(sql`select 1 as running from pg_locks
      where locktype = 'virtualxid' and granted and virtualxid = any(${`{${vxids.join(',')}}`}::text[])
      limit 1`),
  );
  return rows.length > 0;
}

export type Advance = 'moved' | 'more' | 'waiting' | 'idle';

export class Horizon {
  /** Every audit id up to this one is settled. */
  position = 0;
  /** Every id below this one is settled (committed or never to be). */
  private finalBelow = 0;
  private gap: { below: number; vxids: string[] } | null = null;

  constructor(private readonly db: Db) {}

  /** Whether the horizon stopped at a gap whose transactions are still running. */
  get blocked(): boolean {
    return this.gap !== null;
  }

  /** Starts at the present: the highest id now, once the transactions that could hold a lower one end. */
  async start(pollMs: number, signal: AbortSignal): Promise<void> {
    const [last] = await this.db
      .select({ id: sql<number>`coalesce(max(${auditLog.id}), 0)`.mapWith(Number) })
      .from(auditLog);
    const vxids = await runningTransactions(this.db);
    while (!signal.aborted && (await anyStillRunning(this.db, vxids))) {
      await new Promise((r) => setTimeout(r, pollMs));
    }
    this.position = last?.id ?? 0;
    this.finalBelow = this.position;
  }

  /**
   * Moves the horizon as far as the table allows now. 'more': a full batch was settled, call again;
   * 'waiting': stopped at a gap whose transactions are still running; 'idle': nothing new.
   */
  async advance(): Promise<Advance> {
    if (this.gap) {
      if (await anyStillRunning(this.db, this.gap.vxids)) return 'waiting';
      this.finalBelow = Math.max(this.finalBelow, this.gap.below);
      this.gap = null;
    }
    const rows = await this.db
      .select({ id: auditLog.id })
      .from(auditLog)
      .where(gt(auditLog.id, this.position))
      .orderBy(auditLog.id)
      .limit(BATCH);
    const start = this.position;
    for (const { id } of rows) {
      if (id !== this.position + 1 && id > this.finalBelow) {
        this.gap = { below: rows.at(-1)?.id ?? id, vxids: await runningTransactions(this.db) };
        return this.position > start ? 'moved' : 'waiting';
      }
      this.position = id;
    }
    if (rows.length === BATCH) return 'more';
    return this.position > start ? 'moved' : 'idle';
  }
}
