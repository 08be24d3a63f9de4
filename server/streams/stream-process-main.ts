import { once } from 'node:events';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { createDatabase, type Database } from '../../db/client.js';
import { tooMany } from '../errors.js';
import * as events from '../services/events/index.js';
import { refusalOf, responseHead, writeRefusal } from './answers.js';
import type {
  FromStreamProcess,
  Handover,
  LogLevel,
  StreamProcessOptions,
  ToStreamProcess,
} from './stream-process.js';
import { STREAM_HEADERS, type StreamLog, writeEvents } from './writer.js';

// The stream process (see stream-process.ts): it is handed checked stream requests with their
// connections by the API process, and writes the streams from its own event feed and database pool.

// As in the API process: the old generation grows by 60 % at a time, not several-fold.
setFlagsFromString('--heap-growing-percent=60');

/** How long a shutdown lets the streams' last writes and closes go out. */
const FLUSH_MS = 2_000;

function post(level: LogLevel, details: object, message: string): void {
  if (process.connected) process.send?.({ type: 'log', level, details, message } satisfies FromStreamProcess);
}

const log: StreamLog = {
  info: (details, message) => post('info', details, message),
  warn: (details, message) => post('warn', details, message),
};

interface Running {
  options: StreamProcessOptions;
  database: Database;
  feed: events.EventFeed;
}

let running: Promise<Running> | null = null;
const sockets = new Set<Socket>();
let closing = false;

async function start(options: StreamProcessOptions): Promise<Running> {
  const database = await createDatabase(options.database);
  return { options, database, feed: new events.EventFeed(database, { ...options.events, log }) };
}

async function serve(stream: Handover, socket: Socket): Promise<void> {
  const abort = new AbortController();
  sockets.add(socket);
  socket.once('close', () => {
    sockets.delete(socket);
    abort.abort();
  });
  // A client that resets the connection just ends its stream.
  socket.on('error', () => {});
  // Read (and drop) what the client sends, so its leaving is seen at once.
  socket.resume();
  let batches: AsyncGenerator<events.EventRow[]>;
  let options: StreamProcessOptions;
  try {
    if (!running || closing) throw new events.StreamClosedError('The server is shutting down');
    const { database, feed, options: started } = await running;
    options = started;
    if (sockets.size > options.maxStreams) {
      throw tooMany(`At most ${options.maxStreams} open event streams on this server`);
    }
    batches = await events.follow(
      { tx: database.db, actor: stream.actor, requestId: stream.requestId },
      feed,
      stream.input,
      abort.signal,
    );
  } catch (error) {
    if (error instanceof events.StreamClosedError) socket.destroy();
    else writeRefusal(socket, stream.headers, refusalOf(error, stream.requestId));
    return;
  }
  socket.write(responseHead(200, { ...stream.headers, ...STREAM_HEADERS }));
  await writeEvents(batches, socket, options.timings, abort.signal, log);
}

/** Ends every stream (its client resumes elsewhere), lets the last bytes go, and exits. */
async function close(): Promise<void> {
  if (closing) return;
  closing = true;
  try {
    const started = await running?.catch(() => null);
    await started?.feed.close();
    await Promise.race([Promise.all([...sockets].map((socket) => once(socket, 'close'))), sleep(FLUSH_MS)]);
    for (const socket of sockets) socket.destroy();
    await started?.database.close();
  } finally {
    process.exit(0);
  }
}

process.on('message', (message: ToStreamProcess, socket: Socket | undefined) => {
  if (message.type === 'start') {
    running = start(message.options);
    // Streams waiting for it are refused; the API starts another process for the next one.
    running.catch((error: Error) => {
      post('error', { errName: error.name }, 'the stream process could not open the database');
      void close();
    });
  } else if (message.type === 'stream' && socket) {
    void serve(message.stream, socket);
  } else if (message.type === 'close') {
    void close();
  }
});
// The API process is gone (or closed the channel): nothing will hand over streams any more.
process.on('disconnect', () => void close());
// A terminal's Ctrl-C reaches the whole process group: the API's shutdown ends this process, after
// its streams, so it does not die first on its own.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => {});
