// The task service, by job: reads, the list, writes (create, update, delete), assignment and the
// workflow actions, the work queue (claim-next.ts, leases.ts); permissions.ts turns the shared permission table into SQL, subtasks.ts keeps
// the task tree sound.
export {
  block,
  complete,
  heartbeat,
  progress,
  release,
  reopen,
  start,
  submitForReview,
  unblock,
} from './actions.js';
export { assign } from './assignment.js';
export { claimNext } from './claim-next.js';
export { list } from './list.js';
export { get, history } from './reads.js';
export type { TaskRow } from './rows.js';
export { create, remove, update } from './writes.js';
