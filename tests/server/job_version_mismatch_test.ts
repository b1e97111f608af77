/**
 * What a client is told when every worker asked was too old to read a field of its job
 * (`job_version_mismatch`, review s81 vwire2 F2): a 503 `server_error` naming the field, over
 * JSON, SSE and the WebSocket API. Before, the code had no status: a 500 whose message the edge
 * replaced with "internal server error", so the client never learnt which field.
 */
import assert from "node:assert/strict";
import { JobVersionMismatchError } from "../../inference/errors.ts";
import { createApp } from "../../server/app.ts";
import { errorResponse } from "../../server/http_errors.ts";
import { REFUSING_PORT_MODEL, refusingPort } from "./_refusing_port.ts";
import { WsProbe } from "./_ws_probe.ts";

const WORKER_WORDS =
  'invalid body for "inference.submit": job.params.minP: unknown field (from a later version?)';

/** What a router's port rejects the job with once every worker refused it so. */
function tooOld(): JobVersionMismatchError {
  return new JobVersionMismatchError("job.params.minP", WORKER_WORDS);
}

Deno.test("a job every worker is too old for is answered 503 server_error naming the field, as JSON and as SSE, without Retry-After", async () => {
  const app = createApp({ inference: refusingPort(tooOld), log: () => {} });
  for (const stream of [false, true]) {
    const response = await app.fetch(
      new Request("http://127.0.0.1/v1/completions", {
        method: "POST",
        headers: { "content-type": "application/json", host: "127.0.0.1" },
        body: JSON.stringify({
          model: REFUSING_PORT_MODEL.name,
          prompt: "hi",
          max_tokens: 1,
          stream,
        }),
      }),
      { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } },
    );
    const { error } = await response.json();
    assert.deepEqual(
      [stream, response.status, error.type, error.code, response.headers.get("retry-after")],
      [stream, 503, "server_error", "job_version_mismatch", null],
    );
    assert.match(error.message, /job\.params\.minP/, `stream ${stream}: ${error.message}`);
  }
  assert.equal(errorResponse(tooOld()).status, 503);
});

Deno.test("a WebSocket job every worker is too old for is told job_version_mismatch naming the field", async () => {
  const app = createApp({ inference: refusingPort(tooOld), log: () => {} });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request, info) => app.fetch(request, info),
  );
  try {
    const ws = await WsProbe.open(`ws://127.0.0.1:${server.addr.port}/v1/stream`);
    try {
      ws.send({
        type: "infer",
        id: "a",
        model: REFUSING_PORT_MODEL.name,
        prompt: "hi",
        max_tokens: 2,
      });
      const error = await ws.next((m) => m.type === "error" && "id" in m && m.id === "a") as {
        code: string;
        message: string;
      };
      assert.equal(error.code, "job_version_mismatch");
      assert.match(error.message, /job\.params\.minP/, error.message);
    } finally {
      ws.socket.close();
      await ws.closed;
    }
  } finally {
    await server.shutdown();
  }
});
