/**
 * An SSE idle cut-off (`http.clientIdleTimeoutMs`) ends the stream with a typed `client_idle`
 * error event naming the job (review s77 sse, F2), and the node's log tells the cut in one line:
 * the body is closed, not errored, because `Deno.serve` prints an errored body's error itself,
 * outside the node's log (review s77 vclient, F6).
 */
import { assert, assertEquals } from "./_assert.ts";
import { runLogChild } from "./_log_child.ts";
import { IDLE_MS, openIdleSseAnswer } from "./_idle_sse_answer.ts";

const JOB_ID = "cd".repeat(32);

Deno.test("SSE idle cut-off: the stream ends with a typed client_idle error event naming the job, and the job is cancelled", async () => {
  let cancels = 0;
  const { reader, timers, stats } = openIdleSseAnswer(JOB_ID, () => void cancels++);
  await reader.read(); // one event, then the client reads no more
  await timers.advance(IDLE_MS);
  // Ended by a typed event, not an errored body, which `Deno.serve` would print (review s77
  // vclient, F6; `sse_idle_cut_json_log_test.ts`).
  let text = "";
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    text += new TextDecoder().decode(read.value);
  }
  const events = text.split("\n\n").filter((event) => event !== "");
  assertEquals(events.at(-1), "data: [DONE]");
  const error = JSON.parse(events.at(-2)!.slice("data: ".length)).error;
  assertEquals(error.code, "client_idle");
  assert(error.message.includes(JOB_ID), error.message);
  assertEquals([cancels, stats.idleTimeouts], [1, 1]);
});

Deno.test("SSE idle cut-off over a real server: the node's log gets one line naming the job, no stack trace; the job is cancelled and counted", async () => {
  const { code, out, err } = await runLogChild(
    new URL("./_sse_idle_cut_child.ts", import.meta.url),
  );
  assertEquals(code, 0, err);
  const result = JSON.parse(out);
  assertEquals([result.cancelled, result.idleCuts], [true, 1]);
  const lines = err.split("\n").filter((line) => line.trim() !== "");
  assertEquals(lines.filter((line) => /^\s+at /.test(line)), [], err);
  // The node's log line of the cut (text format), and nothing `Deno.serve` printed itself.
  const cuts = lines.filter((line) => line.includes("clientIdleTimeoutMs"));
  assertEquals(cuts.length, 1, err);
  assert(cuts[0].includes(result.jobId), err);
  assert(!err.includes("ClientIdleError"), err);
});
