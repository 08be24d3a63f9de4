import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on a loopback port in front of a real server (PostgreSQL here), to simulate an
 * outage without touching the server: `cut()` kills every connection and stops listening (the
 * port refuses, as when the database is down); `stall()` stops forwarding on open connections and
 * accepts new ones without ever forwarding a byte (a hung server or a black-holed network);
 * `restore()` resets whatever a stall held and forwards again, on the same port.
 */
export class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly pairs = new Set<[Socket, Socket]>();
  private mode: 'forward' | 'stall' = 'forward';
  port = 0;
  /** Connections accepted so far (whatever the mode). */
  connections = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<void> {
    const server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('proxy has no port');
    this.port = address.port;
    this.server = server;
  }

  /** The database is gone: open connections die and the port refuses new ones. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : null;
    this.destroyAll();
    await closed;
  }

  /** The database hangs: nothing more goes through open connections, new ones are never answered. */
  async stall(): Promise<void> {
    this.mode = 'stall';
    for (const [client, upstream] of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
    if (!this.server) await this.start();
  }

  /** Forwarding again, on the same port. */
  async restore(): Promise<void> {
    this.mode = 'forward';
    this.destroyAll(); // connections held by a stall would never be forwarded
    if (!this.server) await this.start();
  }

  async close(): Promise<void> {
    await this.cut();
  }

  private accept(client: Socket): void {
    this.connections += 1;
    this.track(client);
    client.on('error', () => client.destroy());
    if (this.mode === 'stall') return;
    const upstream = createConnection(this.target);
    this.track(upstream);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    client.once('close', () => this.pairs.delete(pair));
    client.pipe(upstream);
    upstream.pipe(client);
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    this.pairs.clear();
  }
}
