import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, expectErrorBody, type TestApp } from '../helpers/app.js';

const TOOLS = [
  'assign_task',
  'block_task',
  'claim_next_task',
  'claim_task',
  'complete_task',
  'create_task',
  'get_task',
  'heartbeat_task',
  'list_projects',
  'list_tasks',
  'release_task',
  'reopen_task',
  'submit_for_review',
  'task_history',
  'unblock_task',
  'update_progress',
  'whoami',
];

let t: TestApp;
let baseUrl: string;
let alice: string;
let agentToken: string;
let otherAgentToken: string;
const clients: Client[] = [];

async function connect(token: string | null): Promise<Client> {
  const client = new Client({ name: 'taskflow-test-agent', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL('/mcp', baseUrl), {
    requestInit: token ? { headers: { authorization: `Bearer ${token}` } } : {},
  });
  await client.connect(transport);
  clients.push(client);
  return client;
}

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

function textOf(result: CallToolResult): string {
  const first = result.content[0];
  return first?.type === 'text' ? first.text : '';
}

async function createTask(title: string): Promise<{ id: number }> {
  const created = await t.rest('POST', '/api/tasks', {
    token: alice,
    body: { title, projectSlug: 'agents' },
  });
  expect(created.status, created.raw).toBe(201);
  return created.body;
}

const initialize = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
};

beforeAll(async () => {
  t = await createTestApp();
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  baseUrl = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;

  const admin = await t.token('root', { role: 'admin' });
  alice = await t.token('alice');
  for (const [id, name] of [
    ['@claude', 'Claude'],
    ['@codex', 'Codex'],
  ]) {
    const registered = await t.rest('POST', '/api/workers', { token: admin, body: { id, name } });
    expect(registered.status, registered.raw).toBe(201);
  }
  agentToken = await t.token('@claude');
  otherAgentToken = await t.token('@codex');

  expect(
    (await t.rest('POST', '/api/projects', { token: alice, body: { slug: 'agents', name: 'Agents' } }))
      .status,
  ).toBe(201);
  for (const member of ['@claude', '@codex']) {
    const added = await t.rest('PUT', `/api/projects/agents/members/${member}`, {
      token: alice,
      body: { role: 'member' },
    });
    expect(added.status, added.raw).toBe(200);
  }
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await t?.close();
});

describe('MCP endpoint', () => {
  it('lists the task tools with JSON schemas made from the shared zod schemas', async () => {
    const client = await connect(agentToken);
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(TOOLS);
    for (const tool of tools) {
      expect(tool.description, tool.name).toBeTruthy();
      expect(tool.inputSchema.type).toBe('object');
      // Reads declare what they answer; a change answers the task, whose shape get_task declares.
      if (tool.annotations?.readOnlyHint) expect(tool.outputSchema?.type, tool.name).toBe('object');
      else expect(tool.outputSchema, tool.name).toBeUndefined();
    }
    const byName = new Map(tools.map((tool) => [tool.name, tool]));
    expect(byName.get('claim_task')?.inputSchema).toMatchObject({
      properties: { id: { type: 'integer', minimum: 1 } },
      required: ['id'],
    });
    expect(byName.get('update_progress')?.inputSchema).toMatchObject({
      properties: { percent: { type: 'integer', minimum: 0, maximum: 100 }, note: { type: 'string' } },
      required: ['id', 'percent'],
    });
    expect(byName.get('block_task')?.inputSchema.required).toEqual(['id', 'reason']);
    expect(byName.get('list_tasks')?.inputSchema.properties).toHaveProperty('status');
    expect(byName.get('get_task')?.annotations?.readOnlyHint).toBe(true);
    expect(byName.get('claim_task')?.annotations).toEqual({ destructiveHint: false, openWorldHint: false });
  });

  it('keeps tools/list under 12 KB with every argument described, and says how to work in its instructions', async () => {
    const response = await fetch(new URL('/mcp', baseUrl), {
      method: 'POST',
      headers: {
        authorization: `Bearer ${agentToken}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    const raw = await response.text();
    expect(raw.length).toBeLessThan(12 * 1024);
    const { tools } = JSON.parse(raw).result as {
      tools: { name: string; inputSchema: any; annotations: any }[];
    };
    for (const tool of tools) {
      for (const [field, schema] of Object.entries(tool.inputSchema.properties ?? {})) {
        expect((schema as { description?: string }).description, `${tool.name}.${field}`).toEqual(
          expect.any(String),
        );
      }
      const mutates = !tool.annotations.readOnlyHint;
      if (mutates) expect(tool.inputSchema.properties, tool.name).toHaveProperty('idempotencyKey');
    }
    expect(raw).not.toContain(String(Number.MAX_SAFE_INTEGER));
    // What MCP Inspector --strict reports as unportable: "any value" spelled {} and type lists.
    expect(raw).not.toContain('"additionalProperties":{}');
    expect(raw).not.toMatch(/"type":\[/);

    const client = await connect(agentToken);
    expect(client.getInstructions()).toMatch(/claim_next_task/);
    expect(client.getInstructions()).toMatch(/member/);
  });

  it('answers who the agent is, its projects, and assigns and reopens like REST', async () => {
    const client = await connect(agentToken);
    const me = await call(client, 'whoami', {});
    expect(me.structuredContent).toMatchObject({ id: '@claude', type: 'agent', role: 'user' });
    const projects = await call(client, 'list_projects', {});
    expect(
      (projects.structuredContent as { projects: { slug: string }[] }).projects.map((p) => p.slug),
    ).toContain('agents');

    const task = await createTask('Hand this over');
    const owner = await connect(alice);
    const refused = await call(client, 'assign_task', { id: task.id, workerId: '@codex' });
    expect(refused._meta?.['taskflow/error']).toMatchObject({ code: 'FORBIDDEN' });
    const assigned = await call(owner, 'assign_task', { id: task.id, workerId: '@codex' });
    expect(assigned.isError, textOf(assigned)).toBeFalsy();
    expect(assigned.structuredContent).toMatchObject({ id: task.id, assignedTo: '@codex' });

    const codex = await connect(otherAgentToken);
    expect((await call(codex, 'claim_task', { id: task.id })).isError).toBeFalsy();
    expect((await call(codex, 'complete_task', { id: task.id })).isError).toBeFalsy();
    const reopened = await call(owner, 'reopen_task', { id: task.id });
    expect(reopened.structuredContent).toMatchObject({ id: task.id, status: 'pending' });
  });

  it('works the queue: claim_next_task → update_progress → complete_task, then {task: null} when it is empty', async () => {
    const created = await t.rest('POST', '/api/tasks', {
      token: alice,
      body: { title: 'From the queue', projectSlug: 'agents', labels: ['mcp-queue'] },
    });
    expect(created.status, created.raw).toBe(201);
    const client = await connect(agentToken);
    const claimed = await call(client, 'claim_next_task', { project: 'agents', labels: ['mcp-queue'] });
    expect(claimed.isError, textOf(claimed)).toBeFalsy();
    const { task } = claimed.structuredContent as {
      task: { id: number; assignedTo: string; leaseExpiresAt: string };
    };
    expect(task).toMatchObject({
      id: created.body.id,
      assignedTo: '@claude',
      leaseExpiresAt: expect.any(String),
    });
    const progressed = await call(client, 'update_progress', { id: task.id, percent: 50 });
    expect(progressed.structuredContent).toMatchObject({ progressPercent: 50 });
    const beat = await call(client, 'heartbeat_task', { id: task.id, leaseSeconds: 60 });
    expect(beat.isError, textOf(beat)).toBeFalsy();
    const completed = await call(client, 'complete_task', { id: task.id });
    expect(completed.structuredContent).toMatchObject({ status: 'completed' });
    const empty = await call(client, 'claim_next_task', { project: 'agents', labels: ['mcp-queue'] });
    expect(empty.isError, textOf(empty)).toBeFalsy();
    expect(empty.structuredContent).toEqual({ task: null });

    const again = await t.rest('POST', '/api/tasks', {
      token: alice,
      body: { title: 'Handed back', projectSlug: 'agents', labels: ['mcp-release'] },
    });
    await call(client, 'claim_next_task', { labels: ['mcp-release'] });
    const released = await call(client, 'release_task', { id: again.body.id, reason: 'cannot finish' });
    expect(released.structuredContent).toMatchObject({ status: 'pending', assignedTo: null });
    const lost = await call(client, 'heartbeat_task', { id: again.body.id });
    expect(lost.isError).toBe(true);
    expect(textOf(lost)).toMatch(/^ILLEGAL_TRANSITION: /);
  });

  it('replays a completion retried with the same idempotencyKey instead of failing', async () => {
    const task = await createTask('Finish once');
    const client = await connect(agentToken);
    expect(
      (await call(client, 'claim_task', { id: task.id, idempotencyKey: `claim-${task.id}` })).isError,
    ).toBeFalsy();
    const first = await call(client, 'complete_task', { id: task.id, idempotencyKey: `done-${task.id}` });
    const retry = await call(client, 'complete_task', { id: task.id, idempotencyKey: `done-${task.id}` });
    expect(first.isError, textOf(first)).toBeFalsy();
    expect(retry.isError, textOf(retry)).toBeFalsy();
    expect(retry.structuredContent).toEqual(first.structuredContent);
    const history = await t.rest('GET', `/api/tasks/${task.id}/history`, { token: alice });
    expect(
      (history.body as { items: { action: string }[] }).items.filter((row) => row.action === 'completed'),
    ).toHaveLength(1);
  });

  it("runs claim → progress → complete as the agent, and the audit log says it was the agent's doing", async () => {
    const task = await createTask('Summarise the incident report');
    const client = await connect(agentToken);

    const open = await call(client, 'list_tasks', { status: ['pending'], assignedTo: 'none' });
    expect(open.isError).toBeFalsy();
    expect((open.structuredContent as { items: { id: number }[] }).items.map((item) => item.id)).toContain(
      task.id,
    );

    const claimed = await call(client, 'claim_task', { id: task.id });
    expect(claimed.isError, textOf(claimed)).toBeFalsy();
    expect(claimed.structuredContent).toMatchObject({
      id: task.id,
      status: 'in_progress',
      assignedTo: '@claude',
    });
    expect(JSON.parse(textOf(claimed))).toEqual(claimed.structuredContent);

    const progressed = await call(client, 'update_progress', {
      id: task.id,
      percent: 60,
      note: 'draft done',
    });
    expect(progressed.structuredContent).toMatchObject({ status: 'in_progress', progressPercent: 60 });

    const completed = await call(client, 'complete_task', { id: task.id });
    expect(completed.structuredContent).toMatchObject({ status: 'completed', progressPercent: 100 });

    // Same rows whichever surface reads them.
    const history = await call(client, 'task_history', { id: task.id });
    const viaRest = await t.rest('GET', `/api/tasks/${task.id}/history`, { token: alice });
    expect(viaRest.status).toBe(200);
    expect(history.structuredContent).toEqual(viaRest.body);

    const rows = (viaRest.body as { items: unknown[] }).items as {
      action: string;
      actorId: string;
      actorType: string;
      context: any;
    }[];
    expect(rows.map((row) => row.action)).toEqual(['created', 'started', 'progressed', 'completed']);
    expect(rows[0]).toMatchObject({ actorId: 'alice', actorType: 'human' });
    for (const row of rows.slice(1)) expect(row).toMatchObject({ actorId: '@claude', actorType: 'agent' });
    expect(JSON.stringify(rows[2]?.context)).toContain('draft done');
  });

  it('reports a lost claim as a tool error with the message REST gives', async () => {
    const task = await createTask('Only one of us gets this');
    const winner = await connect(agentToken);
    const loser = await connect(otherAgentToken);
    expect((await call(winner, 'claim_task', { id: task.id })).isError).toBeFalsy();

    const lost = await call(loser, 'claim_task', { id: task.id });
    expect(lost.isError).toBe(true);
    const rest = await t.rest('POST', `/api/tasks/${task.id}/start`, { token: otherAgentToken, body: {} });
    expectErrorBody(rest, 409, 'CONFLICT');
    expect(textOf(lost)).toBe(`ALREADY_CLAIMED: ${rest.body.error}`);
    expect(lost._meta?.['taskflow/error']).toMatchObject({
      code: 'CONFLICT',
      status_code: 409,
      reason: 'ALREADY_CLAIMED',
    });

    // A task the agent may not see is as absent as over REST.
    const hidden = await t.rest('POST', '/api/tasks', { token: alice, body: { title: 'private' } });
    const notFound = await call(loser, 'get_task', { id: hidden.body.id });
    expect(notFound.isError).toBe(true);
    const restNotFound = await t.rest('GET', `/api/tasks/${hidden.body.id}`, { token: otherAgentToken });
    expectErrorBody(restNotFound, 404, 'NOT_FOUND');
    expect(textOf(notFound)).toBe(restNotFound.body.error);
  });

  it('validates tool arguments with the shared schema before any procedure runs', async () => {
    const task = await createTask('Validation target');
    const client = await connect(agentToken);
    const result = await call(client, 'update_progress', { id: task.id, percent: 150 });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(/percent/);
    const unchanged = await t.rest('GET', `/api/tasks/${task.id}`, { token: alice });
    expect(unchanged.body).toMatchObject({ status: 'pending', progressPercent: 0, version: 1 });
  });

  it('answers 401 with WWW-Authenticate and the API error body without a token or with a bad one', async () => {
    for (const authorization of [undefined, 'Bearer not-a-jwt', 'Basic abc']) {
      const response = await fetch(new URL('/mcp', baseUrl), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...(authorization ? { authorization } : {}),
        },
        body: JSON.stringify(initialize),
      });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
      const body = (await response.json()) as any;
      expect(body).toMatchObject({ code: 'UNAUTHORIZED', status_code: 401, error: expect.any(String) });
      expect(body.requestId).toBe(response.headers.get('x-request-id'));
    }
    await expect(connect(null)).rejects.toThrow(/401|nauthorized/);
  });

  it('refuses foreign Host and Origin headers (DNS rebinding) and keeps CORS headers on the hijacked reply', async () => {
    const post = (headers: Record<string, string>) =>
      t.app.inject({
        method: 'POST',
        url: '/mcp',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${agentToken}`,
          ...headers,
        },
        payload: JSON.stringify(initialize),
      });

    const rebound = await post({ host: 'attacker.example:8000' });
    expect(rebound.statusCode).toBe(403);
    expect(rebound.json()).toMatchObject({ code: 'FORBIDDEN', status_code: 403 });
    expect((await post({ host: 'localhost:8000', origin: 'http://attacker.example' })).statusCode).toBe(403);
    // A host from ALLOWED_ORIGINS and loopback hosts pass.
    expect((await post({ host: 'localhost:3000' })).statusCode).toBe(200);

    const response = await fetch(new URL('/mcp', baseUrl), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${agentToken}`,
        origin: 'http://localhost:3000',
      },
      body: JSON.stringify(initialize),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
    expect(response.headers.get('x-request-id')).toBeTruthy();
    expect(await response.json()).toMatchObject({ id: 1, result: { serverInfo: { name: 'taskflow' } } });
  });

  it('is stateless: GET and DELETE are 405', async () => {
    for (const method of ['GET', 'DELETE']) {
      const response = await fetch(new URL('/mcp', baseUrl), {
        method,
        headers: { authorization: `Bearer ${agentToken}`, accept: 'text/event-stream' },
      });
      expect(response.status).toBe(405);
      expect(response.headers.get('allow')).toBe('POST');
    }
  });
});
