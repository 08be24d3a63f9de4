import { and, inArray, isNull } from 'drizzle-orm';
import type { Db } from '../../../db/client.js';
import { projectMembers, tasks } from '../../../db/schema/index.js';
import type { AuditAction } from '../../../shared/enums.js';
import type { Actor } from '../../auth/actor.js';
import type { EventRow } from './read.js';

// The shared reader hands each batch of events to every open stream, so who may see an event is
// decided here, in memory, from what is loaded once per batch for all of them, instead of by one
// query per stream. The rule is `auditVisibleTo`'s (visibility.ts), which the streams' own catch-up
// reads and the JSON page still apply in SQL; test/api/events-fanout.test.ts holds the two equal.

/** Changes of who belongs to which project: a batch holding one reloads every member list first. */
const MEMBERSHIP_ACTIONS: ReadonlySet<AuditAction> = new Set([
  'project_created',
  'member_added',
  'member_removed',
]);

/**
 * Member lists are reloaded at least this often even without a membership event (a change made
 * outside TaskFlow's services), well inside SPEC §12's "a removed member stops within 5 s".
 */
const REFRESH_MS = 2_000;

interface Member {
  /** Open streams of this worker. */
  streams: number;
  projects: Set<string>;
  loadedAt: number;
}

export class Audience {
  private readonly members = new Map<string, Member>();
  /** Creator and holder of each project-less task of the current batch. */
  private looseTasks = new Map<number, { createdBy: string; assignedTo: string | null }>();

  constructor(private readonly db: Db) {}

  /** Counts a stream of `actor`; its member list is loaded with the next batch. */
  add(actor: Actor): void {
    if (actor.role === 'admin') return;
    const member = this.members.get(actor.id);
    if (member) member.streams += 1;
    else this.members.set(actor.id, { streams: 1, projects: new Set(), loadedAt: Number.NEGATIVE_INFINITY });
  }

  remove(actor: Actor): void {
    const member = this.members.get(actor.id);
    if (!member) return;
    member.streams -= 1;
    if (member.streams === 0) this.members.delete(actor.id);
  }

  /**
   * Loads what deciding `rows` needs for every stream counted now, including streams counted while
   * it loads: member lists that are new, stale or changed by the batch, and who holds its
   * project-less tasks. Visibility is then as of now, as a query's would be.
   */
  async prepare(rows: EventRow[]): Promise<void> {
    if (rows.some((row) => MEMBERSHIP_ACTIONS.has(row.entry.action))) {
      for (const member of this.members.values()) member.loadedAt = Number.NEGATIVE_INFINITY;
    }
    const looseIds = new Set<number>();
    for (const { entry } of rows) {
      if (entry.projectSlug === null && entry.taskId !== null) looseIds.add(entry.taskId);
    }
    this.looseTasks = new Map();
    if (looseIds.size > 0 && this.members.size > 0) {
      const found = await this.db
        .select({ id: tasks.id, createdBy: tasks.createdBy, assignedTo: tasks.assignedTo })
        .from(tasks)
        .where(and(inArray(tasks.id, [...looseIds]), isNull(tasks.projectSlug)));
      this.looseTasks = new Map(found.map(({ id, ...owners }) => [id, owners]));
    }
    for (let stale = this.stale(); stale.length > 0; stale = this.stale()) await this.load(stale);
  }

  /** Whether `actor` may see the event now (call after `prepare` of its batch). */
  sees(actor: Actor, row: EventRow): boolean {
    if (actor.role === 'admin') return true;
    const { projectSlug, taskId, actorId } = row.entry;
    if (projectSlug !== null) return this.members.get(actor.id)?.projects.has(projectSlug) ?? false;
    if (actorId === actor.id) return true;
    const task = taskId === null ? undefined : this.looseTasks.get(taskId);
    return task !== undefined && (task.createdBy === actor.id || task.assignedTo === actor.id);
  }

  private stale(): string[] {
    const due = Date.now() - REFRESH_MS;
    return [...this.members].flatMap(([id, member]) => (member.loadedAt < due ? [id] : []));
  }

  private async load(workerIds: string[]): Promise<void> {
    const loadedAt = Date.now();
    const rows = await this.db
      .select({ workerId: projectMembers.workerId, projectSlug: projectMembers.projectSlug })
      .from(projectMembers)
      .where(inArray(projectMembers.workerId, workerIds));
    const lists = new Map(workerIds.map((id) => [id, new Set<string>()]));
    for (const row of rows) lists.get(row.workerId)?.add(row.projectSlug);
    for (const [id, projects] of lists) {
      const member = this.members.get(id);
      if (member) Object.assign(member, { projects, loadedAt });
    }
  }
}
