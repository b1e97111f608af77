/**
 * What a trainer keeps on disk to answer challenges: its runs' traces (`training/trace_store.ts`),
 * so a challenge of a run from before a restart is answered, and the sealed answers not fetched
 * yet.
 *
 * @module
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
  trainingChallengeId,
} from "../../training/training_challenge.ts";
import type { TrainingError } from "../../training/training_error.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { trainAndSign } from "../../training/training_round.ts";
import { TEST_ARCH, TEST_HYPER, testRoundBody, testSplit } from "./_fixtures.ts";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { sha256Hex, toHex } from "../../protocols/hash.ts";
import { RoundModels } from "../../training/round_models.ts";
import {
  type ChallengeAccepted,
  type RoundAccepted,
  type TrainerMessage,
  TrainerService,
  type TrainerStats,
} from "../../training/trainer_service.ts";
import { MAX_OPENING_PART_BYTES, type OpeningsBody } from "../../protocols/training_messages.ts";

// ------------------------------------------------------------------------------------------------
// A trainer's traces on disk (`training/trace_store.ts`): a run saved before a restart opens
// challenged steps afterwards, checked by a validator as an answer from the live run would be; a
// trace is kept for its retention and no longer; a damaged, foreign or other-shard file is never
// opened from.
// ------------------------------------------------------------------------------------------------

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

// ------------------------------------------------------------------------------------------------
// A trainer keeps its runs' traces on disk so that a challenge of a run from before a restart is
// answered (`trace_store.ts`), and opens a challenge only for a challenger it owes one (the
// receipt's coordinator, or a key staked in its ledger). Together: the coordinator a run was
// trained for is still owed its opening after the trainer restarts.
// ------------------------------------------------------------------------------------------------

Deno.test("a restarted trainer still opens a challenge from the coordinator it trained the run for (no ledger here)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-diff-review-" });
  const split = await testSplit();
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const identity = Identity.generate();
  const coordinator = Identity.generate();
  // The node's trainer: the honest engine in its worker, keeping traces under its data directory.
  const spawn = (system: ActorSystem) =>
    system.spawn<TrainerMessage>({
      name: "node/trainer",
      factory: () =>
        new TrainerService({
          identity,
          shard: split.shards[0],
          models,
          sampleBytes: TEST_HYPER.sampleBytes,
          dataDir: join(dir, "training"),
        }),
    });
  const body = testRoundBody(seed.cid, 4);
  const before = new ActorSystem({ name: "trainer-before-restart" });
  let receipt;
  try {
    const ref = await spawn(before);
    const { report } = await ref.ask<RoundAccepted>({
      type: "round",
      body,
      coordinator: toHex(coordinator.publicKey),
    });
    receipt = (await report).receipt;
  } finally {
    await before.shutdown();
  }
  const after = new ActorSystem({ name: "trainer-after-restart" });
  try {
    const ref = await spawn(after);
    const challenge = drawTrainingChallenge(receipt, coordinator, { steps: 2 });
    const { openings } = await ref.ask<ChallengeAccepted>({
      type: "challenge",
      challenge,
      from: coordinator.publicKey,
    });
    // Refused, the coordinator's opening_missing slashes the honest trainer in every ledger.
    const header = await openings;
    assert.ok(header.size > 0, "the opening of the run from before the restart is sent");
  } finally {
    await after.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// A trainer keeps each sealed answer until its validator fetched it or its challenge's deadline
// passed: one pushed out before it was fetched is `unknown_opening` to its validator, which takes
// it as missing, and its `opening_missing` slashes the honest trainer. They were kept in memory, up
// to 64 of them whatever their size — 29 MB each for `tiny`, ~1.9 GB. Memory now holds a bounded
// number of bytes of them; the unfetched ones past it wait in the trainer's data directory, still
// answered part by part.
// ------------------------------------------------------------------------------------------------

/** A stake every ledger takes a peer's fraud proof from. */
const STAKE = 10_000_000;
/** The bytes of answers this test's trainer keeps in memory: about one answer of TEST_ARCH. */
const KEPT_BYTES = 2_000_000;

Deno.test("answers past the memory bound are not dropped — memory holds at most the bound, and every validator still fetches its whole answer before its deadline (no unknown_opening, no opening_missing to slash the honest trainer)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53b-kept-answers-" });
  const split = await testSplit();
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const validators = [Identity.generate(), Identity.generate(), Identity.generate()];
  const staked = new Set(validators.map((v) => toHex(v.publicKey)));
  const system = new ActorSystem({ name: "s53b-kept-answers" });
  try {
    const ref = await system.spawn<TrainerMessage>({
      name: "node/trainer",
      factory: () =>
        new TrainerService({
          identity: Identity.generate(),
          shard: split.shards[0],
          models,
          sampleBytes: TEST_HYPER.sampleBytes,
          dataDir: join(dir, "training"),
          stakeOf: (key) => Promise.resolve(staked.has(toHex(key)) ? STAKE : 0),
          keptAnswerBytes: KEPT_BYTES,
        }),
    });
    const body = testRoundBody(seed.cid, 6);
    const { report } = await ref.ask<RoundAccepted>({ type: "round", body, coordinator: "c0" });
    const { receipt } = await report;
    // Three validators' answers are made before any is fetched (they audit one round).
    const challenges = validators.map((v) => drawTrainingChallenge(receipt, v, { steps: 2 }));
    const headers: OpeningsBody[] = [];
    for (const challenge of challenges) {
      const { openings } = await ref.ask<ChallengeAccepted>({
        type: "challenge",
        challenge,
        from: challenge.validator,
      });
      headers.push(await openings);
    }
    const total = headers.reduce((sum, h) => sum + h.size, 0);
    assert.ok(total > 2 * KEPT_BYTES, `the answers (${total} bytes) are past the bound`);
    // Written aside in the background: held until their writes end.
    let held = Infinity;
    for (let i = 0; i < 100 && held > KEPT_BYTES; i++) {
      held = (await ref.ask<TrainerStats>({ type: "stats" })).answerBytes;
      if (held > KEPT_BYTES) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(held <= KEPT_BYTES, `answers held in memory: ${held} bytes, bound ${KEPT_BYTES}`);
    // Each validator fetches its answer, part by part, whole.
    for (const [i, challenge] of challenges.entries()) {
      const challengeId = trainingChallengeId(challenge);
      const bytes = new Uint8Array(headers[i].size);
      for (let index = 0, at = 0; index < headers[i].parts; index++) {
        const part = await ref.ask<Uint8Array | undefined>({ type: "part", challengeId, index });
        assert.ok(part !== undefined, `validator ${i}'s part ${index} (unknown_opening)`);
        bytes.set(part, at);
        at += part.length;
      }
      assert.equal(sha256Hex(bytes), headers[i].sha256, `validator ${i}'s answer, whole`);
      assert.ok(headers[i].size > MAX_OPENING_PART_BYTES, "an answer of several parts");
    }
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
