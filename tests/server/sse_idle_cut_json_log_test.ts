/**
 * An SSE idle cut-off (`http.clientIdleTimeoutMs`) writes nothing but the node's own log lines
 * (review s77 vclient, F6): `Deno.serve` prints the error of every errored body itself, outside
 * the node's logger, so under `--log-format json` a cut wrote a line that is not JSON. The cut is
 * logged through the node's log, and the stream ends with a typed `client_idle` error event and
 * `[DONE]` (what a client back from its pause reads), closed rather than errored.
 */
import { assert, assertEquals } from "./_assert.ts";
import { runLogChild } from "./_log_child.ts";
import { IDLE_MS, openIdleSseAnswer } from "./_idle_sse_answer.ts";

const JOB_ID = "ce".repeat(32);

Deno.test("SSE idle cut-off: the cut is logged through the node's log, and the stream ends with a client_idle error event and [DONE], not an error", async () => {
  let cancels = 0;
  const logged: string[] = [];
  const { reader, timers, stats } = openIdleSseAnswer(
    JOB_ID,
    () => void cancels++,
    (line) => logged.push(line),
  );
  await reader.read(); // one event, then the client reads no more
  await timers.advance(IDLE_MS);
  // The client back from its pause: what was queued, then the end.
  const rest: string[] = [];
  const decoder = new TextDecoder();
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    rest.push(decoder.decode(value));
  }
  const events = rest.join("").split("\n\n").filter((event) => event !== "");
  assertEquals(events.at(-1), "data: [DONE]");
  const error = JSON.parse(events.at(-2)!.slice("data: ".length)).error;
  assertEquals(error.code, "client_idle");
  assert(error.message.includes(JOB_ID), error.message);
  assertEquals([cancels, stats.idleTimeouts], [1, 1]);
  assertEquals(logged.length, 1, logged.join("\n"));
  assert(logged[0].includes(JOB_ID) && logged[0].includes("clientIdleTimeoutMs"), logged[0]);
});

Deno.test("SSE idle cut-off over a real server under --log-format json: every line of the node's stderr is JSON, one naming the cut job", async () => {
  const { code, out, err } = await runLogChild(
    new URL("./_sse_idle_cut_child.ts", import.meta.url),
    ["json"],
  );
  assertEquals(code, 0, err);
  const result = JSON.parse(out);
  assertEquals([result.cancelled, result.idleCuts], [true, 1]);
  const lines = err.split("\n").filter((line) => line !== "");
  const records = lines.map((line) => {
    try {
      return JSON.parse(line) as { msg?: string };
    } catch {
      throw new Error(`a stderr line that is not JSON: ${line}`);
    }
  });
  assert(
    records.some((record) =>
      record.msg?.includes(result.jobId) && record.msg.includes("clientIdleTimeoutMs")
    ),
    err,
  );
});
