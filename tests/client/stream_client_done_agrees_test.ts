/**
 * A job's `done` and `start` must agree with each other and with the job (red-team review s77,
 * F1 and F2): a `cancelled` done counts no more tokens than the job's bound, and more than came
 * only after the client sent `cancel`; a job has one `start`, and its `done` names that start's
 * `job_id`. Anything else is a faulty or hostile server's, and a program that bills by `usage`
 * or logs `done.job_id` must not be handed it.
 */
import { StreamClient } from "../../client/stream_client.ts";
import { assertEquals } from "../server/_assert.ts";
import { doneFrame, startFrame, tokenFrame } from "./_stub_servers.ts";
import { assertProtocolError, jobAgainst } from "./_job_against.ts";

const OTHER_JOB_ID = "cd".repeat(32);
const two = (id: string) => [tokenFrame(id, 0), tokenFrame(id, 1)];

Deno.test("a cancelled done that counts more tokens than the job's max_tokens is a protocol error, however the job ended", async () => {
  const billion = await jobAgainst((id) => [
    startFrame(id),
    ...two(id),
    doneFrame(id, 1_000_000_000, "cancelled"),
  ]);
  assertProtocolError(billion.error, "done", "a cancelled done that counts 1000000000 tokens");
  assertProtocolError(billion.error, "done", "the job's max_tokens (8)");
  // After the client's own cancel too: the node never computes past the job's bound.
  const afterCancel = await cancelledAfter(2, 9);
  assertProtocolError(afterCancel.error, "done", "a cancelled done that counts 9 tokens");
});

Deno.test("a cancelled done may count more tokens than came only after the client sent cancel", async () => {
  const unasked = await jobAgainst((
    id,
  ) => [startFrame(id), ...two(id), doneFrame(id, 5, "cancelled")]);
  assertProtocolError(unasked.error, "done", "a done that counts 5 tokens after 2");
  assertProtocolError(unasked.error, "done", "no cancel was sent");
  // The node's own cancel (or a count that matches) still passes.
  const exact = await jobAgainst((
    id,
  ) => [startFrame(id), ...two(id), doneFrame(id, 2, "cancelled")]);
  assertEquals((exact.done as { finish_reason?: string }).finish_reason, "cancelled");
  // Asked: tokens the node computed and never sent are counted, up to the job's bound.
  const asked = await cancelledAfter(2, 8);
  assertEquals(asked.error, undefined);
  assertEquals(asked.done?.usage.completion_tokens, 8);
});

Deno.test("a second start for a job is a protocol error: the caller's start (job_id, prompt_tokens) stands", async () => {
  const big = 999_999_000;
  const result = await jobAgainst((id) => [
    startFrame(id),
    tokenFrame(id, 0),
    { ...startFrame(id), job_id: OTHER_JOB_ID, prompt_tokens: big },
    {
      ...doneFrame(id, 1),
      job_id: OTHER_JOB_ID,
      usage: { prompt_tokens: big, completion_tokens: 1, total_tokens: big + 1 },
    },
  ]);
  assertEquals(result.seen, ["A"]);
  assertProtocolError(result.error, "start", "a second start for its job");
});

Deno.test("a done naming another job_id than its start is a protocol error", async () => {
  const result = await jobAgainst((id) => [
    startFrame(id),
    tokenFrame(id, 0),
    { ...doneFrame(id, 1), job_id: OTHER_JOB_ID },
  ]);
  assertProtocolError(result.error, "done", "a done whose job_id is not its start's");
  // Its own start's id passes.
  const own = await jobAgainst((id) => [startFrame(id), tokenFrame(id, 0), doneFrame(id, 1)]);
  assertEquals((own.done as { job_id?: string }).job_id, startFrame("x").job_id);
});

/**
 * A job (max_tokens 8) that the client cancels after the server's first `sent` tokens; the server
 * answers the cancel with a `cancelled` done counting `counted`.
 */
async function cancelledAfter(
  sent: number,
  counted: number,
): Promise<{ error?: unknown; done?: { usage: { completion_tokens: number } } }> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      const send = (frame: unknown) => socket.send(JSON.stringify(frame));
      if (message.type === "cancel") send(doneFrame(message.id, counted, "cancelled"));
      if (message.type !== "infer") return;
      send(startFrame(message.id));
      for (let index = 0; index < sent; index++) send(tokenFrame(message.id, index));
    };
    return response;
  });
  try {
    using client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    const job = client.infer({ prompt: "x", max_tokens: 8 });
    const reader = job.tokens.getReader();
    for (let index = 0; index < sent; index++) await reader.read();
    job.cancel();
    try {
      return { done: await job.done };
    } catch (error) {
      return { error };
    }
  } finally {
    await server.shutdown();
  }
}
