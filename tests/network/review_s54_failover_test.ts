/**
 * Review s54 of failover (`network/failover.ts`): a worker handed no prefix to replay cannot
 * refuse one. A worker that takes a job over before any token was delivered (the first worker
 * lost after its `start`, or a hedge beside a worker that holds the job queued) is submitted
 * the job from its beginning, with no `resume`; a `resume_mismatch` or `invalid_resume` from it
 * is a failure of its own, as any other code after its `start`, and it is reported lost (the
 * router keeps it off the model), not parked as an honest refuser of a prefix.
 */
import assert from "node:assert/strict";
import { type ResumeOutcome, withFailover, type WorkerAttempt } from "../../network/failover.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { ConnectionClosedError } from "../../protocols/protocol_errors.ts";
import type { ConnectionTimers } from "../../protocols/connection_timers.ts";
import type { StreamedToken } from "../../inference/inference_port.ts";
import { attempt, heldAttempt } from "./_failover_fixture.ts";

/** A worker that started the job and fails it with `code` before its first token. */
function failsAtOnce(worker: number, code: string): WorkerAttempt {
  const failing = attempt(worker, 0);
  failing.handle.tokens = new ReadableStream<StreamedToken>({
    pull: (controller) => controller.error(new VeriflowError(code, "no prefix of mine")),
  }, { highWaterMark: 0 });
  return failing;
}

/** A first worker lost after its `start`, before any token. */
function lostAtOnce(worker: number): WorkerAttempt {
  const lost = attempt(worker, 0);
  lost.handle.tokens = new ReadableStream<StreamedToken>({
    pull: (controller) => controller.error(new ConnectionClosedError("worker gone")),
  }, { highWaterMark: 0 });
  return lost;
}

for (const code of ["resume_mismatch", "invalid_resume"]) {
  Deno.test(`s54 failover: a worker that takes a job over before any token (no prefix to replay) and fails it with "${code}" is reported lost, not taken for a refuser of a prefix`, async () => {
    const lost: number[] = [];
    const blamed: number[] = [];
    const prefixes: number[] = [];
    const handle = withFailover({
      first: lostAtOnce(0),
      settle: (s) => s,
      lost: (worker) => void lost.push(worker[0]),
      unreproduced: (worker) => void blamed.push(worker[0]),
      resume(exclude, prefix): Promise<ResumeOutcome> {
        prefixes.push(prefix.length);
        const worker = exclude.length;
        return Promise.resolve({
          kind: "started",
          attempt: worker === 1 ? failsAtOnce(1, code) : attempt(worker, prefix.length),
        });
      },
    });
    const got: StreamedToken[] = [];
    for await (const t of handle.tokens) got.push(t);
    assert.deepEqual(got.map((t) => t.index), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(prefixes, [0, 0], "both takeovers were handed no prefix");
    // Worker 1 was handed nothing to reproduce: its code is its own failure.
    assert.deepEqual(lost, [0, 1]);
    assert.deepEqual(blamed, [], "worker 1 refused no prefix");
  });
}

/** A clock whose timers fire only when the test advances it. */
function fakeTimers() {
  let now = 0;
  const due: { at: number; fn: () => void; id: number }[] = [];
  let next = 1;
  const timers: ConnectionTimers = {
    now: () => now,
    setTimeout: (fn: () => void, ms: number) => {
      const id = next++;
      due.push({ at: now + ms, fn, id });
      return id;
    },
    clearTimeout: (id: unknown) => {
      const i = due.findIndex((t) => t.id === id);
      if (i >= 0) due.splice(i, 1);
    },
  } as unknown as ConnectionTimers;
  const advance = (ms: number) => {
    now += ms;
    for (const t of due.filter((t) => t.at <= now)) {
      due.splice(due.indexOf(t), 1);
      t.fn();
    }
  };
  return { timers, advance };
}

Deno.test(`s54 failover: a hedge asked beside a worker that holds the job before any token (no prefix to replay) and fails with "resume_mismatch" is reported lost`, async () => {
  const { timers, advance } = fakeTimers();
  // The first worker holds the job (started, no token) until released.
  const { attempt: first, release } = heldAttempt(0, 0);
  const lost: number[] = [];
  const hedgeAsked = Promise.withResolvers<void>();
  const handle = withFailover({
    first,
    settle: (s) => s,
    lost: (worker) => void lost.push(worker[0]),
    queueHoldMs: 1_000,
    timers,
    resume(): Promise<ResumeOutcome> {
      hedgeAsked.resolve();
      return Promise.resolve({ kind: "started", attempt: failsAtOnce(1, "resume_mismatch") });
    },
  });
  const reader = handle.tokens.getReader();
  const firstRead = reader.read();
  await Promise.resolve();
  advance(1_000);
  await hedgeAsked.promise;
  // Let the hedge's failure be taken in before the first worker streams on.
  for (let i = 0; i < 20; i++) await Promise.resolve();
  release();
  assert.equal((await firstRead).value?.index, 0);
  await reader.cancel();
  assert.deepEqual(lost, [1], "the hedge's own failure was not reported");
});
