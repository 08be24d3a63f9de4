import type { Role, WorkerType } from '../../shared/enums.js';

/** Who is calling: flows from the token to the services and into every audit row. */
export interface Actor {
  id: string;
  type: WorkerType;
  role: Role;
  email: string | null;
  name: string;
}
