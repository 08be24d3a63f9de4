/**
 * The fan-out scenario of `npm run bench` (`--scenarios fanout`): 1 000 Server-Sent Event streams
 * open on one TaskFlow instance (the seeded workers, five streams each, every one seeing the events of
 * its worker's five projects) while 200 changes/s are written through the API (tasks created by
 * members in their projects). Measured:
 *
 * - commit-to-delivery: from the audit row's `at` (its transaction's start, so a little more than
 *   from the commit) to the moment a subscriber has read the event, p50 / p99 over every delivery;
 * - that every event reached every stream that may see it, none twice;
 * - the API's own numbers: the writes' rate reached and their latency, with the streams open beside
 *   the same writes without them, run before the streams open and after they close (the lower p99
 *   of the two counts); a saturating load beside them would measure how the two share a busy
 *   machine's cores rather than what the streams cost;
 * - TaskFlow's peak RSS with the streams open, and its CPU time: the API process and its stream
 *   process (on PostgreSQL, the streams are written there) together.
 *
 * The subscribers run in a child process (this file, run with `--fanout-clients`), so reading 1 000
 * streams does not slow the load generator that measures the API.
 */
import { type ChildProcess, fork } from 'node:child_process';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { percentile, pick } from './sampling.js';

export const FANOUT = { streamsPerWorker: 5, subscribers: 1000, writesPerSecond: 200 };
export const FANOUT_TARGET = { deliveryP99Ms: 100, apiShare: 0.85, rssMb: 300 };

export interface ApiMeasure {
  /** The rate the writes reached (below the target when the server could not keep up). */
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  statuses: Record<string, number>;
  /** TaskFlow's CPU time over the window per write: what a busy machine distorts least. */
  cpuMsPerWrite: number;
}

export interface FanoutServer {
  url: string;
  rss: { reset(): void; readonly peak: number };
  /** User + system CPU time so far (ms) of the process and its stream process. */
  cpuMs(): number;
  stop(): Promise<void>;
}

export interface FanoutInput {
  /** Starts the TaskFlow instance under test with this extra env. */
  start(env: Record<string, string>): Promise<FanoutServer>;
  tokens: Map<string, string>;
  membership: Map<string, string[]>;
  seconds: number;
  warmup: number;
}

export interface FanoutResult {
  subscribers: number;
  writesPerSecond: number;
  delivery: { p50: number; p99: number; count: number; perSecond: number };
  /** Deliveries owed (every write × the streams that may see it) and received, once the writes stopped. */
  complete: { expected: number; received: number; duplicates: number };
  /** The writes, without streams and with them. */
  api: { without: ApiMeasure; with: ApiMeasure; share: number; p99Ratio: number };
  /** The p99 of the writes alone before the streams opened and after they closed. */
  withoutP99s: [number, number];
  rssMb: number;
}

/** Writes in flight at most: a server that cannot keep up shows as a lower rate, not as a queue here. */
const MAX_IN_FLIGHT = 64;

// --- the writer: new tasks at a steady rate, from the seeded workers, in their projects -----------

class Writer {
  private sent = 0;
  /** Deliveries owed for the writes that succeeded: one per stream that may see each. */
  owed = 0;
  private began = 0;
  private ended = 0;
  /** What the measured window saw (the warm-up's answers are not counted). */
  private window = {
    began: 0,
    sent: 0,
    latencies: [] as number[],
    errors: 0,
    statuses: {} as Record<string, number>,
  };
  private readonly pending = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT });

  constructor(
    private readonly url: URL,
    private readonly input: FanoutInput,
    private readonly streamsOf: Map<string, number>,
  ) {}

  start(): void {
    this.began = performance.now();
    const workers = [...this.input.membership.keys()];
    this.timer = setInterval(() => {
      const due = Math.floor(((performance.now() - this.began) * FANOUT.writesPerSecond) / 1000);
      while (this.sent < due && this.pending.size < MAX_IN_FLIGHT) this.write(pick(workers));
    }, 5);
  }

  /** Starts the measured window (after the warm-up). */
  measure(): void {
    this.window = { began: performance.now(), sent: this.sent, latencies: [], errors: 0, statuses: {} };
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.ended = performance.now();
    await Promise.all(this.pending);
    this.agent.destroy();
  }

  stats(cpuMs: number): ApiMeasure {
    const { began, sent, latencies, errors, statuses } = this.window;
    const sorted = Float64Array.from(latencies).sort();
    return {
      cpuMsPerWrite: cpuMs / Math.max(1, this.sent - sent),
      rps: ((this.sent - sent) * 1000) / (this.ended - began),
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      errors,
      statuses,
    };
  }

  private write(worker: string): void {
    const project = pick(this.input.membership.get(worker) ?? []);
    // A new task: any member may create one (editing is for its creator, holder or the owners).
    const body = JSON.stringify({ title: `fan-out ${this.sent}`, projectSlug: project, labels: ['fanout'] });
    this.sent += 1;
    const started = performance.now();
    const done = new Promise<void>((resolve) => {
      const request = http.request(
        new URL('/api/tasks', this.url),
        {
          method: 'POST',
          agent: this.agent,
          headers: {
            authorization: `Bearer ${this.input.tokens.get(worker)}`,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
        },
        (response) => {
          response.resume();
          response.on('end', () => {
            const window = this.window;
            const status = String(response.statusCode);
            window.statuses[status] = (window.statuses[status] ?? 0) + 1;
            if (response.statusCode === 201) {
              if (started >= window.began) window.latencies.push(performance.now() - started);
              this.owed += this.streamsOf.get(project) ?? 0;
            } else {
              window.errors += 1;
            }
            resolve();
          });
        },
      );
      request.on('error', () => {
        this.window.errors += 1;
        resolve();
      });
      request.end(body);
    });
    this.pending.add(done);
    void done.then(() => this.pending.delete(done));
  }
}

// --- the subscribers, in a child process ----------------------------------------------------------

type ToClients = { type: 'open'; url: string; tokens: string[] } | { type: 'measure' } | { type: 'report' };
type FromClients =
  | { type: 'opened'; ok: number; failed: number }
  | { type: 'report'; received: number; duplicates: number; latencies: number[] };

function clients(): void {
  const latencies: number[] = [];
  let measuring = false;
  let received = 0;
  let duplicates = 0;
  const send = (message: FromClients) => process.send?.(message);

  function follow(url: string, token: string): Promise<boolean> {
    const seen = new Set<string>();
    return new Promise((resolve) => {
      const request = http.get(
        `${url}/api/events`,
        { agent: false, headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` } },
        (response) => {
          resolve(response.statusCode === 200);
          response.setEncoding('utf8');
          let buffer = '';
          response.on('data', (chunk: string) => {
            const now = Date.now();
            buffer += chunk;
            for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
              const block = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              if (!block.startsWith('id: ')) continue;
              const id = block.slice(4, block.indexOf('\n'));
              if (seen.has(id)) duplicates += 1;
              seen.add(id);
              received += 1;
              const at = block.indexOf('"at":"');
              if (measuring && at >= 0) latencies.push(now - Date.parse(block.slice(at + 6, at + 30)));
            }
          });
        },
      );
      request.on('error', () => resolve(false));
    });
  }

  process.on('message', async (message: ToClients) => {
    if (message.type === 'open') {
      let ok = 0;
      // Opened fifty at a time: a thousand handshakes at once would measure the accept queue.
      for (let i = 0; i < message.tokens.length; i += 50) {
        const results = await Promise.all(message.tokens.slice(i, i + 50).map((t) => follow(message.url, t)));
        ok += results.filter(Boolean).length;
      }
      send({ type: 'opened', ok, failed: message.tokens.length - ok });
    } else if (message.type === 'measure') {
      measuring = true;
    } else {
      send({ type: 'report', received, duplicates, latencies: latencies.splice(0) });
    }
  });
}

class Clients {
  private readonly child: ChildProcess;
  constructor() {
    this.child = fork(fileURLToPath(import.meta.url), ['--fanout-clients'], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
  }
  ask<T extends FromClients['type']>(
    message: ToClients,
    answer: T,
  ): Promise<Extract<FromClients, { type: T }>> {
    return new Promise((resolve) => {
      const onMessage = (reply: FromClients) => {
        if (reply.type !== answer) return;
        this.child.off('message', onMessage);
        resolve(reply as Extract<FromClients, { type: T }>);
      };
      this.child.on('message', onMessage);
      this.child.send(message);
    });
  }
  tell(message: ToClients): void {
    this.child.send(message);
  }
  async stop(): Promise<void> {
    // A child killed by a signal has no exit code, only the signal's name.
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}

// --- the scenario ---------------------------------------------------------------------------------

export async function runFanout(input: FanoutInput): Promise<FanoutResult> {
  const workers = [...input.membership.keys()];
  const subscribers = Math.min(FANOUT.subscribers, workers.length * FANOUT.streamsPerWorker);
  const streamTokens = Array.from(
    { length: subscribers },
    (_, i) => input.tokens.get(workers[i % workers.length] as string) ?? '',
  );
  // The streams each project's events reach: FANOUT.streamsPerWorker per member.
  const streamsOf = new Map<string, number>();
  workers.forEach((worker, i) => {
    const streams = Math.floor(subscribers / workers.length) + (i < subscribers % workers.length ? 1 : 0);
    for (const project of input.membership.get(worker) ?? []) {
      streamsOf.set(project, (streamsOf.get(project) ?? 0) + streams);
    }
  });
  /** Writes for the warm-up and the measured window; the server's CPU time over the window. */
  const writeFor = async (server: FanoutServer, writer: Writer, measuring?: () => void): Promise<number> => {
    writer.start();
    await sleep(input.warmup * 1000);
    writer.measure();
    measuring?.();
    const cpu = server.cpuMs();
    await sleep(input.seconds * 1000);
    return server.cpuMs() - cpu;
  };

  // Room for the streams beside the writes' connections; five streams per worker fit the default cap.
  const server = await input.start({ MAX_CONNECTIONS: String(subscribers + 1000) });
  const clients = new Clients();
  /** The writes with no stream open. */
  const writeAlone = async (): Promise<ApiMeasure> => {
    const alone = new Writer(new URL(server.url), input, new Map());
    const cpu = await writeFor(server, alone);
    await alone.stop();
    return alone.stats(cpu);
  };
  try {
    const before = await writeAlone();
    // The streams start at the present: let the last writes settle first, so none of them is counted.
    await sleep(1_000);
    const opened = await clients.ask({ type: 'open', url: server.url, tokens: streamTokens }, 'opened');
    if (opened.failed > 0) throw new Error(`fanout: ${opened.failed} of ${subscribers} streams were refused`);
    const writer = new Writer(new URL(server.url), input, streamsOf);
    server.rss.reset();
    let started = 0;
    const cpu = await writeFor(server, writer, () => {
      clients.tell({ type: 'measure' });
      started = performance.now();
    });
    const { latencies } = await clients.ask({ type: 'report' }, 'report');
    const elapsed = (performance.now() - started) / 1000;
    await writer.stop();
    const measured = writer.stats(cpu);
    // Every write has been answered: what is owed arrives within moments, or is missing.
    let last = await clients.ask({ type: 'report' }, 'report');
    for (let waited = 0; last.received < writer.owed && waited < 10_000; waited += 200) {
      await sleep(200);
      last = await clients.ask({ type: 'report' }, 'report');
    }
    // The writes alone once more, the streams closed: a stall in one window (a fresh process, the
    // database's own background work) would otherwise stand as the API's p99 without streams. The
    // steadier of the two is compared with.
    await clients.stop();
    await sleep(1_000);
    const after = await writeAlone();
    const without = after.p99 < before.p99 ? after : before;
    const sorted = Float64Array.from(latencies).sort();
    return {
      subscribers,
      writesPerSecond: FANOUT.writesPerSecond,
      delivery: {
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        count: sorted.length,
        perSecond: sorted.length / elapsed,
      },
      complete: { expected: writer.owed, received: last.received, duplicates: last.duplicates },
      api: {
        without,
        with: measured,
        // Above the target is a warm-up's backlog caught up: both count as having kept the rate.
        share: Math.min(measured.rps, FANOUT.writesPerSecond) / Math.min(without.rps, FANOUT.writesPerSecond),
        p99Ratio: measured.p99 / without.p99,
      },
      withoutP99s: [before.p99, after.p99],
      rssMb: server.rss.peak,
    };
  } finally {
    await clients.stop();
    await server.stop();
  }
}

// --- reporting ------------------------------------------------------------------------------------

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '—');

export function fanoutLine(r: FanoutResult): string {
  const { without, with: beside } = r.api;
  return `fanout ${r.subscribers} streams: delivery p50 ${fmt(r.delivery.p50)} ms p99 ${fmt(r.delivery.p99)} ms (${fmt(
    r.delivery.perSecond,
  )}/s, ${r.complete.received}/${r.complete.expected} delivered, ${r.complete.duplicates} twice) | writes ${fmt(
    beside.rps,
  )}/s p50 ${fmt(beside.p50, 2)} p99 ${fmt(beside.p99, 2)} with streams, ${fmt(without.rps)}/s p50 ${fmt(
    without.p50,
    2,
  )} p99 ${fmt(without.p99, 2)} without (runs ${r.withoutP99s.map((p) => fmt(p, 2)).join(' / ')}), err ${beside.errors}/${without.errors} | cpu ${fmt(
    without.cpuMsPerWrite,
    2,
  )}/${fmt(beside.cpuMsPerWrite, 2)} ms per write | rss ${fmt(r.rssMb)} MB`;
}

export function fanoutVerdicts(r: FanoutResult): [boolean, string][] {
  const { without, with: beside } = r.api;
  return [
    [
      r.delivery.p99 < FANOUT_TARGET.deliveryP99Ms,
      `fan-out: ${r.subscribers} streams, ${r.writesPerSecond} writes/s: commit-to-delivery p50 ${fmt(r.delivery.p50)} ms, p99 ${fmt(r.delivery.p99)} ms (< 100)`,
    ],
    [
      r.complete.received === r.complete.expected && r.complete.duplicates === 0,
      `fan-out: ${r.complete.received} of ${r.complete.expected} deliveries owed arrived, ${r.complete.duplicates} twice`,
    ],
    [
      r.api.share >= FANOUT_TARGET.apiShare &&
        r.api.p99Ratio <= 1 / FANOUT_TARGET.apiShare &&
        beside.errors === 0,
      `fan-out: the writes beside the streams ${fmt(beside.rps)}/s p99 ${fmt(beside.p99, 2)} ms, without them ${fmt(without.rps)}/s p99 ${fmt(without.p99, 2)} ms: ${fmt(r.api.share * 100)} % of the rate, p99 ${fmt(r.api.p99Ratio, 2)}× (within 15 %), ${beside.errors} errors`,
    ],
    [
      r.rssMb < FANOUT_TARGET.rssMb,
      `fan-out: TaskFlow peak RSS ${fmt(r.rssMb)} MB with the streams open (< 300)`,
    ],
  ];
}

export function fanoutMarkdown(r: FanoutResult): string[] {
  const { without, with: beside } = r.api;
  return [
    `Fan-out: ${r.subscribers} SSE streams on one instance (${FANOUT.streamsPerWorker} per seeded worker, each seeing its worker's five projects) while ${r.writesPerSecond} changes/s are written through the API (POST /api/tasks by members).`,
    '',
    '| | without streams (the lower p99 of a run before and one after) | with streams |',
    '| --- | ---: | ---: |',
    `| writes/s reached (target ${r.writesPerSecond}) | ${fmt(without.rps)} | ${fmt(beside.rps)} (${fmt(r.api.share * 100)} %) |`,
    `| write p50 / p99 (ms) | ${fmt(without.p50, 2)} / ${fmt(without.p99, 2)} | ${fmt(beside.p50, 2)} / ${fmt(beside.p99, 2)} (${fmt(r.api.p99Ratio, 2)}×) |`,
    `| write errors | ${without.errors} | ${beside.errors} |`,
    `| TaskFlow CPU ms per write (API + stream process; with the streams, their deliveries too) | ${fmt(without.cpuMsPerWrite, 2)} | ${fmt(beside.cpuMsPerWrite, 2)} |`,
    `| commit-to-delivery p50 / p99 (ms) | | ${fmt(r.delivery.p50)} / ${fmt(r.delivery.p99)} |`,
    `| deliveries/s | | ${fmt(r.delivery.perSecond)} |`,
    `| delivered of owed (repeated) | | ${r.complete.received} of ${r.complete.expected} (${r.complete.duplicates}) |`,
    `| TaskFlow peak RSS, API + stream process (MB) | | ${fmt(r.rssMb)} |`,
    '',
  ];
}

if (process.argv.includes('--fanout-clients')) clients();
