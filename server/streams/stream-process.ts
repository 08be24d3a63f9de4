import { type ChildProcess, fork } from 'node:child_process';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { setPriority } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { DatabaseOptions } from '../../db/client.js';
import type { EventStreamQuery } from '../../shared/schemas/event.js';
import type { Actor } from '../auth/actor.js';
import type { EventFeedOptions } from '../services/events/index.js';
import type { StreamTimings } from './writer.js';

/**
 * The stream process's scheduling priority (nice). Below the API's: on a busy machine the API's
 * requests get the CPU first and the streams take what is left, a few milliseconds later.
 */
const STREAM_NICE = 10;

/** How long a shutdown waits for the stream process to end its streams before it is killed. */
const CLOSE_WAIT_MS = 5_000;

export interface StreamProcessOptions {
  /** Its own pool on the API's PostgreSQL database (PGlite lives inside one process only). */
  database: Extract<DatabaseOptions, { kind: 'postgres' }>;
  events: Omit<EventFeedOptions, 'log'>;
  timings: StreamTimings;
  /** Open streams it serves at most; one more is refused with 429. */
  maxStreams: number;
}

/** A checked stream request, handed over with its connection: who asks, for what, and the headers of the answer. */
export interface Handover {
  actor: Actor;
  input: EventStreamQuery;
  requestId: string;
  headers: OutgoingHttpHeaders;
}

export type LogLevel = 'info' | 'warn' | 'error';

export type ToStreamProcess =
  | { type: 'start'; options: StreamProcessOptions }
  | { type: 'stream'; stream: Handover }
  | { type: 'close' };

export type FromStreamProcess = { type: 'log'; level: LogLevel; details: object; message: string };

type Log = Record<LogLevel, (details: object, message: string) => void>;

// Run from the build, the entry is JavaScript; from the sources (tests, `npm run dev`), TypeScript through tsx.
const entry = new URL(
  import.meta.url.endsWith('.ts') ? './stream-process-main.ts' : './stream-process-main.js',
  import.meta.url,
);

/**
 * The API's side of the process that writes its event streams (REST `GET /api/events`). Started with
 * the first stream, and again with the next one if it dies (its clients reconnect and resume). Its log
 * lines come out through the API's logger.
 */
export class StreamProcess {
  private child: ChildProcess | null = null;
  private closed = false;

  constructor(
    private readonly options: StreamProcessOptions,
    private readonly log: Log,
  ) {}

  /** Gives the stream process `socket`, on which it answers `stream`; the API's copy is closed. */
  handOver(stream: Handover, socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const child = this.child ?? this.spawn();
    const message: ToStreamProcess = { type: 'stream', stream };
    // Sent as a connection of no server: Node would otherwise count it among the API server's
    // connections in the other process, and `server.close()` would wait for that process to report
    // them closed (for ever once it has exited, as net.Server does with no such process left).
    (socket as Socket & { server: unknown }).server = null;
    // keepOpen: the connection lives on in the stream process once the API closes its own descriptor,
    // and the API's server sees an ordinary close.
    child.send(message, socket, { keepOpen: true }, (error) => {
      socket.destroy();
      if (error)
        this.log.warn({ errName: error.name }, 'an event stream could not be handed to the stream process');
    });
  }

  /** Ends every stream (their clients reconnect elsewhere) and the process. */
  async close(): Promise<void> {
    this.closed = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.send({ type: 'close' } satisfies ToStreamProcess, (error) => {
      if (error) child.kill('SIGKILL');
    });
    const timeout = new AbortController();
    await Promise.race([exited, sleep(CLOSE_WAIT_MS, undefined, { signal: timeout.signal }).catch(() => {})]);
    timeout.abort();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }

  private spawn(): ChildProcess {
    const child = fork(fileURLToPath(entry), [], {
      execArgv: entry.pathname.endsWith('.ts') ? ['--import', 'tsx'] : [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child = child;
    this.log.info({ pid: child.pid }, 'event stream process started');
    try {
      if (child.pid) setPriority(child.pid, STREAM_NICE);
    } catch (error) {
      this.log.warn({ errName: (error as Error).name }, 'the stream process runs at the API priority');
    }
    child.on('message', (message: FromStreamProcess) => {
      if (message.type === 'log') this.log[message.level](message.details, message.message);
    });
    child.on('error', (error) => this.log.error({ errName: error.name }, 'the stream process failed'));
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      if (!this.closed) {
        this.log.error({ code, signal }, 'the stream process exited; the next event stream starts another');
      }
    });
    // Neither keeps the API alive: when it exits, the stream process sees the channel close and ends.
    child.unref();
    child.channel?.unref();
    child.send({ type: 'start', options: this.options } satisfies ToStreamProcess);
    return child;
  }
}
