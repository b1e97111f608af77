/**
 * A child process for `sse_idle_cut_log_test.ts`: the real app and server, one SSE client that
 * stops reading until the node cuts it off (`http.clientIdleTimeoutMs`), then reads on to the
 * end, as a client back from a pause does. What `Deno.serve` prints of the errored body goes to
 * this process's stderr, which the test reads; stdout gets one JSON line: the job's id, whether it
 * was cancelled, and the idle cut-offs counted.
 *
 * @module
 */
import { createApp } from "../../server/app.ts";
import { lineLogger } from "../../node/log_format.ts";
import { serve } from "../../server/serve.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  JobSummary,
} from "../../inference/inference_port.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { eventually } from "../_helpers/wait.ts";

/** The idle time: any; the clock is the test's. */
const IDLE_MS = 1000;
/**
 * Text of each token: 256 KiB, so a client that reads nothing fills the socket buffers between
 * it and the node (a few MiB over loopback) within a few dozen tokens, and the node stops pulling.
 */
const TOKEN_TEXT = "a".repeat(256 * 1024);
/** Tokens the job would make: far more than the socket buffers hold. */
const MAX_TOKENS = 4096;

const JOB_ID = "c1".repeat(32);
const model = { cid: "bafkidlecut", name: "idle-cut", kind: "text", contextLength: 8192 } as const;
let cancelled = false;
const done = Promise.withResolvers<JobSummary>();
const summary = (): JobSummary => ({
  jobId: JOB_ID,
  finishReason: "cancelled",
  usage: { promptTokens: 1, completionTokens: 0 },
  timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
});
let made = 0;
const port: InferencePort = {
  submit: (): Promise<InferenceHandle> =>
    Promise.resolve({
      jobId: JOB_ID,
      model,
      promptTokens: 1,
      tokens: new ReadableStream({
        pull(controller) {
          if (made === MAX_TOKENS) return controller.close();
          controller.enqueue({ index: made++, tokenId: 0x61, text: TOKEN_TEXT });
        },
      }, { highWaterMark: 0 }),
      done: done.promise,
      cancel: () => {
        cancelled = true;
        done.resolve(summary());
      },
    }),
  models: () => Promise.resolve([model]),
  stats: () => Promise.resolve({} as InferenceStats),
};

const timers = new ManualTimers();
// The node's log, as `node/http_listener.ts` gives it to the app and the server: in the format
// the first argument names (`json` as --log-format json; default text).
const log = lineLogger(Deno.args[0] === "json" ? "json" : "text", (line) => console.error(line));
const app = createApp({
  log,
  inference: port,
  defaultModel: model.cid,
  edge: { clientIdleTimeoutMs: IDLE_MS },
  timers,
});
const abort = new AbortController();
const server = serve({ app, port: 0, signal: abort.signal, log });
const body = JSON.stringify({ prompt: "x", max_tokens: MAX_TOKENS, stream: true });
const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(server.url).port) });
await conn.write(new TextEncoder().encode(
  `POST /v1/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n` +
    `content-length: ${body.length}\r\n\r\n${body}`,
));
// The client reads nothing: each step of the clock past the idle time finds the stream waiting on
// it once the socket buffers are full (or between two writes before), and cuts it off.
await eventually(async () => {
  await timers.advance(IDLE_MS);
  return cancelled;
}, "the idle client cut off");
// Back from its pause, the client reads on to the stream's end: its last events (the cut's
// `client_idle` error and `[DONE]`), or the connection's end.
const buffer = new Uint8Array(1 << 16);
let tail = "";
try {
  for (let n; (n = await conn.read(buffer)) !== null;) {
    tail = (tail + new TextDecoder().decode(buffer.subarray(0, n))).slice(-4096);
    if (tail.includes("data: [DONE]")) break;
  }
} catch {
  // Reset rather than closed: the end is the same for this test.
}
conn.close();
abort.abort();
await server.finished;
const metricsResponse = await app.fetch(new Request("http://127.0.0.1/metrics"), {
  remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
} as Deno.ServeHandlerInfo<Deno.NetAddr>);
const metrics = await metricsResponse.text();
const idleCuts = Number(/^veriflow_http_idle_timeouts_total (\d+)$/m.exec(metrics)?.[1]);
const lastEvents = tail.split("\n\n").filter((event) => event !== "").slice(-2);
console.log(JSON.stringify({ jobId: JOB_ID, cancelled, idleCuts, lastEvents }));
