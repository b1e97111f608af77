/**
 * An idle timeout shorter than the node's `queued` repeat does not cancel an honest queued job
 * (review s77 vclient, F5): while a job's last frame was `queued`, the node is silent by design
 * until its next repeat (`QUEUED_EVENT_REPEAT_MS`), so the client waits at least that long and a
 * margin before it takes the job for stalled, and its error names the last queue place it was
 * told. Time is a fake clock moved by the test, so nothing waits on a real deadline.
 */
import { QUEUED_IDLE_FLOOR_MS, StreamClosedError } from "../../client/stream_client.ts";
import { QUEUED_EVENT_REPEAT_MS } from "../../protocols/queued_repeat.ts";
import { assert, assertEquals } from "../server/_assert.ts";
import { eventually } from "../_helpers/wait.ts";
import { tracker } from "../_helpers/fake_timers.ts";
import { quietClient } from "./_quiet_client.ts";
import { doneFrame, tokenFrame } from "./_stub_servers.ts";

/** Well under the node's 10 s repeat: the CLI's `--idle-timeout 5` of the review, shorter. */
const IDLE_MS = 1_000;

Deno.test("the floor of a queued job's silence is the node's queued repeat and a margin", () => {
  assert(QUEUED_IDLE_FLOOR_MS > QUEUED_EVENT_REPEAT_MS, String(QUEUED_IDLE_FLOOR_MS));
});

Deno.test("a queued job outlives an idle timeout shorter than the queued repeat while the repeats come, then streams under the plain timeout", async () => {
  await using quiet = await quietClient(IDLE_MS);
  const { server, timers, client } = quiet;
  const places: number[] = [];
  const job = client.infer({ id: "q", prompt: "a", max_tokens: 4 }, {
    onQueued: (place) => places.push(place),
  });
  await job.start;
  const ended = tracker(job.done);
  server.send({ type: "queued", id: "q", position: 2 });
  await eventually(() => places.length === 1, "the queued frame");
  // Five idle timeouts, and just short of the next repeat: the job waits on.
  await timers.advance(QUEUED_EVENT_REPEAT_MS - 1);
  assertEquals(ended(), false);
  server.send({ type: "queued", id: "q", position: 1 });
  await eventually(() => places.length === 2, "the repeat");
  await timers.advance(QUEUED_EVENT_REPEAT_MS - 1);
  assertEquals(ended(), false);
  // Its turn: tokens come, and the job is no longer queued.
  const reader = job.tokens.getReader();
  server.send(tokenFrame("q", 0));
  assertEquals((await reader.read()).value?.index, 0);
  server.send(tokenFrame("q", 1));
  server.send(doneFrame("q", 2));
  assertEquals((await reader.read()).value?.index, 1);
  assertEquals((await job.done).usage.completion_tokens, 2);
  assertEquals(places, [2, 1]);
});

Deno.test("a queued job whose repeats stop fails after the queued floor, and its error names its last place in the queue", async () => {
  await using quiet = await quietClient(IDLE_MS);
  const { server, timers, client } = quiet;
  let queued = false;
  const job = client.infer({ id: "q", prompt: "a", max_tokens: 4 }, {
    onQueued: () => queued = true,
  });
  await job.start;
  const ended = tracker(job.done);
  server.send({ type: "queued", id: "q", position: 2 });
  await eventually(() => queued, "the queued frame");
  await timers.advance(QUEUED_IDLE_FLOOR_MS - 1);
  assertEquals(ended(), false);
  await timers.advance(1);
  await eventually(ended, "the silent queued job to fail");
  const error = await job.done.catch((e) => e);
  assert(error instanceof StreamClosedError, String(error));
  assertEquals(error.details.timeout, "idle");
  assert(error.message.includes("place 2"), error.message);
  assert(error.message.includes(`${QUEUED_IDLE_FLOOR_MS / 1000} s`), error.message);
});

Deno.test("a job streaming tokens after its queue wait is held to the plain idle timeout", async () => {
  await using quiet = await quietClient(IDLE_MS);
  const { server, timers, client } = quiet;
  let queued = false;
  const job = client.infer({ id: "q", prompt: "a", max_tokens: 4 }, {
    onQueued: () => queued = true,
  });
  await job.start;
  const ended = tracker(job.done);
  server.send({ type: "queued", id: "q", position: 1 });
  await eventually(() => queued, "the queued frame");
  const reader = job.tokens.getReader();
  server.send(tokenFrame("q", 0));
  assertEquals((await reader.read()).value?.index, 0);
  await timers.advance(IDLE_MS);
  await eventually(ended, "the silent running job to fail");
  const error = await job.done.catch((e) => e);
  assert(error instanceof StreamClosedError, String(error));
  assert(!error.message.includes("queue"), error.message);
});
