import { router } from '../trpc/init.js';
import { auditRouter } from './audit.js';
import { eventsRouter } from './events.js';
import { healthRouter } from './health.js';
import { projectsRouter } from './projects.js';
import { tasksRouter } from './tasks.js';
import { webhooksRouter } from './webhooks.js';
import { workersRouter } from './workers.js';

export const appRouter = router({
  tasks: tasksRouter,
  projects: projectsRouter,
  workers: workersRouter,
  audit: auditRouter,
  events: eventsRouter,
  webhooks: webhooksRouter,
  health: healthRouter,
});

export type AppRouter = typeof appRouter;
