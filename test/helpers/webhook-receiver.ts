import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface Received {
  /** The path it was posted to (one receiver serves several endpoints, one path each). */
  path: string;
  id: string;
  headers: Record<string, string>;
  body: string;
  /** The body as JSON. */
  json: Record<string, unknown>;
  /** Whether the `standardwebhooks` package verified it with the path's current secret. */
  verified: boolean;
  /** What the receiver answered (null: it never answered). */
  status: number | null;
  at: number;
}

/** What to answer a request: a status, or 'hang' to never answer. */
export type Answer = number | 'hang';

/**
 * A webhook receiver on 127.0.0.1 that verifies every request with the `standardwebhooks` package
 * against the secret registered for its path, records it, and answers what `answer` says.
 */
export class WebhookReceiver {
  readonly received: Received[] = [];
  private readonly secrets = new Map<string, string>();
  private readonly answers = new Map<string, (request: Received, nth: number) => Answer>();
  private readonly hanging = new Set<ServerResponse>();
  private server: Server | null = null;
  port = 0;

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** The URL of `path` on this receiver (over `host`, 127.0.0.1 by default). */
  url(path: string, host = '127.0.0.1'): string {
    return `http://${host}:${this.port}${path}`;
  }

  /** Verifies requests to `path` with `secret` from now on. */
  secret(path: string, secret: string): void {
    this.secrets.set(path, secret);
  }

  /** Answers requests to `path` with what `answer` says; `nth` counts that message's requests from 1. */
  answer(path: string, answer: (request: Received, nth: number) => Answer): void {
    this.answers.set(path, answer);
  }

  on(path: string): Received[] {
    return this.received.filter((request) => request.path === path);
  }

  /** Messages answered 2xx, by webhook-id. */
  acknowledged(path: string): string[] {
    return this.on(path)
      .filter((request) => request.status !== null && request.status >= 200 && request.status < 300)
      .map((request) => request.id);
  }

  async waitFor(condition: () => boolean, timeoutMs = 15_000, what = 'deliveries'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const path = req.url ?? '/';
    const headers = Object.fromEntries(
      Object.entries(req.headers).map(([key, value]) => [key, String(value)]),
    );
    const secret = this.secrets.get(path);
    let verified = false;
    if (secret) {
      try {
        new Webhook(secret).verify(body, headers);
        verified = true;
      } catch {
        verified = false;
      }
    }
    const request: Received = {
      path,
      id: headers['webhook-id'] ?? '',
      headers,
      body,
      json: JSON.parse(body) as Record<string, unknown>,
      verified,
      status: null,
      at: Date.now(),
    };
    const nth = this.received.filter((r) => r.path === path && r.id === request.id).length + 1;
    this.received.push(request);
    const answer = this.answers.get(path)?.(request, nth) ?? 200;
    if (answer === 'hang') {
      this.hanging.add(res);
      res.on('close', () => this.hanging.delete(res));
      return;
    }
    request.status = answer;
    // A redirect points at a path of this receiver, so a followed one would show up there.
    const location = answer >= 300 && answer < 400 ? { location: `${path}/redirected` } : {};
    res.writeHead(answer, { 'content-type': 'text/plain', ...location }).end('ok');
  }
}
