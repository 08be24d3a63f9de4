export * from './audit.js';
export * from './common.js';
export * from './event.js';
export * from './health.js';
export * from './project.js';
export * from './task.js';
export * from './webhook.js';
export * from './worker.js';
