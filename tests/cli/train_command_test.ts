import assert from "node:assert/strict";
import { TextModel } from "../../inference/text_model.ts";
import { runTrain } from "../../cli/train_command.ts";
import { type TrainEvent, trainModel } from "../../training/train_run.ts";
import { TEST_ARCH, TEST_HYPER } from "../training/_fixtures.ts";

const tmp = await Deno.makeTempDir({ prefix: "veriflow-train-command-test-" });
Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));

/** The corpus documents of the training tests' fixtures (fast to load). */
const CORPUS_LIMIT = 40;

Deno.test("two trainers in workers, two rounds: held-out loss falls and the model loads by its CID", async () => {
  const events: TrainEvent[] = [];
  const result = await trainModel({
    arch: TEST_ARCH,
    trainers: 2,
    rounds: 2,
    steps: 10,
    seed: 0,
    outDir: tmp,
    hyper: TEST_HYPER,
    evalSamples: 32,
    corpusLimit: CORPUS_LIMIT,
  }, (e) => events.push(e));
  assert.equal(result.rounds.length, 2);
  // Measured: 8.23 → 5.13 → 4.25 bits/byte. Each round must lower it.
  assert.ok(
    result.rounds[0].heldOutBitsPerByte < result.startBitsPerByte - 1,
    `${result.rounds[0].heldOutBitsPerByte}`,
  );
  assert.ok(result.rounds[1].heldOutBitsPerByte < result.rounds[0].heldOutBitsPerByte);
  assert.equal(result.heldOutBitsPerByte, result.rounds[1].heldOutBitsPerByte);
  // Step progress came from both trainers in both rounds.
  const steps = events.filter((e) => e.type === "step");
  assert.equal(steps.length, 2 * 2 * 10);
  assert.deepEqual(new Set(steps.map((e) => e.type === "step" && e.trainer)), new Set([0, 1]));
  assert.deepEqual(
    events.filter((e) => e.type === "round").map((e) => e.type === "round" && e.cid),
    [
      result.rounds[0].cid,
      result.rounds[1].cid,
    ],
  );
  // Only the last round's model is kept, under its CID, and it loads and is that CID.
  const kept = [];
  for await (const e of Deno.readDir(tmp)) kept.push(e.name);
  assert.deepEqual(kept, [result.cid]);
  const model = await TextModel.load(result.dir);
  try {
    assert.equal(model.info.cid, result.cid);
  } finally {
    await model.dispose();
  }
});

Deno.test("--minutes: no round starts that would end past the budget (injected clock)", async () => {
  let t = 0;
  // Each reading of the clock is 20 s later: a round takes ≥ 40 s, the budget is one minute.
  const now = () => (t += 20_000);
  const events: TrainEvent[] = [];
  const result = await trainModel({
    arch: TEST_ARCH,
    trainers: 1,
    rounds: 5,
    steps: 2,
    seed: 1,
    outDir: `${tmp}-minutes`,
    hyper: TEST_HYPER,
    evalSamples: 8,
    corpusLimit: CORPUS_LIMIT,
    minutes: 1,
    now,
  }, (e) => events.push(e));
  await Deno.remove(`${tmp}-minutes`, { recursive: true });
  assert.equal(result.rounds.length, 1);
  assert.deepEqual(events.at(-1), { type: "stopped", reason: "minutes", rounds: 1 });
});

Deno.test("bad flags exit 2 with the reason; --help exits 0", async () => {
  const errors: string[] = [];
  const error = console.error;
  const log = console.log;
  console.error = (m: string) => errors.push(m);
  console.log = () => {};
  try {
    assert.equal(await runTrain(["--help"]), 0);
    assert.equal(await runTrain(["--trainers", "2"]), 2);
    assert.match(errors.at(-1)!, /--out DIR is required/);
    assert.equal(await runTrain(["--out", tmp, "--trainers", "0"]), 2);
    assert.match(errors.at(-1)!, /--trainers must be an integer from 1/);
    assert.equal(await runTrain(["--out", tmp, "--size", "huge"]), 2);
    assert.match(errors.at(-1)!, /--size must be one of tiny/);
    assert.equal(await runTrain(["--out", tmp, "--steps", "1.5"]), 2);
    assert.equal(await runTrain(["--out", tmp, "--width", "30", "--heads", "4"]), 2);
    assert.match(errors.at(-1)!, /not a multiple/);
    assert.equal(await runTrain(["--out", tmp, "--log-format", "xml"]), 2);
    assert.equal(await runTrain(["--out", tmp, "--bogus"]), 2);
    // Numbers are read as `start` reads them: "" (an unset "$SEED"), hex and exponents are
    // refused, not taken as 0, 16 and 1000.
    for (const [flag, value] of [["--seed", ""], ["--steps", "0x10"], ["--rounds", "1e3"]]) {
      assert.equal(await runTrain(["--out", tmp, flag, value]), 2, `${flag} ${value}`);
      assert.match(errors.at(-1)!, /expects a whole number in decimal digits/);
    }
    assert.equal(await runTrain(["--out", tmp, "--lr", "5e-3"]), 2);
    assert.match(errors.at(-1)!, /--lr expects a decimal number/);
    assert.equal(await runTrain(["--out", tmp, "--minutes", ""]), 2);
    assert.match(errors.at(-1)!, /--minutes expects a decimal number/);
  } finally {
    console.error = error;
    console.log = log;
  }
});
