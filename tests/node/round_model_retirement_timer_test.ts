/**
 * A training that stops leaves no round model registered for good (`node/_round_model_retirement.ts`,
 * s79): the older rounds' models used to be unregistered only when a newer round's model arrived.
 * A timer now retires each one the challenge window plus the job tail after a newer round replaced
 * it, and not before; one that a job loaded again is left to that job for the job tail; the node's
 * stop clears the timer.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildGptModel } from "../../inference/model_builder.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import {
  ROUND_MODEL_JOB_TAIL_MS,
  RoundModelRetirement,
} from "../../node/_round_model_retirement.ts";
import { DEFAULT_GENERATION_PARAMS } from "../../protocols/job.ts";
import { FakeTimers, turns } from "../_helpers/fake_timers.ts";

const tmp = await Deno.makeTempDir({ prefix: "veriflow-round-model-timer-test-" });
Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));

/** A challenge window short enough to count in the test's fake minutes. */
const WINDOW_MS = 60_000;
/** Between two rounds' models, on the fake clock. */
const ROUND_MS = 10_000;
/**
 * Event-loop turns a timer's sweep needs to finish: an unregister of an unloaded model settles in
 * microtasks; this orders events, it races no deadline.
 */
const SWEEP_TURNS = 3;
/** Rounds served before the training stops: two are kept, the older two are retired. */
const ROUNDS = 4;

/** Round `i`'s model: a tiny model with its own weights, so its own id. */
async function roundModel(i: number): Promise<string> {
  const { dir } = await buildGptModel({ size: "tiny", seed: 300 + i, outDir: join(tmp, `r${i}`) });
  return dir;
}

/** A registry served `ROUNDS` rounds' models, then left alone: the training stopped. */
async function stoppedTraining(first: number) {
  const registry = new ModelRegistry({ intraOpThreads: 1 });
  const clock = { now: 0 };
  const timers = new FakeTimers();
  const retirement = new RoundModelRetirement({
    registry,
    challengeWindowMs: WINDOW_MS,
    now: () => clock.now,
    timers,
  });
  const cids: string[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    await retirement.serve(await roundModel(first + i));
    cids.push(registry.list().at(-1)!.cid);
    clock.now += ROUND_MS;
  }
  return { registry, clock, timers, retirement, cids };
}

/** When round `i`'s model may leave: a newer round replaced it at (i + 1) rounds. */
function dueAt(i: number): number {
  return (i + 1) * ROUND_MS + WINDOW_MS + ROUND_MODEL_JOB_TAIL_MS;
}

/** The one armed timer's delay (the retirement arms one at a time). */
function armedMs(timers: FakeTimers): number {
  assert.equal(timers.armed.size, 1, "one retirement timer armed");
  return [...timers.armed.values()][0].ms;
}

/** Fire the armed timer and let the sweep it starts run (its unregisters await the registry). */
async function fire(timers: FakeTimers): Promise<void> {
  timers.fireAll();
  await turns(SWEEP_TURNS);
}

Deno.test("after training stops, the older round models leave the registry at the stated time and not before", async () => {
  const { registry, clock, timers, retirement, cids } = await stoppedTraining(0);
  try {
    assert.deepEqual(retirement.registered(), cids, "all four still registered");
    // The timer is armed, at the last round's serve, for the first old model's due time.
    assert.equal(armedMs(timers), dueAt(0) - (ROUNDS - 1) * ROUND_MS);
    // Fired a millisecond early (a timer may run early on a loaded machine): nothing leaves.
    clock.now = dueAt(0) - 1;
    await fire(timers);
    assert.ok(registry.has(cids[0]), "not before its time");
    assert.equal(armedMs(timers), 1, "armed again for the rest");
    clock.now = dueAt(0);
    await fire(timers);
    assert.equal(registry.has(cids[0]), false, "round 0's model left at its time");
    assert.ok(registry.has(cids[1]), "round 1's is not due yet");
    assert.equal(armedMs(timers), dueAt(1) - dueAt(0));
    clock.now = dueAt(1);
    await fire(timers);
    assert.equal(registry.has(cids[1]), false, "round 1's model left at its time");
    assert.deepEqual(retirement.registered(), cids.slice(2), "the newest two stay");
    assert.equal(timers.armed.size, 0, "nothing left to retire: no timer");
  } finally {
    await retirement.stop();
    await registry.close();
  }
});

Deno.test("a job running on a due round model keeps working until it ends; the model leaves a job tail later", async () => {
  const { registry, clock, timers, retirement, cids } = await stoppedTraining(10);
  try {
    // A job names round 0's model after it was unloaded: loaded again, and streaming.
    const model = await registry.getText(cids[0]);
    const stream = model.generate([1, 2, 3], {
      ...DEFAULT_GENERATION_PARAMS,
      temperature: 0,
      maxTokens: 8,
    });
    const reader = stream.getReader();
    const first = await reader.read();
    assert.equal(first.done, false);
    clock.now = dueAt(0);
    await fire(timers);
    assert.ok(registry.has(cids[0]), "the model a job streams on stays");
    assert.equal(registry.info(cids[0])?.loaded, true);
    let tokens = 1;
    while (!(await reader.read()).done) tokens++;
    assert.equal(tokens, 8, "the job ran to its end");
    // Round 1's model (not loaded) left at its own time meanwhile.
    clock.now = dueAt(1);
    await fire(timers);
    assert.equal(registry.has(cids[1]), false);
    assert.ok(registry.has(cids[0]));
    assert.equal(armedMs(timers), dueAt(0) + ROUND_MODEL_JOB_TAIL_MS - dueAt(1));
    clock.now = dueAt(0) + ROUND_MODEL_JOB_TAIL_MS;
    await fire(timers);
    assert.equal(registry.has(cids[0]), false, "gone once the job tail has passed");
  } finally {
    await retirement.stop();
    await registry.close();
  }
});

Deno.test("stopping the retirement clears its timer: no sweep after the node stops", async () => {
  const { registry, clock, timers, retirement, cids } = await stoppedTraining(20);
  try {
    assert.equal(timers.armed.size, 1);
    await retirement.stop();
    assert.equal(timers.armed.size, 0, "the timer is cleared");
    clock.now = dueAt(1);
    await retirement.stop(); // idempotent
    assert.deepEqual(retirement.registered(), cids, "nothing retired after the stop");
  } finally {
    await registry.close();
  }
});

Deno.test("a retirement that fails is tried again a job tail later, not at once", async () => {
  const registry = new ModelRegistry({ intraOpThreads: 1 });
  const clock = { now: 0 };
  const timers = new FakeTimers();
  const lines: string[] = [];
  let failures = 1;
  const retirement = new RoundModelRetirement({
    registry: {
      register: (dir) => registry.register(dir),
      list: () => registry.list(),
      info: (cid) => registry.info(cid),
      unload: (cid) => registry.unload(cid),
      unregister: (cid) =>
        failures-- > 0 ? Promise.reject(new Error("disk said no")) : registry.unregister(cid),
    },
    challengeWindowMs: WINDOW_MS,
    now: () => clock.now,
    timers,
    log: (line) => void lines.push(line),
  });
  try {
    const cids: string[] = [];
    for (let i = 0; i < 3; i++) {
      await retirement.serve(await roundModel(30 + i));
      cids.push(registry.list().at(-1)!.cid);
      clock.now += ROUND_MS;
    }
    clock.now = dueAt(0);
    await fire(timers);
    assert.match(lines.join("\n"), /retiring round models failed: disk said no/);
    assert.ok(registry.has(cids[0]));
    assert.equal(armedMs(timers), ROUND_MODEL_JOB_TAIL_MS, "tried again a job tail later");
    clock.now += ROUND_MODEL_JOB_TAIL_MS;
    await fire(timers);
    assert.equal(registry.has(cids[0]), false, "retired on the second try");
  } finally {
    await retirement.stop();
    await registry.close();
  }
});
