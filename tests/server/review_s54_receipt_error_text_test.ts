/**
 * Review (stop 54) of what a client is told when something internal fails beside its job: a
 * finished job's receipt that could not be made (`veriflow_receipt_error` over HTTP, the
 * WebSocket `done`'s `receipt_error`) and a typed internal error (a 500: `model_load_failed`,
 * `actor_crashed`, a peer's unknown code) thrown at submission. Their text may name files,
 * internals or peers: the client gets the code, the operator the text, as for a failed job
 * (`jobFailureForClient`). The first two tests failed on the code before the fix; the last pins
 * what the fix must leave alone.
 */
import { assert, assertEquals } from "./_assert.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  JobSummary,
  StreamedToken,
} from "../../inference/inference_port.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { createApp } from "../../server/app.ts";
import { doneMessage } from "../../server/stream_protocol.ts";

const LOOPBACK = { transport: "tcp", hostname: "127.0.0.1", port: 40000 } as const;

/** What an internal failure may say that no client should read. */
const SECRET = "/var/lib/veriflow/proofs/7f3a";

const MODEL = { cid: "bafkreceipts", name: "receipts", kind: "text" } as const;

/**
 * A port whose every job streams one token and finishes (`stop`) without a receipt, `error`
 * saying why, as a job whose prover failed does; or, with `refusal`, refuses every submission.
 */
function receiptlessPort(
  error: { code: string; message: string },
  refusal?: unknown,
): InferencePort {
  let jobs = 0;
  return {
    submit: () => {
      if (refusal !== undefined) return Promise.reject(refusal);
      const jobId = String(++jobs).padStart(64, "0");
      const summary: JobSummary = {
        jobId,
        finishReason: "stop",
        usage: { promptTokens: 1, completionTokens: 1 },
        timings: { queueMs: 0, ttftMs: 0, totalMs: 1, tokensPerS: 0 },
        error,
      };
      let sent = false;
      const handle: InferenceHandle = {
        jobId,
        model: MODEL,
        promptTokens: 1,
        tokens: new ReadableStream<StreamedToken>({
          pull: (controller) => {
            if (sent) return controller.close();
            sent = true;
            controller.enqueue({ index: 0, tokenId: 0x61, text: "a", finishReason: "stop" });
          },
        }, { highWaterMark: 0 }),
        done: Promise.resolve(summary),
        cancel: () => {},
      };
      return Promise.resolve(handle);
    },
    models: () => Promise.resolve([MODEL]),
    stats: () => Promise.resolve({} as InferenceStats),
  };
}

/** POST a completion to `app` from this machine; the answer's status and text. */
async function complete(
  app: ReturnType<typeof createApp>,
  stream: boolean,
): Promise<{ status: number; text: string }> {
  const response = await app.fetch(
    new Request("http://127.0.0.1/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL.cid, prompt: "hi", max_tokens: 4, stream }),
    }),
    { remoteAddr: LOOPBACK },
  );
  return { status: response.status, text: await response.text() };
}

/** The `veriflow_receipt_error` of a JSON body, or of an SSE body's last chunk. */
function receiptErrorOf(text: string): { code: string; message: string } | undefined {
  const event = text.split("\n").findLast((line) => line.startsWith('data: {"id"'));
  return JSON.parse(event === undefined ? text : event.slice("data: ".length))
    .veriflow_receipt_error;
}

Deno.test("a finished job whose receipt failed internally (proof_store_failed, internal_error, actor_crashed) tells its client the code without the text, over JSON, SSE and the WebSocket done", async () => {
  for (const code of ["proof_store_failed", "internal_error", "actor_crashed"]) {
    const error = { code, message: `cannot write ${SECRET}/job: Not a directory (os error 20)` };
    const app = createApp({ inference: receiptlessPort(error) });
    for (const stream of [false, true]) {
      const answer = await complete(app, stream);
      assertEquals(answer.status, 200);
      assertEquals(receiptErrorOf(answer.text)?.code, code, answer.text);
      assert(!answer.text.includes(SECRET), `the answer leaks (${code}): ${answer.text}`);
    }
    const done = doneMessage("a", {
      jobId: "0".repeat(64),
      finishReason: "stop",
      usage: { promptTokens: 1, completionTokens: 1 },
      timings: { queueMs: 0, ttftMs: 0, totalMs: 1, tokensPerS: 0 },
      error,
    });
    assertEquals(done.receipt_error?.code, code);
    assert(!JSON.stringify(done).includes(SECRET), `done leaks (${code}): ${JSON.stringify(done)}`);
  }
});

Deno.test("a typed internal error (a 500) at submission is answered with its code and without its text, which the operator's log keeps once", async () => {
  const refusals = [
    new VeriflowError("model_load_failed", `cannot read model.onnx and config.json in ${SECRET}`),
    new VeriflowError("actor_crashed", `actor "node/inference" crashed: Error: open ${SECRET}`),
  ];
  for (const refusal of refusals) {
    const lines: string[] = [];
    const app = createApp({
      inference: receiptlessPort({ code: "unused", message: "" }, refusal),
      log: (line) => lines.push(line),
    });
    const answer = await complete(app, false);
    assertEquals(answer.status, 500);
    const body = JSON.parse(answer.text);
    assertEquals(body.error.code, refusal.code);
    assertEquals(body.error.type, "server_error");
    assert(!answer.text.includes(SECRET), `the body leaks: ${answer.text}`);
    // Before the fix the body had the text and the log nothing: the text is now the operator's.
    const logged = lines.filter((line) => line.includes(SECRET));
    assertEquals(logged.length, 1, `log: ${JSON.stringify(lines)}`);
    assert(logged[0].includes(refusal.code), logged[0]);
    assert(logged[0].includes("POST /v1/completions"), logged[0]);
  }
});

Deno.test("a receipt error meant for the client (a forwarded job's receipt_rejected, a prover's ask_timeout) and a 5xx refusal that says why keep their text, and only internal errors are logged", async () => {
  const meant = [
    {
      code: "receipt_rejected",
      message: "the worker's receipt: it claims 9 tokens, and 8 were relayed to the client",
    },
    { code: "ask_timeout", message: 'ask to "node/prover" timed out after 30000 ms' },
  ];
  for (const error of meant) {
    const app = createApp({ inference: receiptlessPort(error) });
    for (const stream of [false, true]) {
      assertEquals(receiptErrorOf((await complete(app, stream)).text), error);
    }
  }
  const lines: string[] = [];
  const refusal = new VeriflowError("no_worker", "no connected peer runs bafkreceipts");
  const app = createApp({
    inference: receiptlessPort({ code: "unused", message: "" }, refusal),
    log: (line) => lines.push(line),
  });
  const answer = await complete(app, false);
  assertEquals(answer.status, 503);
  assertEquals(JSON.parse(answer.text).error.message, refusal.message);
  assertEquals(lines, []);
});

Deno.test("a finished job's internal receipt failure, withheld from its client, is in the operator's log line of the job", async () => {
  const error = { code: "internal_error", message: `TypeError: cannot read ${SECRET}/job` };
  const lines: string[] = [];
  const app = createApp({ inference: receiptlessPort(error), log: (line) => lines.push(line) });
  const answer = await complete(app, false);
  assert(!answer.text.includes(SECRET), `the answer leaks: ${answer.text}`);
  await new Promise((resolve) => setTimeout(resolve, 0)); // the job's end line follows `done`
  const ended = lines.filter((line) => line.includes("ended (stop)"));
  assertEquals(ended.length, 1, `log: ${JSON.stringify(lines)}`);
  assert(ended[0].includes(`without a receipt: internal_error: ${error.message}`), ended[0]);
});
