import type { Writable } from 'node:stream';
import { toEvent } from '../routers/dto.js';
import * as events from '../services/events/index.js';

export interface StreamTimings {
  /** A comment line this often keeps proxies from closing an idle stream. */
  pingMs: number;
  /** A client that has not taken what was written for this long is cut off, not buffered for. */
  stallMs: number;
}

/** Where a stream reports a cut or an error: the API's logger, or the stream process's. */
export interface StreamLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

/** The headers of every event stream, beside the server's own (security, CORS, request id). */
export const STREAM_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  // A stream is not worth keeping its connection for: when it ends (shutdown) the socket closes
  // too, instead of idling until the keep-alive timeout holds the shutdown up. The body ends with
  // the connection, so it needs no chunked framing: each event is one plain write to the socket.
  connection: 'close',
} as const;

// What the socket may hold unread before the stream waits for it (and, after `stallMs`, gives up).
const HIGH_WATER_BYTES = 256 * 1024;

// A row the shared feed hands out is the same object in every stream that may see it: each is
// serialised once, not once per stream.
const frames = new WeakMap<events.EventRow, Buffer>();

function frameOf(row: events.EventRow): Buffer {
  let frame = frames.get(row);
  if (!frame) {
    const event = toEvent(row);
    frame = Buffer.from(`id: ${event.id}\nevent: ${event.action}\ndata: ${JSON.stringify(event)}\n\n`);
    frames.set(row, frame);
  }
  return frame;
}

/**
 * Writes the body of an event stream whose head has been sent: the reconnection delay, then each
 * batch as it comes, with pings between, until the batches end, the client goes (`signal`) or stops
 * reading. Ends `out` when done.
 */
export async function writeEvents(
  batches: AsyncGenerator<events.EventRow[]>,
  out: Writable,
  timings: StreamTimings,
  signal: AbortSignal,
  log: StreamLog,
): Promise<void> {
  const ping = setInterval(() => out.write(': ping\n\n'), timings.pingMs);
  out.write('retry: 1000\n\n');
  try {
    for await (const rows of batches) {
      // What arrived together goes in one write: a socket write costs the same for one event as for
      // several, and it is most of what a stream costs.
      out.write(rows.length === 1 ? frameOf(rows[0] as events.EventRow) : Buffer.concat(rows.map(frameOf)));
      if (out.writableLength > HIGH_WATER_BYTES && !(await drained(out, timings.stallMs, signal))) {
        if (!signal.aborted)
          log.info({ stallMs: timings.stallMs }, 'event stream cut: the client stopped reading');
        out.destroy();
        return;
      }
    }
  } catch (error) {
    // Shutdown is a normal end; anything else (the database gone) ends the stream too, and the
    // client resumes from its last id.
    if (!(error instanceof events.StreamClosedError)) {
      log.warn({ errName: (error as Error).name }, 'event stream ended by an error');
    }
  } finally {
    clearInterval(ping);
    await batches.return(undefined);
    out.end();
  }
}

/** True once `out` can take more, false when it has not within `ms` (or the stream ended). */
function drained(out: Writable, ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      out.off('drain', onDrain);
      signal.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(false), ms);
    out.once('drain', onDrain);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
