/**
 * Review (stop 53) of what a failed job tells whom: an internal failure's text (a plain Error's
 * message, a crashed actor's reason: file paths, internals, peers) stays out of the client's
 * 500 body and SSE error event, and goes instead to the node's log line of the job, once, so the
 * operator keeps the cause; the client's own errors (and the node's 5xx that say which worker or
 * why) keep their message, which is meant for the client. The first two tests failed on the
 * code before the fix; the last pins what the fix must leave alone.
 */
import { assert, assertEquals } from "./_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ActorCrashedError } from "../../actors/errors.ts";
import { InferenceActor } from "../../actors/inference_actor.ts";
import { failingPort } from "./_failing_port.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import { createApp } from "../../server/app.ts";
import { ScriptedModel, StaticModels } from "./_fixtures.ts";

const LOOPBACK = { transport: "tcp", hostname: "127.0.0.1", port: 40000 } as const;

/** What an internal failure may say that no client should read. */
const SECRET = "/var/lib/veriflow/models/secret.onnx";

/** A model whose first step throws a plain Error naming a file, as a runtime's failure does. */
class FailingModel extends ScriptedModel {
  override generate(): ReadableStream<TokenChunk> {
    return new ReadableStream<TokenChunk>({
      pull: () => {
        throw new Error(`ENOENT: no such file or directory, open '${SECRET}'`);
      },
    });
  }
}

/** POST a completion to `app` from this machine; the answer's status and text. */
async function complete(
  app: ReturnType<typeof createApp>,
  model: string,
  stream: boolean,
): Promise<{ status: number; text: string }> {
  const response = await app.fetch(
    new Request("http://127.0.0.1/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, prompt: "hi", max_tokens: 4, stream }),
    }),
    { remoteAddr: LOOPBACK },
  );
  return { status: response.status, text: await response.text() };
}

/** The `error` member of a JSON body, or of an SSE body's error event. */
function errorOf(text: string): { code: string; message: string; type: string } {
  const event = text.split("\n").find((line) => line.startsWith('data: {"error"'));
  return JSON.parse(event === undefined ? text : event.slice("data: ".length)).error;
}

Deno.test("a job that fails with a plain Error answers 500 internal_error without its message, as JSON and as SSE, and the node's log names the cause once per job", async () => {
  const model = new FailingModel({ name: "failing" });
  const system = new ActorSystem({ name: "review-s53b" });
  try {
    const models = new StaticModels([model]);
    const inference = await system.spawn({
      name: "node/inference",
      factory: () => new InferenceActor({ models, concurrency: 1, queueLimit: 1 }),
    });
    const lines: string[] = [];
    const app = createApp({
      inference: new LocalInferencePort({ inference, models }),
      defaultModel: model.info.cid,
      log: (line) => lines.push(line),
    });
    const json = await complete(app, model.info.cid, false);
    assertEquals(json.status, 500);
    assertEquals(errorOf(json.text).code, "internal_error");
    assertEquals(errorOf(json.text).type, "server_error");
    assert(!json.text.includes(SECRET), `the body leaks: ${json.text}`);
    const sse = await complete(app, model.info.cid, true);
    assertEquals(sse.status, 200);
    assertEquals(errorOf(sse.text).code, "internal_error");
    assert(!sse.text.includes(SECRET), `the event leaks: ${sse.text}`);
    // The operator's one record of why: each failed job's line has the cause, once.
    const causes = lines.filter((line) => line.includes(SECRET));
    assertEquals(causes.length, 2, `log: ${JSON.stringify(lines)}`);
    assert(causes.every((line) => / failed after /.test(line)), JSON.stringify(causes));
  } finally {
    await system.shutdown();
  }
});

Deno.test("a job ended by a crashed actor (actor_crashed, a 500) is answered without the crash's reason, which the node's log keeps", async () => {
  const crash = new ActorCrashedError("node/inference", new Error(`cannot read ${SECRET}`));
  const lines: string[] = [];
  const app = createApp({
    inference: failingPort({ code: crash.code, message: crash.message }),
    log: (line) => lines.push(line),
  });
  for (const stream of [false, true]) {
    const answer = await complete(app, "bafkfailing", stream);
    assertEquals(answer.status, stream ? 200 : 500);
    assertEquals(errorOf(answer.text).code, "actor_crashed");
    assert(!answer.text.includes(SECRET), `the answer leaks: ${answer.text}`);
  }
  assertEquals(lines.filter((line) => line.includes(SECRET)).length, 2, JSON.stringify(lines));
});

Deno.test("a job that fails with the client's own error, or a 5xx that says which upstream, keeps its message for the client", async () => {
  const cases = [
    { code: "context_length_exceeded", message: "prompt of 90 tokens + max_tokens 40 > 64" },
    { code: "invalid_generation_params", message: "temperature must be at most 2" },
    { code: "rate_limited", message: "over 60 requests a minute for this key" },
    { code: "worker_stalled", message: "worker 1a2b… sent nothing for 30 s" },
  ];
  for (const error of cases) {
    const app = createApp({ inference: failingPort(error) });
    for (const stream of [false, true]) {
      const answer = await complete(app, "bafkfailing", stream);
      assertEquals(errorOf(answer.text).code, error.code);
      assertEquals(errorOf(answer.text).message, error.message, `${error.code}, stream ${stream}`);
    }
  }
});
