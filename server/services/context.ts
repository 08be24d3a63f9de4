import type { Db } from '../../db/client.js';
import type { Actor } from '../auth/actor.js';

/**
 * What every service function takes first. `tx` is where it runs: the pool for a read, the
 * caller's transaction for a change (services never commit; the change and its audit row commit
 * together or not at all). `actor` is who asks, `requestId` the request the audit rows name.
 */
export interface ServiceContext {
  tx: Db;
  actor: Actor;
  requestId: string;
  /** The lease an agent's claim takes when it names none (AGENT_LEASE_SECONDS). */
  agentLeaseSeconds?: number;
}
