import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type postgres from 'postgres';
import { Webhook } from 'standardwebhooks';

/**
 * `npm run bench -- --webhooks N`: N endpoints subscribed to every change (no project, every action),
 * all sending to one receiver in the bench process that answers 204 and verifies a sample of the
 * signatures with the `standardwebhooks` package. The endpoints are written straight to the bench
 * database, as the seed is; TaskFlow's delivery worker then sends every write the scenarios make.
 */
export interface WebhookLoad {
  /** Deliveries received, and how many of the sampled ones failed verification. */
  counts(): { received: number; badSignatures: number };
  /** What is still queued (pending) when asked. */
  pending(): Promise<number>;
  stop(): Promise<void>;
}

// Verifying costs the bench process CPU that autocannon needs: every 50th request is checked.
const VERIFY_EVERY = 50;

export async function subscribeWebhooks(sql: postgres.Sql, endpoints: number): Promise<WebhookLoad> {
  let received = 0;
  let badSignatures = 0;
  const secrets = new Map<string, Webhook>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received += 1;
      const verifier = secrets.get(req.url ?? '');
      if (received % VERIFY_EVERY === 0 && verifier) {
        try {
          verifier.verify(Buffer.concat(chunks).toString('utf8'), req.headers as Record<string, string>);
        } catch {
          badSignatures += 1;
        }
      }
      res.writeHead(204).end();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  for (let i = 0; i < endpoints; i++) {
    const secret = `whsec_${Buffer.from(`bench-webhook-secret-${i}-0123456789`).toString('base64')}`;
    const path = `/hook/${i}`;
    secrets.set(path, new Webhook(secret));
    await sql`insert into webhook_endpoints (url, secret, created_by, description)
      values (${`http://127.0.0.1:${port}${path}`}, ${secret}, 'bench', 'bench: every change')`;
  }
  return {
    counts: () => ({ received, badSignatures }),
    pending: async () => {
      const [row] = await sql<{ n: number }[]>`
        select count(*)::int as n from webhook_deliveries where state = 'pending'`;
      return row?.n ?? 0;
    },
    // The endpoints go with the bench database, which is dropped after the run.
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
