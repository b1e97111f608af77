/**
 * The idle timeout watches each job, not the socket (red-team review s77, F3): a job that hears
 * nothing of its own for `idleTimeoutMs` fails with `details.timeout: "idle"` and is cancelled on
 * the node, even while another job on the same socket streams, which goes on. Only when every
 * running job is silent is the node taken for gone and the socket closed. Time is a fake clock
 * moved by the test (`StreamClientOptions.timers`), so no test waits on a real deadline.
 */
import { StreamClosedError } from "../../client/stream_client.ts";
import { assert, assertEquals } from "../server/_assert.ts";
import { eventually } from "../_helpers/wait.ts";
import { tracker } from "../_helpers/fake_timers.ts";
import { doneFrame, tokenFrame } from "./_stub_servers.ts";
import { quietClient } from "./_quiet_client.ts";

const IDLE_MS = 1_000;
/** Less than the idle timeout: the busy job hears something within each of its timeouts. */
const TICK_MS = 400;

Deno.test("a job that goes silent fails after idleTimeoutMs (timeout idle) and is cancelled on the node, while another job on the socket streams on", async () => {
  await using quiet = await quietClient(IDLE_MS);
  const { server, timers, client } = quiet;
  const stuck = client.infer({ id: "stuck", prompt: "a", max_tokens: 64 });
  const busy = client.infer({ id: "busy", prompt: "b", max_tokens: 64 });
  await Promise.all([stuck.start, busy.start]);
  const stuckEnded = tracker(stuck.done);
  const reader = busy.tokens.getReader();
  // Three ticks: the socket is never silent for TICK_MS, but "stuck" hears nothing for 1.2 s.
  for (let index = 0; index < 3; index++) {
    server.send(tokenFrame("busy", index));
    assertEquals((await reader.read()).value?.index, index);
    await timers.advance(TICK_MS);
  }
  await eventually(stuckEnded, "the silent job to fail");
  const error = await stuck.done.catch((e) => e);
  assert(error instanceof StreamClosedError, String(error));
  assertEquals(error.details.timeout, "idle");
  assert(error.message.includes(`"stuck"`), error.message);
  await eventually(
    () => server.messages.some((m) => m.type === "cancel" && m.id === "stuck"),
    "the client's cancel of the silent job",
  );
  // The busy job, and the socket, go on.
  server.send(tokenFrame("busy", 3));
  server.send(doneFrame("busy", 4));
  assertEquals((await busy.done).usage.completion_tokens, 4);
  assertEquals(server.messages.some((m) => m.type === "cancel" && m.id === "busy"), false);
  const later = client.infer({ id: "later", prompt: "c", max_tokens: 4 });
  assertEquals((await later.start).id, "later");
});

Deno.test("a queued job's queued messages are its own: it does not time out while it waits, and a frame for another job does not keep it alive", async () => {
  await using quiet = await quietClient(IDLE_MS);
  const { server, timers, client } = quiet;
  let places = 0;
  const waiting = client.infer({ id: "waiting", prompt: "a", max_tokens: 64 }, {
    onQueued: () => void places++,
  });
  const busy = client.infer({ id: "busy", prompt: "b", max_tokens: 64 });
  await Promise.all([waiting.start, busy.start]);
  const waitingEnded = tracker(waiting.done);
  const busyEnded = tracker(busy.done);
  const reader = busy.tokens.getReader();
  // "busy" hears one token, then nothing; "waiting" hears its place every tick.
  server.send(tokenFrame("busy", 0));
  await reader.read();
  for (let tick = 1; tick <= 3; tick++) {
    server.send({ type: "queued", id: "waiting", position: 1 });
    await eventually(() => places === tick, "the queued message");
    await timers.advance(TICK_MS);
  }
  await eventually(busyEnded, "the silent busy job to fail");
  assertEquals((await busy.done.catch((e) => e)).details?.timeout, "idle");
  assertEquals(waitingEnded(), false, "the queued job hears its place: not silent");
});

Deno.test("when every running job is silent for idleTimeoutMs, each fails (timeout idle) and the socket is closed", async () => {
  await using quiet = await quietClient(IDLE_MS);
  const { timers, client } = quiet;
  const jobs = [
    client.infer({ id: "a", prompt: "a", max_tokens: 4 }),
    client.infer({ id: "b", prompt: "b", max_tokens: 4 }),
  ];
  await Promise.all(jobs.map((job) => job.start));
  await timers.advance(IDLE_MS);
  for (const job of jobs) {
    const error = await job.done.catch((e) => e);
    assert(error instanceof StreamClosedError, String(error));
    assertEquals(error.details.timeout, "idle");
  }
  await client.closed;
});
