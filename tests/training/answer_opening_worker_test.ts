/**
 * The validator opens a trainer's answer in its re-run worker (`training/step_rerun.ts`
 * `WorkerStepRerun.open`, `training/_step_rerun_worker.ts`): unsealing and the structure check
 * (`verifyOpeningsPlaintext`, 47 to 320 ms of the main thread for a `tiny` challenge's answer)
 * both run there, and give what the main thread gave. A worker that fills its JS heap while it
 * opens an answer ends with `ERR_WORKER_OUT_OF_MEMORY` and is replaced at once, like a worker the
 * silence bound calls dead, not 10 minutes later; an answer of more built values than it can hold
 * is convicted before they are built.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { encodeCbor } from "../../protocols/cbor.ts";
import { checkStepOpenings } from "../../training/step_check.ts";
import {
  openChallengedSteps,
  sealOpeningBytes,
  unsealStepOpenings,
} from "../../training/step_opening.ts";
import {
  IN_PROCESS_STEP_RERUN,
  type OpenedAnswer,
  type StepRerun,
  WorkerStepRerun,
} from "../../training/step_rerun.ts";
import { verifyOpeningsPlaintext } from "../../training/step_verify.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import { TrainingError } from "../../training/training_error.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { placeholderReceipt } from "./_placeholder_receipt.ts";
import { trainedRun } from "./_trained_run.ts";

/** The silence bound the tests give: never fired here (its timer only tells it apart). */
const SILENCE_MS = 4_321;
/**
 * How long the out-of-memory test waits for both workers' ends before it gives up: each decodes
 * some 190 MB before its limit stops it (2.3 s apart on an idle machine), far longer under load.
 */
const OUT_OF_MEMORY_GIVE_UP_MS = 120_000;
/** The re-run worker's heap limit in the out-of-memory test: what it needs to start, and some. */
const SMALL_HEAP_MB = 64;
/**
 * Numbers in the answer that fills the heap: not among the built values an answer is bounded by.
 * Each is a half-float (3 bytes on the wire) that the decoder boxes on the JS heap (16 bytes, the
 * array holding a string too), so 24 MB of plaintext decode to some 190 MB, past
 * {@link SMALL_HEAP_MB}. (An array of small integers is one large object, outside the limit.)
 */
const NUMBER_BOMB_ITEMS = 8_000_000;
/**
 * Empty arrays in an answer past its bound of built values: one byte each on the wire, and under
 * the answer's byte bound (831,416 bytes for the placeholder receipt's challenge of the test
 * model, `answerByteBound`), so the bound of built values is what refuses it.
 */
const ARRAY_BOMB_ITEMS = 800_000;
/**
 * An architecture whose honest answers are larger than the number bomb (a state of some 40 MB):
 * an answer within the byte bound (`answerByteBound`) can still fill a worker's small heap, and
 * the out-of-memory test opens it as one.
 */
const LARGE_ARCH = { numLayers: 4, hiddenSize: 256, numHeads: 4, contextLength: 128 };

/** CBOR of an array of `n` items of the one-byte encoding `item` (a definite 32-bit length). */
function arrayOf(n: number, item: number): Uint8Array {
  const bytes = new Uint8Array(5 + n).fill(item);
  bytes[0] = 0x9a;
  new DataView(bytes.buffer).setUint32(1, n);
  return bytes;
}

/** CBOR of an array of an empty string then `n` times 1.5 as a half-float (`f9 3e 00`). */
function boxedNumbers(n: number): Uint8Array {
  const bytes = new Uint8Array(6 + 3 * n);
  bytes[0] = 0x9a;
  new DataView(bytes.buffer).setUint32(1, n + 1);
  bytes[5] = 0x60;
  for (let at = 6; at < bytes.length; at += 3) bytes.set([0xf9, 0x3e, 0x00], at);
  return bytes;
}

/** A receipt, its challenge by a fresh validator, and `plaintext` sealed as the trainer's answer. */
function answerOf(plaintext: Uint8Array) {
  const trainer = Identity.generate();
  const validator = Identity.generate();
  const receipt = placeholderReceipt(0, "start", trainer);
  const challenge = drawTrainingChallenge(receipt, validator);
  const sealed = sealOpeningBytes(plaintext, challenge, trainer);
  return { receipt, challenge, sealed, validator };
}

Deno.test("the re-run worker opens an answer as the main thread does: the structure it checked, the states it decoded, and a refusal's reason", async () => {
  const trainer = Identity.generate();
  const validator = Identity.generate();
  const { start, report, trace } = await trainedRun(3, trainer);
  const challenge = drawTrainingChallenge(report.receipt, validator, { steps: 3 });
  const honest = await openChallengedSteps(trace, challenge);
  const garbage = sealOpeningBytes(encodeCbor({ not: "openings" }), challenge, trainer);
  const rerun = new WorkerStepRerun();
  try {
    for (const sealed of [honest, garbage]) {
      const here = unsealStepOpenings(sealed, challenge, report.receipt, validator);
      assert.ok(here.ok);
      const expected = verifyOpeningsPlaintext(
        report.receipt,
        challenge,
        here.plaintext,
        TEST_ARCH,
      );
      const opened = await rerun.open(sealed, challenge, report.receipt, validator, TEST_ARCH);
      assert.ok("structure" in opened);
      // Compared as bytes: this thread's decoder gives `Buffer`s where the clone gives
      // `Uint8Array`s of the same bytes.
      assert.deepEqual(encodeCbor(opened.unsealed), encodeCbor(here));
      assert.deepEqual(encodeCbor(opened.structure), encodeCbor(expected));
      assert.equal(opened.structure.ok, sealed === honest);
    }
    assert.equal(
      (await checkStepOpenings(report.receipt, challenge, honest, {
        validator,
        arch: TEST_ARCH,
        startWeights: start,
        delta: report.delta,
        shardSize: report.receipt.shardSize,
        rerun,
      })).ok,
      true,
      "an honest answer opened in the worker passes the check",
    );
    const other = Identity.generate();
    assert.deepEqual(
      await rerun.open(honest, challenge, report.receipt, other, TEST_ARCH),
      { unsealed: unsealStepOpenings(honest, challenge, report.receipt, other) },
      "sealed to another key: not opened, as on this thread",
    );
  } finally {
    rerun.close();
  }
});

Deno.test("a check whose re-run opens answers takes the structure it answers, not one checked on the main thread", async () => {
  const { receipt, challenge, sealed, validator } = answerOf(encodeCbor({ not: "openings" }));
  let opens = 0;
  const rerun: StepRerun = {
    check: IN_PROCESS_STEP_RERUN.check,
    open: (sealed, challenge, receipt, validator): Promise<OpenedAnswer> => {
      opens++;
      const unsealed = unsealStepOpenings(sealed, challenge, receipt, validator);
      assert.ok(unsealed.ok);
      return Promise.resolve({ unsealed, structure: { ok: false, why: "said by the worker" } });
    },
  };
  const result = await checkStepOpenings(receipt, challenge, sealed, {
    validator,
    arch: TEST_ARCH,
    startWeights: new Map(),
    shardSize: receipt.shardSize,
    rerun,
  });
  assert.equal(opens, 1);
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.reason, "opening_mismatch");
  assert.equal(!result.ok && result.detail, "said by the worker");
});

Deno.test("a re-run worker that fills its JS heap opening an answer is reported at once (ERR_WORKER_OUT_OF_MEMORY) and replaced, not found by the silence bound", async () => {
  const { receipt, challenge, sealed, validator } = answerOf(boxedNumbers(NUMBER_BOMB_ITEMS));
  const timers = new FakeTimers();
  const lines: string[] = [];
  const rerun = new WorkerStepRerun({
    silenceMs: SILENCE_MS,
    timers,
    heapMb: SMALL_HEAP_MB,
    log: (line) => void lines.push(line),
  });
  try {
    const opening = rerun.open(sealed, challenge, receipt, validator, LARGE_ARCH);
    opening.catch(() => {});
    // Both tries' workers fill their heaps; the silence bound is never fired here.
    await eventually(() => lines.length === 2, "two workers reported out of memory", {
      timeoutMs: OUT_OF_MEMORY_GIVE_UP_MS,
    });
    await assert.rejects(
      opening,
      (error) => error instanceof TrainingError && error.code === "step_rerun_failed",
    );
    for (const line of lines) assert.match(line, /ERR_WORKER_OUT_OF_MEMORY.*opened the answer/);
    assert.match(lines[1], /2 workers failed on it/);
  } finally {
    rerun.close();
  }
});

Deno.test("an answer of more maps, arrays and byte strings than the challenge's answer can hold is convicted as opening_mismatch before it is built, in the worker and on this thread alike", async () => {
  const { receipt, challenge, sealed, validator } = answerOf(arrayOf(ARRAY_BOMB_ITEMS, 0x80));
  const options = {
    validator,
    arch: TEST_ARCH,
    startWeights: new Map(),
    shardSize: receipt.shardSize,
  };
  const rerun = new WorkerStepRerun({ heapMb: SMALL_HEAP_MB });
  try {
    for (const where of [rerun, IN_PROCESS_STEP_RERUN]) {
      const result = await checkStepOpenings(receipt, challenge, sealed, {
        ...options,
        rerun: where,
      });
      assert.equal(!result.ok && result.reason, "opening_mismatch");
      assert.equal(!result.ok && result.detail, "not CBOR");
      assert.ok(!result.ok && result.proof !== undefined, "with its proof");
    }
  } finally {
    rerun.close();
  }
});
