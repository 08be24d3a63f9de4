import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

/**
 * Makes `app.close()` finish within `deadlineMs` whatever clients do. Node expires connections only
 * while the server is open, so once it closes, a connection that never sent a request (a client's
 * spare keep-alive socket, opened while the shutdown began) would hold `close()` open for as long
 * as its client keeps it. Such connections carry no work: they are cut when the shutdown begins,
 * as are any opened after it; requests still running get until the deadline.
 */
export function closeConnectionsOnShutdown(app: FastifyInstance, deadlineMs: number): void {
  const sockets = new Set<Socket>();
  let closing = false;
  app.server.on('connection', (socket: Socket) => {
    if (closing) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  app.addHook('preClose', async () => {
    closing = true;
    for (const socket of sockets) if (socket.bytesRead === 0) socket.destroy();
    const deadline = setTimeout(() => app.server.closeAllConnections(), deadlineMs);
    deadline.unref();
    app.server.once('close', () => clearTimeout(deadline));
  });
}
