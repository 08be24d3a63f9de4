/**
 * Calls one tRPC batch may hold. The server refuses a larger batch with 400 before running any of
 * it; the typed client splits its batches to fit.
 */
export const MAX_BATCH_CALLS = 20;
