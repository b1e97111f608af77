/**
 * What `WorkerStepRerun` (`training/step_rerun.ts`) posts to its worker, seen through a fake worker
 * whose `postMessage` does what the runtime does (`structuredClone` with the transfer list: the
 * transferred buffers are detached here, and the copy is what the worker would get):
 * - a step's samples cross in a buffer of their own, transferred (review s77 vtrain F4: they are
 *   views of the trainer's whole decoded answer, and each step posted cloned all of it);
 * - the caller's step stays whole, so a step sent again to a fresh worker crosses whole too;
 * - a `fatal` answer (the worker's engine broke, review s77 vtrain F2) is a failed worker: logged,
 *   replaced, the step charged a try and sent again, not the step's verdict.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { StepRerunReply, StepRerunRequest } from "../../training/step_rerun.ts";
import { RERUN_ATTEMPTS, WorkerStepRerun } from "../../training/step_rerun.ts";
import type { VerifiedStep } from "../../training/step_verify.ts";
import type { TrainingReceipt } from "../../training/training_receipt.ts";
import { TEST_ARCH } from "./_fixtures.ts";

/** Bytes of the stand-in for a trainer's decoded answer, the samples' views' buffer. */
const ANSWER_BYTES = 1 << 20;
/** Bytes of each sample, and samples in the step. */
const SAMPLE_BYTES = 16;
const SAMPLES = 4;

/** A worker that records what crosses to it, as the runtime would hand it over. */
class FakeWorker {
  readonly got: StepRerunRequest[] = [];
  /** How many buffers each message transferred. */
  readonly transferred: number[] = [];
  onmessage: ((event: MessageEvent<StepRerunReply>) => void) | null = null;
  onerror: ((event: ErrorEvent) => void) | null = null;
  terminated = false;
  postMessage(message: StepRerunRequest, transfer: Transferable[] = []): void {
    this.got.push(structuredClone(message, { transfer }));
    this.transferred.push(transfer.length);
  }
  terminate(): void {
    this.terminated = true;
  }
  answer(reply: StepRerunReply): void {
    this.onmessage!({ data: reply } as MessageEvent<StepRerunReply>);
  }
}

/** A step whose samples are views of one answer-sized buffer, as `verifyOpeningsPlaintext`'s. */
function stepOfAnswer(): VerifiedStep {
  const answer = new Uint8Array(ANSWER_BYTES).map((_, i) => i % 251);
  const state = () => ({ weights: new Map(), m: new Map(), v: new Map() });
  return {
    step: 1,
    before: state(),
    after: state(),
    samples: Array.from(
      { length: SAMPLES },
      (_, j) => answer.subarray(1000 + j * SAMPLE_BYTES, 1000 + (j + 1) * SAMPLE_BYTES),
    ),
  };
}

const receipt = { trainer: new Uint8Array(32), steps: 3 } as unknown as TrainingReceipt;
const options = { arch: TEST_ARCH, startWeights: new Map() };

function fakeRerun() {
  const workers: FakeWorker[] = [];
  const lines: string[] = [];
  const rerun = new WorkerStepRerun({
    log: (line) => void lines.push(line),
    startWorker: () => {
      const worker = new FakeWorker();
      workers.push(worker);
      return worker as unknown as Worker;
    },
  });
  return { rerun, workers, lines };
}

Deno.test("a step's samples cross to the worker in a buffer of their own, transferred, not with the whole answer they are views of; the caller's step stays whole", async () => {
  const { rerun, workers } = fakeRerun();
  try {
    const step = stepOfAnswer();
    const sent = step.samples.map((s) => s.slice());
    const checked = rerun.check(receipt, step, options);
    checked.catch(() => {}); // awaited below; rejected by close() if an assertion fails first
    const [posted] = workers[0].got;
    for (const [j, sample] of posted.step.samples.entries()) {
      assert.deepEqual(sample, sent[j]);
      assert.ok(
        sample.buffer.byteLength < ANSWER_BYTES,
        `sample ${j} crossed with ${sample.buffer.byteLength} bytes: the whole answer`,
      );
    }
    assert.equal(workers[0].transferred[0], 1, "the samples' buffer transferred");
    assert.equal(posted.step.samples[0].buffer.byteLength, SAMPLES * SAMPLE_BYTES, "the batch");
    assert.deepEqual(step.samples, sent, "the caller's samples are not detached");
    workers[0].answer({ id: posted.id, ok: true, result: { ok: true } });
    assert.deepEqual(await checked, { ok: true });
  } finally {
    rerun.close();
  }
});

Deno.test("a worker that answers fatal (its engine broke) is logged and replaced, and the step is sent whole to the fresh worker; a step fatal on RERUN_ATTEMPTS workers fails step_rerun_failed", async () => {
  const { rerun, workers, lines } = fakeRerun();
  try {
    const step = stepOfAnswer();
    const sent = step.samples.map((s) => s.slice());
    const checked = rerun.check(receipt, step, options);
    checked.catch(() => {}); // awaited below; rejected by close() if an assertion fails first
    const fatal = (w: FakeWorker) =>
      w.answer({ id: w.got[0].id, ok: false, fatal: true, message: "RuntimeError: Aborted()" });
    fatal(workers[0]);
    assert.equal(workers.length, 2, "a fresh worker");
    assert.ok(workers[0].terminated, "the broken one terminated");
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0], /its re-run failed: RuntimeError: Aborted\(\).*try 2 of 2/);
    assert.deepEqual(workers[1].got[0].step.samples, sent, "sent again whole");
    for (let i = 1; i < RERUN_ATTEMPTS; i++) fatal(workers[i]);
    await assert.rejects(checked, { code: "step_rerun_failed" });
    assert.equal(workers.length, RERUN_ATTEMPTS);
  } finally {
    rerun.close();
  }
});
