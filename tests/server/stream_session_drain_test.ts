/**
 * A WebSocket job's end when the node drains for a shutdown: a job the drain deadline cuts ends
 * with `error` `shutting_down` (its client did not cancel it); a job its client cancelled before
 * the deadline ends `done` `cancelled`, even when its end only comes after the deadline (a
 * worker's cancel can take a while to come back). The session sees a port whose jobs end only
 * when the test says, so the order is exact.
 */
import { assertEquals } from "./_assert.ts";
import { eventually } from "./_fixtures.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { LOOPBACK_CLIENT } from "../../server/client_identity.ts";
import { type SessionSocket, StreamSession } from "../../server/stream_session.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type InferenceStats,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";

const MODEL: ServedModelInfo = { cid: "bafkslowcancel", name: "slow", kind: "text" };

/** A job that streams one token, then waits; cancelled, it ends only on {@link end}. */
class SlowJob {
  cancels = 0;
  readonly #ended = Promise.withResolvers<void>();
  readonly handle: InferenceHandle;
  #tokens!: ReadableStreamDefaultController<StreamedToken>;

  constructor(jobId: string) {
    this.handle = {
      jobId,
      model: MODEL,
      promptTokens: 1,
      tokens: new ReadableStream<StreamedToken>({
        start: (c) => {
          this.#tokens = c;
          c.enqueue({ index: 0, tokenId: 0x61, text: "a" });
        },
        // The session cancels a job by cancelling its tokens.
        cancel: () => void this.cancels++,
      }),
      done: this.#ended.promise.then(() => ({
        jobId,
        finishReason: "cancelled" as const,
        usage: { promptTokens: 1, completionTokens: 1 },
        timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
      })),
      cancel: () => void this.cancels++,
    };
  }

  /** The cancelled job's end comes back. */
  end(): void {
    if (this.cancels === 0) this.#tokens.close();
    this.#ended.resolve();
  }
}

class SlowPort implements InferencePort {
  readonly jobs: SlowJob[] = [];
  submit(job: TextJob): Promise<InferenceHandle> {
    const slow = new SlowJob(String(this.jobs.length).padStart(64, "0"));
    this.jobs.push(slow);
    void job;
    return Promise.resolve(slow.handle);
  }
  models(): Promise<readonly ServedModelInfo[]> {
    return Promise.resolve([MODEL]);
  }
  stats(): Promise<InferenceStats> {
    return Promise.resolve(emptyInferenceStats());
  }
}

class OpenSocket implements SessionSocket {
  readyState: number = WebSocket.OPEN;
  bufferedAmount = 0;
  readonly sent: Record<string, unknown>[] = [];
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }
  close(): void {
    this.readyState = WebSocket.CLOSED;
    this.onclose?.(new CloseEvent("close"));
  }
  receive(message: unknown): void {
    this.onmessage?.(new MessageEvent("message", { data: JSON.stringify(message) }));
  }
  /** The job's last message (its `done` or `error`). */
  endOf(id: string): Record<string, unknown> | undefined {
    return this.sent.findLast((m) => m.id === id && (m.type === "done" || m.type === "error"));
  }
}

function session(): { socket: OpenSocket; port: SlowPort; session: StreamSession } {
  const socket = new OpenSocket();
  const port = new SlowPort();
  const s = new StreamSession(socket, new InferenceGateway({ inference: port }), {
    maxMessageBytes: 1 << 20,
    idleTimeoutMs: 600_000,
    client: LOOPBACK_CLIENT,
    stats: new EdgeStats(),
  });
  return { socket, port, session: s };
}

Deno.test("a WebSocket job its client cancelled before the drain deadline ends done cancelled, though its end comes after the deadline; one the deadline cut ends shutting_down", async () => {
  const { socket, port, session: s } = session();
  socket.receive({ type: "infer", id: "mine", model: "slow", prompt: "x", max_tokens: 8 });
  socket.receive({ type: "infer", id: "cut", model: "slow", prompt: "x", max_tokens: 8 });
  await eventually(
    () => socket.sent.filter((m) => m.type === "token").length === 2,
    "both jobs' first token",
  );
  // The client cancels "mine"; the worker's cancel is slow to come back.
  socket.receive({ type: "cancel", id: "mine" });
  await eventually(() => port.jobs[0].cancels === 1, "the cancel reached the job");
  const timeUp = new AbortController();
  const draining = s.drain(timeUp.signal);
  timeUp.abort();
  await eventually(() => port.jobs[1].cancels === 1, "the deadline cancelled the other job");
  port.jobs[0].end();
  port.jobs[1].end();
  await eventually(() => socket.readyState === WebSocket.CLOSED, "the drained socket closed");
  await draining;
  const mine = socket.endOf("mine");
  assertEquals([mine?.type, mine?.finish_reason], ["done", "cancelled"], JSON.stringify(mine));
  const cut = socket.endOf("cut");
  assertEquals([cut?.type, cut?.code], ["error", "shutting_down"], JSON.stringify(cut));
});
