/**
 * Review at stop 53 of the error a `/v1` stream ends with when its job fails after the 200 went
 * out: its `type` must be the one the same failure gets as a non-streamed answer (OpenAI's
 * `invalid_request_error` for the request's own fault, `rate_limit_error` for a 429,
 * `server_error` for the node's), since it is all a streaming client has to decide whether
 * sending the request again can help; before, every such event said `server_error`.
 */
import { assertEquals } from "./_assert.ts";
import { createApp } from "../../server/app.ts";
import { failingPort } from "./_failing_port.ts";

const LOOPBACK = { transport: "tcp", hostname: "127.0.0.1", port: 40000 } as const;

/** The error of a failed job, as one body (with its status) and as the stream's last event. */
async function bothAnswers(code: string, path: "/v1/chat/completions" | "/v1/completions") {
  const app = createApp({
    inference: failingPort({ code, message: `the job failed (${code})` }, 1),
  });
  const request = path === "/v1/completions"
    ? { prompt: "Hi" }
    : { messages: [{ role: "user", content: "Hi" }] };
  const post = (stream: boolean) =>
    app.fetch(
      new Request(`http://127.0.0.1${path}`, {
        method: "POST",
        body: JSON.stringify({ ...request, stream }),
      }),
      { remoteAddr: LOOPBACK },
    );
  const full = await post(false);
  const fullError = (await full.json()).error;
  const streamed = await post(true);
  assertEquals(streamed.status, 200);
  const events = (await streamed.text()).split("\n\n").filter((e) => e.startsWith("data: "));
  assertEquals(events.at(-1), "data: [DONE]");
  const streamError = JSON.parse(events.at(-2)!.slice("data: ".length)).error;
  return { status: full.status, fullError, streamError };
}

Deno.test("review s53: a stream whose job fails with the request's own fault (400 invalid_generation_params) ends with an error event of type invalid_request_error, as the non-streamed answer says", async () => {
  for (const path of ["/v1/chat/completions", "/v1/completions"] as const) {
    const { status, fullError, streamError } = await bothAnswers("invalid_generation_params", path);
    assertEquals(status, 400);
    assertEquals(fullError.type, "invalid_request_error");
    assertEquals(streamError, fullError, path);
  }
});

Deno.test("review s53: a stream whose job is refused by a full queue after it started (too_many_jobs, a worker taking it over) says rate_limit_error, as the 429 does", async () => {
  const { status, fullError, streamError } = await bothAnswers(
    "too_many_jobs",
    "/v1/chat/completions",
  );
  assertEquals(status, 429);
  assertEquals(streamError, fullError);
  assertEquals(streamError.type, "rate_limit_error");
});

Deno.test("review s53: a stream whose job fails on the node's side (worker_stalled, shutting_down) still says server_error, with the same body as the non-streamed answer", async () => {
  for (const code of ["worker_stalled", "shutting_down"]) {
    const { status, fullError, streamError } = await bothAnswers(code, "/v1/chat/completions");
    assertEquals(status >= 500, true, `${code}: ${status}`);
    assertEquals(streamError, fullError);
    assertEquals(
      [streamError.type, streamError.code, streamError.param],
      ["server_error", code, null],
    );
  }
});
