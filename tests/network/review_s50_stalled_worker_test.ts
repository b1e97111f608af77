/**
 * Review s50 of a router's handling of a worker that accepts jobs and then stalls
 * (`network/network_inference_port.ts`, `network/busy_refusals.ts`, `network/failover.ts`): a
 * worker that sends each job's `start` and then nothing, its connection alive, whose hello would
 * rank it first for every job. Each job it is given holds its client for the queue hold before a
 * hedge takes it over and the worker is asked last; these tests pin down for how long. The
 * router's timers and its memory of refusals share one fake clock the tests advance: no real time
 * is waited on.
 */
import { assertEquals } from "../server/_assert.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { BusyRefusals } from "../../network/busy_refusals.ts";
import { DEFAULT_QUEUE_HOLD_MS } from "../../network/failover.ts";
import { DEFAULT_HELLO_INTERVAL_MS } from "../../network/network_actor.ts";
import { DEFAULT_START_TIMEOUT_MS } from "../../inference/remote_port.ts";
import { eventually } from "../server/_fixtures.ts";
import { StallingPort } from "../inference/_stalling_port.ts";
import { job, routerOver as scriptedRouter, script, served } from "./_scripted_workers.ts";

/** A router over `ports` whose memory of refusals is on its fake clock. */
const routerOver = (ports: InferencePort[]) =>
  scriptedRouter(ports, {
    name: "review-s50-stalled-worker",
    busy: (timers) => new BusyRefusals({ now: () => timers.now() }),
  });

/** Read a job to its end on the fake clock, advancing it by the queue hold when it waits. */
async function runThroughHold(
  t: Awaited<ReturnType<typeof routerOver>>,
  nonce: string,
): Promise<number[]> {
  const handle = await t.port.submit(job(nonce));
  const reader = handle.tokens.getReader();
  const first = reader.read();
  let settled = false;
  first.then(() => settled = true, () => settled = true);
  await t.timers.advance(DEFAULT_QUEUE_HOLD_MS);
  await eventually(() => settled, "the job moved on at the hold");
  const got: number[] = [];
  for (let r = await first; !r.done; r = await reader.read()) got.push(r.value.index);
  await handle.done;
  return got;
}

Deno.test("s50: a worker that held a job for the whole queue hold without a token is asked last for at least that hold, not one hello interval: the next jobs meanwhile run at once on the honest worker", async () => {
  const stalling = new StallingPort(served, script, { permits: 0 });
  const honest = new StallingPort(served, script);
  const t = await routerOver([stalling, honest]);
  try {
    // The first job costs its client the hold: nothing told the router yet.
    assertEquals(await runThroughHold(t, "first"), [0, 1, 2, 3]);
    assertEquals([stalling.submits, honest.submits], [1, 1]);
    await eventually(() => stalling.cancelled === 1, "the held job cancelled on its worker");
    // A hello interval later (when an honest worker's next hello would have told its real
    // load), well inside the hold the worker just cost a client.
    await t.timers.advance(DEFAULT_HELLO_INTERVAL_MS * 2);
    const next = await t.port.submit(job("next"));
    assertEquals(
      stalling.submits,
      1,
      "the next job went to the worker that held the last one for the whole hold",
    );
    const reader = next.tokens.getReader();
    const got: number[] = [];
    for (let r = await reader.read(); !r.done; r = await reader.read()) got.push(r.value.index);
    assertEquals(got, [0, 1, 2, 3], "and ran at once, no hold waited");
    assertEquals(honest.submits, 2);
    // A while, not a ban: past the hold the worker is asked again.
    await t.timers.advance(DEFAULT_QUEUE_HOLD_MS);
    const again = await t.port.submit(job("again"));
    assertEquals(stalling.submits, 2, "asked again once its while ended");
    again.cancel();
    await again.done;
  } finally {
    await t.close();
  }
});

/** A worker that takes each job and never starts it (no `start`, its connection alive). */
class NeverStarts implements InferencePort {
  submits = 0;
  submit(): Promise<never> {
    this.submits++;
    return new Promise(() => {});
  }
  models() {
    return Promise.resolve([served]);
  }
  stats(): ReturnType<InferencePort["stats"]> {
    return Promise.reject(new Error("not asked"));
  }
}

Deno.test("s50: a worker that never starts a job it took is asked last for at least the start timeout it cost the job, not one hello interval", async () => {
  const silent = new NeverStarts();
  const honest = new StallingPort(served, script);
  const t = await routerOver([silent, honest]);
  try {
    const submitted = t.port.submit(job("first"));
    await eventually(() => silent.submits === 1, "the silent worker asked first");
    await t.timers.advance(DEFAULT_START_TIMEOUT_MS);
    const first = await submitted;
    assertEquals(honest.submits, 1, "passed over for the honest worker at the start timeout");
    first.cancel();
    await first.done;
    await t.timers.advance(DEFAULT_HELLO_INTERVAL_MS * 2);
    const pending = t.port.submit(job("next"));
    await eventually(() => silent.submits + honest.submits === 3, "the next job asked a worker");
    // Moved on either way, so that a failing run ends too.
    await t.timers.advance(DEFAULT_START_TIMEOUT_MS);
    const next = await pending;
    assertEquals(silent.submits, 1, "the next job went to the worker that never started the last");
    assertEquals(honest.submits, 2);
    next.cancel();
    await next.done;
  } finally {
    await t.close();
  }
});

Deno.test("s50: BusyRefusals keeps a refusal that cost nothing at one hello interval, and a costly one's while at least its cost, up to the longest while", () => {
  let now = 0;
  const busy = new BusyRefusals({ now: () => now, firstMs: 1_000, maxMs: 60_000 });
  busy.refused("full");
  busy.refused("held", 30_000);
  busy.refused("timed-out", 600_000);
  now = 1_000;
  assertEquals(busy.askedLast(), ["held", "timed-out"]);
  now = 30_000;
  assertEquals(busy.askedLast(), ["timed-out"]);
  now = 60_000;
  assertEquals(busy.askedLast(), []);
  // Asked again after its while and refused again: doubled from the while it had.
  busy.refused("held", 30_000);
  now = 60_000 + 59_999;
  assertEquals(busy.askedLast(), ["held"]);
});
