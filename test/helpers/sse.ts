import { expect } from 'vitest';

export interface SseMessage {
  id: string | undefined;
  event: string | undefined;
  data: string;
}

/** A raw Server-Sent Events stream over fetch: every message and comment it received, as they come. */
export class SseStream {
  readonly messages: SseMessage[] = [];
  readonly comments: string[] = [];
  ended = false;
  private done: Promise<void> = Promise.resolve();

  private constructor(
    readonly response: Response,
    private readonly abort: AbortController,
  ) {}

  /** Opens the stream; a non-200 answer is returned for the caller to check, with no stream read. */
  static async open(url: string, headers: Record<string, string>): Promise<SseStream> {
    const abort = new AbortController();
    const response = await fetch(url, {
      headers: { accept: 'text/event-stream', ...headers },
      signal: abort.signal,
    });
    const stream = new SseStream(response, abort);
    if (response.status === 200 && response.body) stream.done = stream.read(response.body);
    return stream;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body) {
        buffer += decoder.decode(chunk, { stream: true });
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          this.parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf('\n\n');
        }
      }
    } catch {
      // Aborted by close(), or the server cut the connection.
    }
    this.ended = true;
  }

  private parse(block: string): void {
    const message: SseMessage = { id: undefined, event: undefined, data: '' };
    let hasData = false;
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
      else if (line.startsWith('id: ')) message.id = line.slice(4);
      else if (line.startsWith('event: ')) message.event = line.slice(7);
      else if (line.startsWith('data: ')) {
        message.data = line.slice(6);
        hasData = true;
      }
    }
    if (hasData) this.messages.push(message);
  }

  /** The data of every message, parsed. */
  get events(): any[] {
    return this.messages.map((m) => JSON.parse(m.data));
  }

  /** Waits until `n` messages have arrived (fails after `timeoutMs`). */
  async waitFor(n: number, timeoutMs = 10_000): Promise<void> {
    await expect
      .poll(() => this.messages.length, { timeout: timeoutMs, interval: 10 })
      .toBeGreaterThanOrEqual(n);
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}
