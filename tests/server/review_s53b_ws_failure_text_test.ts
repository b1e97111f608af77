/**
 * A failed job's text over the WebSocket API follows the HTTP API's rule
 * (`review_s53b_job_failure_text_test.ts`): an internal failure's message (a crashed actor's
 * reason, a plain Error's: file paths, internals, peers) is not sent to the client, whose error
 * message says only that the node failed; the client's own errors keep theirs.
 */
import { assert, assertEquals } from "./_assert.ts";
import { ActorCrashedError } from "../../actors/errors.ts";
import { failingPort } from "./_failing_port.ts";
import { createApp } from "../../server/app.ts";
import { WsProbe } from "./_ws_probe.ts";

/** What an internal failure may say that no client should read. */
const SECRET = "/var/lib/veriflow/models/secret.onnx";

/** The `error` message ending one WebSocket job on a node whose jobs fail with `error`. */
async function wsFailure(error: { code: string; message: string }) {
  const app = createApp({ inference: failingPort(error), log: () => {} });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request, info) => app.fetch(request, info),
  );
  try {
    const ws = await WsProbe.open(`ws://127.0.0.1:${server.addr.port}/v1/stream`);
    try {
      ws.send({ type: "infer", id: "a", model: "bafkfailing", prompt: "hi", max_tokens: 2 });
      return await ws.next((m) => m.type === "error" && "id" in m && m.id === "a") as {
        code: string;
        message: string;
      };
    } finally {
      ws.socket.close();
      await ws.closed;
    }
  } finally {
    await server.shutdown();
  }
}

Deno.test("a WebSocket job ended by an internal failure (a crashed actor) is told its code without the failure's text", async () => {
  const crash = new ActorCrashedError("node/inference", new Error(`cannot read ${SECRET}`));
  const error = await wsFailure({ code: crash.code, message: crash.message });
  assertEquals(error.code, "actor_crashed");
  assert(!error.message.includes(SECRET), `the message leaks: ${error.message}`);
  const plain = await wsFailure({ code: "internal_error", message: `ENOENT: open '${SECRET}'` });
  assertEquals(plain.code, "internal_error");
  assert(!plain.message.includes(SECRET), `the message leaks: ${plain.message}`);
});

Deno.test("a WebSocket job that fails with the client's own error keeps its message", async () => {
  const message = "prompt is 5000 tokens, the model's context is 2048";
  const error = await wsFailure({ code: "context_length_exceeded", message });
  assertEquals(error.code, "context_length_exceeded");
  assertEquals(error.message, message);
});
