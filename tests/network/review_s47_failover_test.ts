/**
 * Review s47 of failover (`network/failover.ts`): a job submitted with the client's own prefix
 * (`SubmitOptions.resume`) is a resume from its first worker on, and a worker that cannot
 * reproduce that prefix refuses it as any worker that takes a job over does.
 */
import assert from "node:assert/strict";
import { type ResumeOutcome, withFailover, type WorkerAttempt } from "../../network/failover.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { attempt } from "./_failover_fixture.ts";
import type { StreamedToken } from "../../inference/inference_port.ts";

/** A worker that started the job and refuses its prefix before its first token (after its start). */
function refusesPrefix(worker: number): WorkerAttempt {
  const refusing = attempt(worker, 0);
  refusing.handle.tokens = new ReadableStream<StreamedToken>({
    pull: (controller) =>
      controller.error(new VeriflowError("resume_mismatch", "not what my model gives")),
  }, { highWaterMark: 0 });
  return refusing;
}

/**
 * A job the client submits after its own 2 tokens; its first worker (0) refuses that prefix,
 * and each later worker asked either refuses it too or, from `reproducer` on, streams on.
 */
async function clientPrefix(reproducer: number) {
  const lost: number[] = [];
  const blamed: number[] = [];
  const handle = withFailover({
    first: refusesPrefix(0),
    prefix: [100, 101],
    settle: (s) => s,
    lost: (worker) => void lost.push(worker[0]),
    unreproduced: (worker) => void blamed.push(worker[0]),
    resume(exclude, prefix): Promise<ResumeOutcome> {
      const worker = exclude.length;
      if (worker > 3) return Promise.resolve({ kind: "none" });
      return Promise.resolve({
        kind: "started",
        attempt: worker >= reproducer ? attempt(worker, prefix.length) : refusesPrefix(worker),
      });
    },
  });
  const got: StreamedToken[] = [];
  let error: unknown;
  try {
    for await (const t of handle.tokens) got.push(t);
  } catch (e) {
    error = e;
  }
  return { got, error, lost, blamed, done: await handle.done };
}

Deno.test("s47 failover: a first worker that cannot reproduce the client's own prefix refused a resume; it is not reported lost, and once a later worker reproduces the prefix it is reported unreproduced", async () => {
  const { got, error, lost, blamed, done } = await clientPrefix(1);
  assert.equal(error, undefined);
  assert.deepEqual(got.map((t) => t.index), [2, 3, 4, 5]);
  assert.equal(done.finishReason, "length");
  // Reported lost, the router kept it off the model as one that failed a job it started.
  assert.deepEqual(lost, [], "an honest refusal of a prefix was taken for a failure");
  assert.deepEqual(blamed, [0]);
});

Deno.test("s47 failover: a client prefix every worker refuses blames none of them (it may be invented) and ends with the refusal's code", async () => {
  const { got, error, lost, blamed, done } = await clientPrefix(Infinity);
  assert.equal(got.length, 0);
  assert.equal((error as VeriflowError).code, "resume_mismatch");
  assert.match((error as Error).message, /could not reproduce the delivered tokens/);
  assert.deepEqual(lost, [], "honest workers that refused an invented prefix were blamed");
  assert.deepEqual(blamed, []);
  assert.equal(done.error?.code, "resume_mismatch");
});
