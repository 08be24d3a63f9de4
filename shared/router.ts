// Type-only: clients get the router's types without any server code.
export type { AppRouter } from '../server/routers/index.js';
