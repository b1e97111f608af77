/**
 * A coordinator given a private held-out file (`--held-out FILE`, `training/held_out_text.ts`)
 * evaluates its models on that file's text, not on the public Brown split every trainer can read;
 * its status says which text it uses (kind and size, never path or content); and a run resumed
 * on other text than its saved loss reference was measured on measures the reference again.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { DEFAULT_OUTER_HYPER_PARAMS } from "../../training/outer_step.ts";
import { CoordinatorState } from "../../training/coordinator_state.ts";
import {
  heldOutBytesNeeded,
  heldOutDigest,
  type HeldOutSource,
  publicHeldOutSource,
  readHeldOutFile,
} from "../../training/held_out_text.ts";
import type { TextShard } from "../../training/brown_corpus.ts";
import { evaluateHeldOut } from "../../training/held_out_evaluator.ts";
import { heldOutSamples } from "../../training/held_out_samples.ts";
import { resolveStartConfig } from "../../cli/start_command.ts";
import { trainingInputs } from "../../node/_training_children.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import type { CoordinatorStatus } from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import { evaluatingCoordinator } from "./_eval_coordinator.ts";

/** Digits only: a text the seeded model's loss tells from English prose at a glance. */
const PRIVATE_TEXT = "0123456789".repeat(
  Math.ceil(heldOutBytesNeeded(TEST_HYPER.sampleBytes) / 10) + 50,
);

/** The loss the coordinator's evaluation gives `weights` on `shard` (its samples, its backend). */
async function lossOn(shard: TextShard): Promise<number> {
  return await evaluateHeldOut({
    arch: TEST_ARCH,
    samples: heldOutSamples(shard, TEST_HYPER.sampleBytes),
    sampleBytes: TEST_HYPER.sampleBytes,
  }, seededGptWeights(TEST_ARCH, 0));
}

/** A coordinator with no trainer (no round runs) on `heldOut`; its status and log lines. */
async function coordinatorOn(
  heldOut: TextShard,
  heldOutSource: HeldOutSource,
  dir: string,
  statePath?: string,
): Promise<{ status: CoordinatorStatus; lines: string[] }> {
  return await evaluatingCoordinator(heldOut, { heldOutSource, dir, statePath });
}

async function withDir<T>(run: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-held-out-" });
  try {
    return await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a coordinator started with --held-out evaluates on the file's text, not the Brown split", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "private-eval.txt");
    await Deno.writeTextFile(path, PRIVATE_TEXT);
    // The node's own path: flag → configuration → the inputs its coordinator is given.
    const { config } = await resolveStartConfig(
      ["--coordinate-training", "--held-out", path],
      { VERIFLOW_TRAINING_CORPUS_DOCS: "40" },
    );
    const inputs = await trainingInputs(config, undefined, () => {});
    const { status } = await coordinatorOn(inputs.heldOut!, inputs.heldOutSource!, dir);
    const onFile = await lossOn({
      documents: [{ id: "mine", bytes: new TextEncoder().encode(PRIVATE_TEXT) }],
    });
    const onBrown = await lossOn((await testSplit()).heldOut);
    // The two texts are told apart: the seeded model's loss on digits is far from its loss on prose.
    assert.ok(Math.abs(onFile - onBrown) > 0.5, `${onFile} vs ${onBrown}`);
    assert.ok(status.initialLoss !== undefined, "evaluated");
    assert.ok(
      Math.abs(status.initialLoss - onFile) < 1e-9,
      `the coordinator's loss ${status.initialLoss} is the file's ${onFile} (Brown: ${onBrown})`,
    );
  });
});

Deno.test("the coordinator's status says it evaluates on a private file and its size, never its path or text", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "private-eval.txt");
    await Deno.writeTextFile(path, PRIVATE_TEXT);
    const file = await readHeldOutFile(path, TEST_HYPER.sampleBytes);
    const { status } = await coordinatorOn(file.shard, file.source, dir);
    assert.deepEqual(status.heldOut, { kind: "private_file", bytes: PRIVATE_TEXT.length });
    const said = JSON.stringify(status);
    assert.ok(!said.includes(path) && !said.includes("private-eval"), "no path");
    assert.ok(!said.includes("0123456789"), "no text");
  });
});

Deno.test("the coordinator's status says it evaluates on the public Brown split", async () => {
  await withDir(async (dir) => {
    const { heldOut } = await testSplit();
    const { status } = await coordinatorOn(heldOut, publicHeldOutSource(heldOut), dir);
    assert.equal(status.heldOut?.kind, "public_brown_split");
    assert.equal(status.heldOut?.kind === "public_brown_split" && status.heldOut.documents, 4);
  });
});

/** A saved state at round 3 on the seeded model, its loss reference `bestLoss` on `digest`'s text. */
async function saveState(dir: string, bestLoss: number, digest?: string): Promise<string> {
  const statePath = join(dir, "training", "coordinator.json");
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const state = new CoordinatorState(statePath, {
    arch: TEST_ARCH,
    seed: 0,
    steps: 2,
    hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
    outer: { ...DEFAULT_OUTER_HYPER_PARAMS },
  });
  await state.save({
    round: 3,
    model: { cid: model.cid, file: model.file },
    history: [],
    finished: 3,
    convicted: [],
    initialLoss: bestLoss,
    bestLoss,
    heldOutDigest: digest,
  });
  return statePath;
}

Deno.test("a run resumed on another held-out text measures the loss gate's reference again on it", async () => {
  await withDir(async (dir) => {
    const { heldOut } = await testSplit();
    const onBrown = await lossOn(heldOut);
    const statePath = await saveState(dir, onBrown, heldOutDigest(heldOut, TEST_HYPER.sampleBytes));
    const path = join(dir, "private-eval.txt");
    await Deno.writeTextFile(path, PRIVATE_TEXT);
    const file = await readHeldOutFile(path, TEST_HYPER.sampleBytes);
    const { lines } = await coordinatorOn(file.shard, file.source, dir, statePath);
    const onFile = await lossOn(file.shard);
    const said = lines.find((l) => /measured again/.test(l));
    assert.ok(said !== undefined, lines.join("\n"));
    assert.match(said, new RegExp(`\\(${onFile.toFixed(3)} nats/byte\\)`));
  });
});

Deno.test("a state saved before the digest, resumed with a private file, measures the reference again", async () => {
  await withDir(async (dir) => {
    const statePath = await saveState(dir, 5);
    const path = join(dir, "private-eval.txt");
    await Deno.writeTextFile(path, PRIVATE_TEXT);
    const file = await readHeldOutFile(path, TEST_HYPER.sampleBytes);
    const { lines } = await coordinatorOn(file.shard, file.source, dir, statePath);
    assert.ok(lines.some((l) => /measured again/.test(l)), lines.join("\n"));
  });
});

Deno.test("a run resumed on the same held-out samples keeps its saved loss reference; one saved before the digest measures it again", async () => {
  await withDir(async (dir) => {
    const { heldOut } = await testSplit();
    const statePath = await saveState(dir, 5, heldOutDigest(heldOut, TEST_HYPER.sampleBytes));
    const { lines } = await coordinatorOn(heldOut, publicHeldOutSource(heldOut), dir, statePath);
    assert.ok(lines.some((l) => /resuming at round 3/.test(l)), lines.join("\n"));
    assert.ok(!lines.some((l) => /measured again/.test(l)), lines.join("\n"));
    // An old state (no digest) on the public split was measured on the split's first 64
    // windows, before the evaluation spread them over the text (`held_out_samples.ts`): measured
    // again.
    await Deno.remove(statePath);
    const old = await saveState(dir, 5);
    const again = await coordinatorOn(heldOut, publicHeldOutSource(heldOut), dir, old);
    assert.ok(again.lines.some((l) => /measured again/.test(l)), again.lines.join("\n"));
  });
});
