import type { Tool, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { MAX_ID } from '../shared/schemas/common.js';
import {
  Task,
  TaskActionInput,
  TaskAssignInput,
  TaskBlockInput,
  TaskClaimNextInput,
  TaskCreateInput,
  TaskHeartbeatInput,
  TaskHistoryInput,
  TaskIdInput,
  TaskListInput,
  TaskProgressInput,
  TaskReleaseInput,
  TaskStatus,
} from '../shared/schemas/task.js';
import type { AppRouter } from './routers/index.js';

// The MCP tools: each is one procedure of the router, called through a server-side caller, so the
// rules, visibility checks and audit rows are exactly those of tRPC and REST. Their listing is part
// of every agent's context window, so it is kept lean (see `jsonSchema`).

export type Caller = ReturnType<AppRouter['createCaller']>;

export interface ToolDefinition {
  name: string;
  title: string;
  description: string;
  input: z.ZodType;
  /** Declared for reads; a change answers the task after it, whose shape get_task declares. */
  output?: z.ZodType;
  annotations: ToolAnnotations;
  run: (caller: Caller, input: never) => Promise<Record<string, unknown>>;
}

export const SERVER_INSTRUCTIONS = [
  'TaskFlow is a task board shared by people and AI agents. You see the tasks of projects you are a',
  'member of and the project-less tasks you created or hold; ask a project owner to add you.',
  'Work loop: claim_next_task (null when nothing is free) → update_progress or heartbeat_task before',
  'the lease passes → complete_task; release_task with a reason when you give up, block_task when stuck.',
  "Every change is audited under your identity. A refusal's text starts with its reason (ALREADY_CLAIMED, …).",
  'Retrying a change after a lost answer: pass the same idempotencyKey and you get the first answer.',
].join(' ');

const readOnly: ToolAnnotations = { readOnlyHint: true, openWorldHint: false };
// A repeat of a change is a second change (and a second audit row) unless it carries the same
// idempotencyKey, so no write is idempotent by the hint's definition; readOnlyHint and
// idempotentHint are false by default. Nothing here deletes.
const write: ToolAnnotations = { destructiveHint: false, openWorldHint: false };

const ClaimNextToolInput = TaskClaimNextInput.omit({ leaseSeconds: true });

// Fresh objects from the shared shapes: a schema with a registry id would be a bare `$ref`.
const TaskResult = z.object(Task.shape);

/** A list item: the fields to pick by; get_task declares the rest. */
const listed = (fields: Record<string, z.ZodType>, description: string) =>
  z.looseObject(fields).describe(description);

const change = (
  name: string,
  title: string,
  description: string,
  input: z.ZodType,
  run: (caller: Caller, input: never) => Promise<Record<string, unknown>>,
): ToolDefinition => ({
  name,
  title,
  description: `${description} Returns the updated task.`,
  input,
  annotations: write,
  run,
});

export const TOOLS: ToolDefinition[] = [
  {
    name: 'whoami',
    title: 'Who am I',
    description: 'Your worker record: id, type (human or agent), role and capabilities.',
    input: z.strictObject({}),
    output: listed({ id: z.string(), role: z.string() }, 'Your worker record'),
    annotations: readOnly,
    run: (caller) => caller.workers.me({}),
  },
  {
    name: 'list_projects',
    title: 'List projects',
    description: 'The projects you are a member of (all of them for an admin).',
    input: z.strictObject({}),
    output: z.object({
      projects: z.array(listed({ slug: z.string(), name: z.string() }, 'A project')),
    }),
    annotations: readOnly,
    run: async (caller) => ({ projects: await caller.projects.list({}) }),
  },
  {
    name: 'list_tasks',
    title: 'List tasks',
    description:
      'Tasks visible to you, filtered and sorted, one page at a time. `assignedTo: "me"` lists your own work, `assignedTo: "none"` with `status: ["pending"]` lists work you can claim; `updatedSince` polls for changes.',
    input: TaskListInput,
    output: z.object({
      items: z.array(
        listed({ id: z.int(), title: z.string(), status: TaskStatus }, 'A task, as get_task returns it'),
      ),
      nextCursor: z.string().nullable(),
    }),
    annotations: readOnly,
    run: (caller, input: z.input<typeof TaskListInput>) => caller.tasks.list(input),
  },
  {
    name: 'get_task',
    title: 'Get a task',
    description: 'One task by id, with every field.',
    input: TaskIdInput,
    output: TaskResult,
    annotations: readOnly,
    run: (caller, input: z.output<typeof TaskIdInput>) => caller.tasks.get(input),
  },
  {
    name: 'task_history',
    title: 'Task history',
    description:
      "A task's audit trail, oldest first, one page at a time: who did what, human or agent, and when.",
    input: TaskHistoryInput,
    output: z.object({
      items: z.array(z.looseObject({})).describe('Audit entries, oldest first'),
      nextCursor: z.string().nullable(),
    }),
    annotations: readOnly,
    run: (caller, input: z.input<typeof TaskHistoryInput>) => caller.tasks.history(input),
  },
  change(
    'create_task',
    'Create a task',
    'Creates a pending task, optionally in a project and under a parent task.',
    TaskCreateInput,
    (caller, input: z.output<typeof TaskCreateInput>) => caller.tasks.create(input),
  ),
  {
    name: 'claim_next_task',
    title: 'Claim the next task',
    description: 'Claims the most urgent free task you can do: {task}, or {task: null} when none is free.',
    // The lease is the agent default; heartbeat_task sets another length.
    input: ClaimNextToolInput,
    annotations: write,
    run: (caller, input: z.output<typeof ClaimNextToolInput>) => caller.tasks.claimNext(input),
  },
  change(
    'claim_task',
    'Claim a task',
    'Starts a pending task and assigns it to you (pending → in_progress). If someone claimed it first: a conflict, pick another.',
    TaskActionInput,
    (caller, input: z.output<typeof TaskActionInput>) => caller.tasks.start(input),
  ),
  change(
    'heartbeat_task',
    'Renew a lease',
    'Renews the lease on a task you hold.',
    TaskHeartbeatInput,
    (caller, input: z.output<typeof TaskHeartbeatInput>) => caller.tasks.heartbeat(input),
  ),
  change(
    'release_task',
    'Release a task',
    'Hands a task you hold back to the queue (pending).',
    TaskReleaseInput,
    (caller, input: z.output<typeof TaskReleaseInput>) => caller.tasks.release(input),
  ),
  change(
    'update_progress',
    'Report progress',
    'Sets the progress (0-100) of a task you hold, with an optional note for the history.',
    TaskProgressInput,
    (caller, input: z.output<typeof TaskProgressInput>) => caller.tasks.progress(input),
  ),
  change(
    'submit_for_review',
    'Submit for review',
    'Moves a task you hold from in_progress to review.',
    TaskActionInput,
    (caller, input: z.output<typeof TaskActionInput>) => caller.tasks.submitForReview(input),
  ),
  change(
    'complete_task',
    'Complete a task',
    'Completes a task in progress or in review (progress becomes 100).',
    TaskActionInput,
    (caller, input: z.output<typeof TaskActionInput>) => caller.tasks.complete(input),
  ),
  change(
    'block_task',
    'Block a task',
    'Marks a task blocked, with the reason (what or whom it waits for).',
    TaskBlockInput,
    (caller, input: z.output<typeof TaskBlockInput>) => caller.tasks.block(input),
  ),
  change(
    'unblock_task',
    'Unblock a task',
    'Clears the block: back to in_progress if assigned, else pending.',
    TaskActionInput,
    (caller, input: z.output<typeof TaskActionInput>) => caller.tasks.unblock(input),
  ),
  change(
    'reopen_task',
    'Reopen a task',
    'Moves a completed task back to pending (creator, project owner or admin).',
    TaskActionInput,
    (caller, input: z.output<typeof TaskActionInput>) => caller.tasks.reopen(input),
  ),
  change(
    'assign_task',
    'Assign a task',
    'Gives a task to a worker (workerId), or unassigns it (workerId: null).',
    TaskAssignInput,
    (caller, input: z.output<typeof TaskAssignInput>) => caller.tasks.assign(input),
  ),
];

/**
 * JSON Schema of a zod schema as a listing shows it: types, bounds and descriptions, without the
 * regular expressions and the ban on extra fields (the procedure still checks both and names the
 * field that fails).
 */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Tool['inputSchema'] {
  const { $schema: _, ...json } = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-7' });
  const lean = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(lean);
    else if (node && typeof node === 'object') {
      const record = node as Record<string, unknown>;
      if (typeof record.pattern === 'string') delete record.pattern;
      if (record.additionalProperties === false) delete record.additionalProperties;
      delete record.maxItems;
      if (record.minimum === Number.MIN_SAFE_INTEGER) delete record.minimum;
      if (record.maximum === Number.MAX_SAFE_INTEGER || record.maximum === MAX_ID) delete record.maximum;
      // Every field of an answer is there; listing them all again only costs context.
      if (io === 'output') delete record.required;
      delete record.example;
      delete record.examples;
      portable(record);
      Object.values(record).forEach(lean);
    }
  };
  lean(json);
  return json as Tool['inputSchema'];
}

/**
 * The spellings MCP Inspector's `--strict` flags as unportable: `{}` for "any value" becomes `true`,
 * and a `type` list (`["string", "null"]`) becomes `anyOf` branches of one type each, which clients
 * that map tool schemas onto a single-type dialect accept.
 */
function portable(record: Record<string, unknown>): void {
  const extra = record.additionalProperties;
  if (extra && typeof extra === 'object' && Object.keys(extra).length === 0)
    record.additionalProperties = true;
  if (!Array.isArray(record.type)) return;
  const { type: types, description, ...constraints } = record;
  for (const key of Object.keys(record)) if (key !== 'description') delete record[key];
  record.anyOf = (types as unknown[]).map((type) => (type === 'null' ? { type } : { type, ...constraints }));
}

/** The `tools/list` answer, built once. */
export const TOOL_LISTING: Tool[] = TOOLS.map((tool) => ({
  name: tool.name,
  title: tool.title,
  description: tool.description,
  inputSchema: jsonSchema(tool.input, 'input'),
  ...(tool.output ? { outputSchema: jsonSchema(tool.output, 'output') } : {}),
  annotations: tool.annotations,
}));
