/**
 * A trainer's traces on disk (`training/trace_store.ts`): a run saved before a restart opens
 * challenged steps afterwards, checked by a validator as an answer from the live run would be;
 * a trace is kept for its retention and no longer; a damaged, foreign or other-shard file is
 * never opened from.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { gptModelId, seededGptWeights } from "../../training/gpt_weights.ts";
import { openChallengedSteps, type SealedStepOpenings } from "../../training/step_opening.ts";
import { checkStepOpenings } from "../../training/step_check.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { TraceStore } from "../../training/trace_store.ts";
import {
  InProcessTrainerEngine,
  KEPT_TRACES,
  WorkerTrainerEngine,
} from "../../training/trainer_engine.ts";
import {
  drawTrainingChallenge,
  type TrainingChallenge,
} from "../../training/training_challenge.ts";
import type { TrainingError } from "../../training/training_error.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { trainAndSign } from "../../training/training_round.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";

const H = 6;
const split = await testSplit();
const [shard, otherShard] = split.shards;
const start = seededGptWeights(TEST_ARCH, 0);
const startModel = gptModelId(TEST_ARCH, start);
const trainer = Identity.generate();
const validator = Identity.generate();
const run = await trainAndSign({
  arch: TEST_ARCH,
  round: 3,
  startModel,
  start,
  shard,
  steps: H,
  dataSeed: 11,
  hyper: TEST_HYPER,
  identity: trainer,
  keepEvery: 4,
});
const receiptId = trainingReceiptId(run.report.receipt);

async function withStore<T>(
  fn: (dir: string, clock: { now: number }) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-traces-" });
  try {
    return await fn(dir, { now: 1_000_000 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a trace saved before a restart opens challenged steps after it, and the validator accepts the answer", async () => {
  await withStore(async (dir, clock) => {
    await new TraceStore({ dir, now: () => clock.now }).save(run.trace);
    // A new store over the same directory: what a restarted trainer has.
    const reopened = new TraceStore({ dir, now: () => clock.now });
    const trace = await reopened.load(receiptId, trainer, shard);
    assert.ok(trace, "the trace is found after the restart");
    const challenge = drawTrainingChallenge(run.report.receipt, validator, { steps: 3 });
    const sealed = await openChallengedSteps(trace, challenge);
    const verdict = await checkStepOpenings(run.report.receipt, challenge, sealed, {
      validator,
      arch: TEST_ARCH,
      startWeights: start,
      delta: run.report.delta,
      shardSize: run.report.receipt.shardSize,
    });
    assert.equal(verdict.ok, true, JSON.stringify(verdict));
  });
});

Deno.test("a trace is kept for its retention and removed after it", async () => {
  await withStore(async (dir, clock) => {
    const store = new TraceStore({ dir, retainMs: 60_000, now: () => clock.now });
    await store.save(run.trace);
    clock.now += 59_000;
    assert.ok(await store.load(receiptId, trainer, shard), "inside its retention");
    assert.equal(await store.sweep(), 0);
    clock.now += 2_000;
    assert.equal(await store.load(receiptId, trainer, shard), undefined, "past its retention");
    assert.equal(await store.sweep(), 1);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("a trace is not opened from for another trainer, another shard, or a damaged file", async () => {
  await withStore(async (dir, clock) => {
    const store = new TraceStore({ dir, now: () => clock.now });
    await store.save(run.trace);
    assert.equal(await store.load(receiptId, Identity.generate(), shard), undefined);
    assert.equal(await store.load(receiptId, trainer, otherShard), undefined);
    assert.equal(await store.load("ab".repeat(32), trainer, shard), undefined);
    assert.equal(await store.load("../../etc/passwd", trainer, shard), undefined);
    // A flipped byte inside a kept state: its hash no longer matches the committed one.
    const [name] = [...Deno.readDirSync(dir)].map((e) => e.name);
    const bytes = await Deno.readFile(`${dir}/${name}`);
    bytes[bytes.length - 100] ^= 0x40;
    await Deno.writeFile(`${dir}/${name}`, bytes);
    assert.equal(await store.load(receiptId, trainer, shard), undefined);
  });
});

const roundOf = (round: number) => ({
  arch: TEST_ARCH,
  round,
  startModel,
  start,
  steps: 4,
  dataSeed: 100 + round,
  hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
});

const validates = async (
  report: Awaited<ReturnType<InProcessTrainerEngine["train"]>>,
  open: (c: TrainingChallenge) => Promise<SealedStepOpenings>,
) => {
  const challenge = drawTrainingChallenge(report.receipt, validator, { steps: 2 });
  const verdict = await checkStepOpenings(report.receipt, challenge, await open(challenge), {
    validator,
    arch: TEST_ARCH,
    startWeights: start,
    delta: report.delta,
    shardSize: report.receipt.shardSize,
  });
  return verdict.ok;
};

Deno.test("a trainer's engine in its worker answers a challenge of a run from before its restart", async () => {
  await withStore(async (dir) => {
    const identity = Identity.generate();
    const before = new WorkerTrainerEngine(identity, shard, { dir });
    const report = await before.train(roundOf(0));
    await before.close();
    // Without the traces on disk, the restarted trainer could not answer (opening_missing).
    const forgetful = new WorkerTrainerEngine(identity, shard);
    await assert.rejects(
      forgetful.open(drawTrainingChallenge(report.receipt, validator, { steps: 2 })),
      (e: TrainingError) => e.code === "unknown_receipt",
    );
    await forgetful.close();
    const after = new WorkerTrainerEngine(identity, shard, { dir });
    try {
      assert.equal(await validates(report, (c) => after.open(c)), true);
    } finally {
      await after.close();
    }
  });
});

Deno.test("a run older than the traces kept in memory is opened from disk", async () => {
  await withStore(async (dir) => {
    const engine = new InProcessTrainerEngine(trainer, shard, undefined, { dir });
    const first = await engine.train(roundOf(0));
    for (let round = 1; round <= KEPT_TRACES; round++) await engine.train(roundOf(round));
    assert.equal(await validates(first, (c) => engine.open(c)), true);
    await engine.close();
  });
});
