import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTaskflowClient } from '../../shared/client.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

// The server's own limits hold against clients that do not play along: a body trickled in is cut at
// the request timeout, an oversized body is always answered 413 (never a broken pipe), and a
// procedure that needs no input can be called with none.

const TIMEOUT_MS = 1_000;
let t: TestApp;
let port: number;
let token: string;

beforeAll(async () => {
  t = await createTestApp({ listen: true, requestTimeoutMs: TIMEOUT_MS });
  port = (t.app.server.address() as AddressInfo).port;
  token = await t.token('limits-user');
}, 60_000);

afterAll(async () => {
  await t?.close();
});

describe('a client sending its body slowly', () => {
  it('is cut off at the request timeout, not minutes later', async () => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (chunk) => {
      answer += chunk.toString();
    });
    socket.write(
      `POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"title":"',
    );
    // A byte every 100 ms keeps the socket busy, so no idle timeout would ever fire.
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write('a');
    }, 100);
    const closedAfter = await new Promise<number>((resolve) => {
      socket.on('close', () => resolve(Date.now() - started));
      socket.on('error', () => {});
    });
    clearInterval(drip);
    expect(closedAfter).toBeGreaterThanOrEqual(TIMEOUT_MS);
    expect(closedAfter).toBeLessThan(TIMEOUT_MS * 2 + 500);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });
});

describe('a body over the limit', () => {
  it.each([
    ['REST, with a Content-Length', '/api/tasks', true],
    ['REST, chunked', '/api/tasks', false],
    ['tRPC, with a Content-Length', '/trpc/tasks.create', true],
    ['tRPC, chunked', '/trpc/tasks.create', false],
  ])(
    'reads 413 on every one of 200 tries over keep-alive, 4 clients at once (%s)',
    async (_name, path, sized) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 4 });
      const body = Buffer.alloc(2 * 1024 * 1024, 'a');
      const outcomes: Record<string, number> = {};
      const once = () =>
        new Promise<string>((resolve) => {
          const req = request(
            {
              host: '127.0.0.1',
              port,
              method: 'POST',
              path,
              agent,
              headers: {
                authorization: `Bearer ${token}`,
                'content-type': 'application/json',
                ...(sized ? { 'content-length': body.length } : {}),
              },
            },
            (res) => {
              res.resume();
              res.on('end', () => resolve(String(res.statusCode)));
              res.on('error', (error) => resolve(`response ${(error as NodeJS.ErrnoException).code}`));
            },
          );
          req.on('error', (error) => resolve((error as NodeJS.ErrnoException).code ?? error.message));
          if (sized) req.end(body);
          else {
            // Written in pieces, as a streaming client would; the server may answer before the end.
            for (let i = 0; i < 8; i++) req.write(body.subarray(i * 262_144, (i + 1) * 262_144));
            req.end();
          }
        });
      try {
        for (let round = 0; round < 50; round++) {
          for (const outcome of await Promise.all([once(), once(), once(), once()])) {
            outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
          }
        }
      } finally {
        agent.destroy();
      }
      expect(outcomes).toEqual({ 413: 200 });
    },
    120_000,
  );
});

describe('open connections', () => {
  it('beyond MAX_CONNECTIONS, a new connection is closed at once while the open ones keep working', async () => {
    const capped = await createTestApp({ listen: true, maxConnections: 2 });
    const cappedPort = (capped.app.server.address() as AddressInfo).port;
    const sockets = [connect(cappedPort, '127.0.0.1'), connect(cappedPort, '127.0.0.1')];
    try {
      await Promise.all(sockets.map((s) => new Promise((resolve) => s.once('connect', resolve))));
      // Let the server register both before the third arrives.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const third = connect(cappedPort, '127.0.0.1');
      third.on('error', () => {});
      let received = '';
      third.on('data', (chunk) => {
        received += chunk.toString();
      });
      third.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
      await new Promise((resolve) => third.once('close', resolve));
      expect(received).toBe('');
      const first = sockets[0] as ReturnType<typeof connect>;
      const answer = new Promise<string>((resolve) =>
        first.once('data', (chunk) => resolve(chunk.toString())),
      );
      first.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(await answer).toMatch(/^HTTP\/1\.1 200/);
    } finally {
      for (const s of sockets) s.destroy();
      await capped.close();
    }
  });
});

describe('shutdown', () => {
  it('closes although a client holds a connection it never sent a request on', async () => {
    const app = await createTestApp({ listen: true });
    const spare = connect((app.app.server.address() as AddressInfo).port, '127.0.0.1');
    await new Promise((resolve) => spare.once('connect', resolve));
    const cut = new Promise((resolve) => spare.once('close', resolve));
    // Node stops expiring connections once its server closes: before the fix this waited forever.
    await app.close();
    await cut;
    expect(spare.destroyed).toBe(true);
  });
});

describe('procedures that need no input', () => {
  it('answer a tRPC GET with no input at all', async () => {
    for (const path of [
      'workers.me',
      'workers.list',
      'projects.list',
      'tasks.list',
      'audit.list',
      'health.db',
    ]) {
      const answer = await fetch(`http://127.0.0.1:${port}/trpc/${path}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(answer.status, `${path}: ${await answer.clone().text()}`).toBe(200);
    }
  });

  it('are called from the typed client without an argument', async () => {
    const client = createTaskflowClient({ url: `http://127.0.0.1:${port}`, token });
    expect((await client.workers.me.query()).id).toBe('limits-user');
    expect((await client.tasks.list.query()).items).toEqual([]);
  });
});
