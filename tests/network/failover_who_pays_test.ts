/**
 * Who pays when a routed job's worker fails (`network/failover.ts`,
 * `network/network_inference_port.ts`), and what a worker that takes a job over can get the router
 * to relay, accept and pay.
 */
import assert from "node:assert/strict";
import { InvalidResumeError, ResumeMismatchError } from "../../inference/resumed_generation.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import {
  INFERENCE_PROTOCOL,
  type InferenceEvent,
  type SubmitBody,
  SubmitMessage,
} from "../../protocols/inference_messages.ts";
import type { JobAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { type StreamClaim, verifyStreamClaim } from "../../protocols/stream_commitment.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { DEFAULT_STALL_TIMEOUT_MS, DEFAULT_START_TIMEOUT_MS } from "../../inference/remote_port.ts";
import { eventually, params } from "../server/_fixtures.ts";
import { jobFor, linked, type TestWorker, TEXT, token, TOKENS } from "./_hostile_worker_fixture.ts";
import {
  type CrashingWorker,
  crashingWorker,
  endEvent,
  events,
  receiptFor,
  router,
  run,
  scriptedWorker,
  signed,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { StreamedToken } from "../../inference/inference_port.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { parseReceipt } from "../../protocols/receipt.ts";
import { fingerprintOf } from "../../proof/fingerprint.ts";
import { proveJob } from "../../proof/prover.ts";
import { spawnRouter, Workers } from "./_router_doubles.ts";

// ---- failover who pays ----------------------------------------------------------------------------
// Who pays when a routed job's worker fails (`network/failover.ts`,
// `network/network_inference_port.ts`): one test per way a routed job can end, each pinning what
// the client sees (every position once, none missing, or a clear error) and what reaches the
// router's validator, the ledger's input — the one receipt that credits a worker, with the
// assignment naming it, or nothing (nobody paid) — and whom the router blames locally (kept off the
// model, or asked last).
//
// Workers are in-memory connections that write scripted `inference.event`s
// (`_scripted_worker_fixture.ts`); the router runs on a fake clock.

/** An honest worker: runs each job from where it is asked to resume, to its end and receipt. */
function honest(): Promise<TestWorker> {
  return scriptedWorker((body, _n, identity) => {
    const k = body.resume?.length ?? 0;
    const list: InferenceEvent[] = [start(body.job, k > 0 ? { resumedFrom: k } : {})];
    for (let i = k; i < TOKENS; i++) list.push(wireToken(i));
    list.push(endEvent(body.job, TOKENS - k, receiptFor(body.job, identity, TEXT)));
    return events(list);
  });
}

/** Every position of the job once, in order. */
const ALL = Array.from({ length: TOKENS }, (_, i) => i);

/**
 * The ledger's input: for each receipt the router handed its validator, the worker it credits
 * (the receipt's origin), checked to be the worker its assignment names.
 */
function credited(told: ValidatorMessage[]): string[] {
  return told.filter((m) => m.type === "receipt").map((m) => {
    assert.ok(m.type === "receipt");
    const assignment = m.assignment as JobAssignment;
    assert.equal(toHex(assignment.worker), m.origin, "assigned to another worker");
    return m.origin!;
  });
}

/** Close each worker and shut the router down. */
async function closeAll(r: Awaited<ReturnType<typeof router>>, workers: TestWorker[]) {
  for (const w of workers) await w.close();
  await r.system.shutdown();
}

Deno.test("who pays: a worker that refuses the job as full is asked last and spent nothing; the next worker runs it and is credited", async () => {
  const full = await scriptedWorker(() => {
    throw new VeriflowError("too_many_jobs", "full");
  });
  const good = await honest();
  const r = await router([full.toWorker, good.toWorker]);
  try {
    const got = await run(r.port, jobFor("refused-full"));
    assert.deepEqual(got.positions, ALL);
    assert.equal(full.submissions.length, 1);
    assert.deepEqual(credited(r.recorder.told), [good.key]);
    assert.equal(r.workers.avoided.has(full.key), false);
    assert.ok(r.busy.askedLast().includes(full.key), "the full worker is asked first");
  } finally {
    await closeAll(r, [full, good]);
  }
});

Deno.test("who pays: a worker that takes the job and never starts it is passed over at the start timeout and asked last; the next worker is credited", async () => {
  const silent = await linked((atWorker, submissions) => {
    atWorker.handle(SubmitMessage, (body) => {
      submissions.push(body);
      return new Promise<never>(() => {});
    });
  });
  const good = await honest();
  const r = await router([silent.toWorker, good.toWorker]);
  try {
    const running = run(r.port, jobFor("never-starts"));
    await eventually(() => silent.submissions.length === 1, "the silent worker asked first");
    await r.timers.advance(DEFAULT_START_TIMEOUT_MS);
    const got = await running;
    assert.deepEqual(got.positions, ALL);
    assert.equal(good.submissions[0].resume, undefined);
    assert.deepEqual(credited(r.recorder.told), [good.key]);
    assert.ok(r.busy.askedLast().includes(silent.key), "the silent worker is asked first");
  } finally {
    await closeAll(r, [silent, good]);
  }
});

Deno.test("who pays: a worker that crashes before its first token — the next worker runs the job from its start and is credited for all of it; the crashed one is asked last, not kept off", async () => {
  const crashed = await crashingWorker([]);
  const good = await honest();
  const r = await router([crashed.toWorker, good.toWorker]);
  try {
    const got = await run(r.port, jobFor("crash-before-first"), crashed);
    assert.deepEqual(got.positions, ALL);
    assert.equal(got.text, TEXT);
    assert.equal(got.failed, undefined);
    assert.equal(good.submissions[0].resume, undefined, "a job nobody streamed is not resumed");
    assert.deepEqual(credited(r.recorder.told), [good.key]);
    assert.equal(r.workers.avoided.has(crashed.key), false);
    assert.ok(r.busy.askedLast().includes(crashed.key), "the crashed worker is asked first");
  } finally {
    await closeAll(r, [crashed, good]);
  }
});

Deno.test("who pays: a worker that crashes after two tokens — the takeover resumes from position 2, the client gets each position once, and the takeover alone is credited, for the whole job", async () => {
  const crashed = await crashingWorker([wireToken(0), wireToken(1)]);
  const good = await honest();
  const r = await router([crashed.toWorker, good.toWorker]);
  try {
    const got = await run(r.port, jobFor("crash-mid"), crashed);
    assert.deepEqual(got.positions, ALL);
    assert.equal(got.text, TEXT);
    assert.deepEqual(good.submissions[0].resume, [97, 98]);
    assert.equal(got.summary.finishReason, "length");
    assert.equal(got.summary.usage.completionTokens, TOKENS);
    assert.deepEqual(credited(r.recorder.told), [good.key], "the crashed worker signed nothing");
    assert.equal(r.workers.avoided.has(crashed.key), false);
    assert.ok(r.busy.askedLast().includes(crashed.key));
  } finally {
    await closeAll(r, [crashed, good]);
  }
});

Deno.test("who pays: a worker that fails a started job with an error frame of its own (internal_error) is kept off the model; the takeover is credited", async () => {
  const failing = await scriptedWorker((body) =>
    events(
      [start(body.job), wireToken(0)],
      Promise.resolve(new VeriflowError("internal_error", "model died")),
    )
  );
  const good = await honest();
  const r = await router([failing.toWorker, good.toWorker]);
  try {
    const got = await run(r.port, jobFor("own-error"));
    assert.deepEqual(got.positions, ALL);
    assert.deepEqual(good.submissions[0].resume, [97]);
    assert.deepEqual(credited(r.recorder.told), [good.key]);
    await eventually(() => r.workers.avoided.has(failing.key), "the failing worker kept off");
  } finally {
    await closeAll(r, [failing, good]);
  }
});

Deno.test("who pays: a duplicated (replayed) token frame breaks the worker's stream: the client never sees the position twice, the takeover resumes after it, and the duplicating worker is kept off the model and paid nothing", async () => {
  const replays = await scriptedWorker((body) =>
    events([start(body.job), wireToken(0), wireToken(1), wireToken(1), wireToken(2)])
  );
  const good = await honest();
  const r = await router([replays.toWorker, good.toWorker]);
  try {
    const got = await run(r.port, jobFor("replayed-frame"));
    assert.deepEqual(got.positions, ALL, "a position reached the client twice or not at all");
    assert.equal(got.text, TEXT);
    assert.deepEqual(good.submissions[0].resume, [97, 98]);
    assert.deepEqual(credited(r.recorder.told), [good.key]);
    await eventually(() => r.workers.avoided.has(replays.key), "the duplicating worker kept off");
  } finally {
    await closeAll(r, [replays, good]);
  }
});

Deno.test("who pays: garbage where a token is due (a second start frame) breaks the stream: the worker is kept off the model and paid nothing; the takeover finishes and is credited", async () => {
  const garbage = await scriptedWorker((body) =>
    events([start(body.job), wireToken(0), start(body.job), wireToken(1)])
  );
  const good = await honest();
  const r = await router([garbage.toWorker, good.toWorker]);
  try {
    const got = await run(r.port, jobFor("garbage-frame"));
    assert.deepEqual(got.positions, ALL);
    assert.deepEqual(credited(r.recorder.told), [good.key]);
    await eventually(() => r.workers.avoided.has(garbage.key), "the garbling worker kept off");
  } finally {
    await closeAll(r, [garbage, good]);
  }
});

Deno.test("who pays: a worker that answers for a job it was not given (its end carries a receipt signed for another job) is paid nothing, kept off the model, and the client is told receipt_rejected", async () => {
  const other = jobFor("someone-elses-job");
  const wrongJob = await scriptedWorker((body, _n, identity) => {
    const list: InferenceEvent[] = [start(body.job)];
    for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
    list.push(endEvent(body.job, TOKENS, receiptFor(other, identity, TEXT)));
    return events(list);
  });
  const r = await router([wrongJob.toWorker]);
  try {
    const got = await run(r.port, jobFor("answered-for-another"));
    assert.deepEqual(got.positions, ALL);
    assert.equal(got.summary.receipt, undefined);
    assert.equal(got.summary.error?.code, "receipt_rejected");
    assert.deepEqual(credited(r.recorder.told), [], "a receipt for another job was paid");
    await eventually(() => r.workers.avoided.has(wrongJob.key), "the worker kept off");
  } finally {
    await closeAll(r, [wrongJob]);
  }
});

Deno.test("who pays: a takeover that claims the resume and then replays the delivered positions is not relayed twice: it is kept off the model and the next worker finishes and is credited", async () => {
  const crashed = await crashingWorker([wireToken(0), wireToken(1)]);
  const replayer = await scriptedWorker((body) => {
    const k = body.resume?.length ?? 0;
    // It says it resumed from k, then streams from 0: the client's positions 0 and 1 again.
    return events([start(body.job, { resumedFrom: k }), wireToken(0), wireToken(1)]);
  });
  const good = await honest();
  const r = await router([crashed.toWorker, replayer.toWorker, good.toWorker]);
  try {
    const got = await run(r.port, jobFor("takeover-replays"), crashed);
    assert.deepEqual(got.positions, ALL, "a position reached the client twice");
    assert.deepEqual(good.submissions[0].resume, [97, 98]);
    assert.deepEqual(credited(r.recorder.told), [good.key]);
    await eventually(() => r.workers.avoided.has(replayer.key), "the replaying takeover kept off");
  } finally {
    await closeAll(r, [crashed, replayer, good]);
  }
});

Deno.test("who pays: a takeover whose receipt counts only its own part (tokenCount 4 of 6) is paid nothing and kept off the model; the client has its whole answer and is told receipt_rejected", async () => {
  const crashed = await crashingWorker([wireToken(0), wireToken(1)]);
  const short = await scriptedWorker((body, _n, identity) => {
    const k = body.resume?.length ?? 0;
    const list: InferenceEvent[] = [start(body.job, { resumedFrom: k })];
    for (let i = k; i < TOKENS; i++) list.push(wireToken(i));
    list.push(endEvent(body.job, TOKENS - k, receiptFor(body.job, identity, TEXT, TOKENS - k)));
    return events(list);
  });
  const r = await router([crashed.toWorker, short.toWorker]);
  try {
    const got = await run(r.port, jobFor("takeover-short-receipt"), crashed);
    assert.deepEqual(got.positions, ALL);
    assert.equal(got.summary.error?.code, "receipt_rejected");
    assert.deepEqual(credited(r.recorder.told), []);
    await eventually(() => r.workers.avoided.has(short.key), "the takeover kept off");
  } finally {
    await closeAll(r, [crashed, short]);
  }
});

Deno.test("who pays: a takeover that goes silent after its start is cut at the stall timeout and asked last; the next worker resumes from the same tokens and is credited", async () => {
  const crashed = await crashingWorker([wireToken(0), wireToken(1)]);
  const silent = await scriptedWorker((body) =>
    events([start(body.job, { resumedFrom: body.resume?.length ?? 0 })])
  );
  const good = await honest();
  const r = await router([crashed.toWorker, silent.toWorker, good.toWorker]);
  try {
    const running = run(r.port, jobFor("takeover-silent"), crashed);
    await eventually(() => silent.submissions.length === 1, "the job taken over");
    // Past the stall timeout on the router's clock, in steps so each timer set meanwhile fires.
    for (let waited = 0; waited <= DEFAULT_STALL_TIMEOUT_MS; waited += 1_000) {
      if (good.submissions.length > 0) break;
      await r.timers.advance(1_000);
    }
    const got = await running;
    assert.deepEqual(got.positions, ALL);
    assert.deepEqual(good.submissions[0].resume, [97, 98]);
    assert.deepEqual(credited(r.recorder.told), [good.key]);
    assert.ok(r.busy.askedLast().includes(silent.key), "the silent takeover is asked first");
  } finally {
    await closeAll(r, [crashed, silent, good]);
  }
});

Deno.test("who pays: a worker that streams the whole job and crashes before its end event is not failed over: the client has every token once, nothing is paid yet, and the job is remembered to ask its receipt", async () => {
  const tokens = Array.from({ length: TOKENS }, (_, i) => wireToken(i));
  const crashed = await crashingWorker(tokens);
  const good = await honest();
  const r = await router([crashed.toWorker, good.toWorker]);
  try {
    const got = await run(r.port, jobFor("crash-before-end"), crashed);
    assert.deepEqual(got.positions, ALL);
    assert.equal(got.failed, undefined, "the client's stream failed");
    // Failed before the fix: finishReason "error", a client with its whole answer told it
    // failed, while the receipt asked for later could still charge its requester for it.
    assert.equal(got.summary.finishReason, "length", "the client was told its answer failed");
    assert.equal(got.summary.error?.code, "connection_closed");
    assert.equal(got.summary.receipt, undefined);
    assert.equal(good.submissions.length, 0, "a job with nothing left to run was resumed");
    assert.deepEqual(credited(r.recorder.told), [], "paid before its receipt came");
    // Its signed stream is replayed instead (no takeover did), and it is asked last for a while,
    // as a worker lost mid-stream is (stop 68's second review: it was asked first again).
    assert.deepEqual(claimsOf(r.recorder.told).map((c) => c.worker), [crashed.key]);
    assert.ok(r.busy.askedLast().includes(crashed.key), "the dropper is asked first");
  } finally {
    await closeAll(r, [crashed, good]);
  }
});

/** Where the lying worker's tokens go wrong, and the wrong token it sends there. */
const WRONG_AT = 1;
const WRONG = { kind: "token", index: WRONG_AT, tokenId: 200, text: "Z" } as const;

// A worker that streams tokens that are not the job's output and then drops signed each event
// (`protocols/stream_commitment.ts`): when every takeover refuses its tokens (`resume_mismatch`),
// the router hands its validator the liar's signed head and the refused position, a stream claim
// the validator replays (`actors/_stream_claims.ts`; the ledger outcome is pinned in
// `tests/actors/validator_stream_claim_test.ts`).
Deno.test("who pays: a worker that delivers wrong tokens and drops is charged: the router hands its validator the worker's signed stream and the refused position", async () => {
  const liar = await crashingWorker([wireToken(0), WRONG]);
  const checker = await scriptedWorker((body) =>
    events(
      [start(body.job, { resumedFrom: body.resume?.length ?? 0 })],
      Promise.resolve(
        new ResumeMismatchError(
          `prefix token ${WRONG_AT} is ${WRONG.tokenId}, but the job's sampling rule gives ` +
            `${97 + WRONG_AT} here`,
          WRONG_AT,
        ),
      ),
    )
  );
  const r = await router([liar.toWorker, checker.toWorker]);
  try {
    const job = jobFor("left-open-liar");
    const got = await run(r.port, job, liar);
    assert.equal(got.failed, "delivered_tokens_diverged");
    // Failed before: nothing but receipts ever reached the validator, so no ledger could charge
    // the liar. Now its signed head over the two tokens it delivered, and where they went wrong.
    const claims = r.recorder.told.filter((m) => m.type === "stream_claim");
    assert.equal(claims.length, 1, "no stream claim reached the validator");
    const claim = (claims[0] as { claim: StreamClaim }).claim;
    assert.equal(toHex(claim.worker), liar.key);
    assert.deepEqual(claim.tokenIds, [token(0).tokenId, WRONG.tokenId]);
    assert.equal(claim.at, WRONG_AT);
    assert.equal(jobId(claim.job), got.handle.jobId, "the claim is not about the job routed");
    assert.ok(
      verifyStreamClaim(claim, got.handle.jobId),
      "the claim's signature is not the liar's",
    );
    assert.deepEqual(credited(r.recorder.told), [], "someone was paid");
  } finally {
    await closeAll(r, [liar, checker]);
  }
});

/** A takeover that starts the job and refuses the delivered tokens at `position`. */
function refuser(position: number): Promise<TestWorker> {
  return scriptedWorker((body) =>
    events(
      [start(body.job, { resumedFrom: body.resume?.length ?? 0 })],
      Promise.resolve(
        new ResumeMismatchError(
          `prefix token ${position} is ${body.resume?.[position]}, but the job's sampling rule ` +
            `gives 0 here`,
          position,
        ),
      ),
    )
  );
}

/** The stream claims the router told its validator: whom each accuses, where, over what. */
function claimsOf(told: ValidatorMessage[]) {
  return told.flatMap((m) => {
    if (m.type !== "stream_claim") return [];
    const claim = m.claim as StreamClaim;
    return [{ worker: toHex(claim.worker), at: claim.at, tokenIds: claim.tokenIds }];
  });
}

// From stop 68's review of the signed stream: the first and the third failed before (no claim
// reached the validator); the second's claim did, at the honest position, where the checker then
// looked alone and refuted it (`tests/proof/stream_check_test.ts` pins that half).
Deno.test("who pays: a takeover lost before its first token does not shield the liar lost before it: the claim is against the worker whose signed head covers the wrong token", async () => {
  const liar = await crashingWorker([wireToken(0), WRONG]);
  const dropper = await scriptedWorker((body) =>
    events(
      [start(body.job, { resumedFrom: body.resume?.length ?? 0 })],
      Promise.resolve(new VeriflowError("internal_error", "gone")),
    )
  );
  const checker = await refuser(WRONG_AT);
  const r = await router([liar.toWorker, dropper.toWorker, checker.toWorker]);
  try {
    const got = await run(r.port, jobFor("shielded-liar"), liar);
    assert.equal(got.failed, "delivered_tokens_diverged");
    assert.equal(dropper.submissions.length, 1, "the dropper did not take the job over");
    assert.deepEqual(claimsOf(r.recorder.told), [
      { worker: liar.key, at: WRONG_AT, tokenIds: [token(0).tokenId, WRONG.tokenId] },
    ]);
  } finally {
    await closeAll(r, [liar, dropper, checker]);
  }
});

Deno.test("who pays: a refuser that names an earlier, honest position (a near-tie its machine rounded the other way, or a colluder) still gets the liar claimed: its head covers the wrong token, and the checker judges every token a head covers", async () => {
  const liar = await crashingWorker([wireToken(0), WRONG]);
  const early = await refuser(0);
  const checker = await refuser(WRONG_AT);
  const r = await router([liar.toWorker, early.toWorker, checker.toWorker]);
  try {
    const got = await run(r.port, jobFor("early-refuser"), liar);
    assert.equal(got.failed, "delivered_tokens_diverged");
    assert.deepEqual(claimsOf(r.recorder.told), [
      { worker: liar.key, at: 0, tokenIds: [token(0).tokenId, WRONG.tokenId] },
    ]);
  } finally {
    await closeAll(r, [liar, early, checker]);
  }
});

Deno.test("who pays: a liar that ends its stream with an id outside the vocabulary, so every takeover refuses it before its start (invalid_resume), is claimed all the same; the client is told its tokens diverged", async () => {
  const outside = { kind: "token", index: 2, tokenId: 999_999, text: "" } as const;
  const liar = await crashingWorker([wireToken(0), WRONG, outside]);
  const takeover = await scriptedWorker(() => {
    throw new InvalidResumeError("prefix token 2 (999999) is outside the vocabulary");
  });
  const r = await router([liar.toWorker, takeover.toWorker]);
  try {
    const got = await run(r.port, jobFor("outside-vocabulary"), liar);
    assert.deepEqual(got.positions, [0, 1, 2]);
    assert.equal(takeover.submissions.length, 1);
    assert.equal(got.failed, "delivered_tokens_diverged");
    assert.deepEqual(claimsOf(r.recorder.told), [
      { worker: liar.key, at: 2, tokenIds: [token(0).tokenId, WRONG.tokenId, 999_999] },
    ]);
  } finally {
    await closeAll(r, [liar, takeover]);
  }
});

Deno.test("who pays: a liar that marks its wrong token as the job's last and drops before its end event is claimed: no takeover replays a finished job, so its whole signed stream goes to the validator", async () => {
  const last = { ...WRONG, finishReason: "stop" } as const;
  const liar = await crashingWorker([wireToken(0), last]);
  const r = await router([liar.toWorker]);
  try {
    const got = await run(r.port, jobFor("made-up-last"), liar);
    // The client was told its answer is complete; the receipt is asked for later.
    assert.equal(got.failed, undefined);
    assert.deepEqual(got.positions, [0, 1]);
    // Failed before stop 68's review: nothing reached the validator.
    assert.deepEqual(claimsOf(r.recorder.told), [
      { worker: liar.key, at: 1, tokenIds: [token(0).tokenId, WRONG.tokenId] },
    ]);
  } finally {
    await closeAll(r, [liar]);
  }
});

Deno.test("who pays: a liar that is the model's only worker, lost mid-stream with no takeover to judge its tokens, is claimed all the same: its whole signed stream goes to the validator", async () => {
  const liar = await crashingWorker([wireToken(0), WRONG]);
  const full = await scriptedWorker(() => {
    throw new VeriflowError("too_many_jobs", "full");
  });
  const r = await router([liar.toWorker, full.toWorker]);
  try {
    const got = await run(r.port, jobFor("only-worker"), liar);
    assert.equal(got.failed, "connection_closed");
    // Failed before stop 68's second review: with nobody to refuse its tokens, nothing reached
    // the validator.
    assert.deepEqual(claimsOf(r.recorder.told), [
      { worker: liar.key, at: 1, tokenIds: [token(0).tokenId, WRONG.tokenId] },
    ]);
  } finally {
    await closeAll(r, [liar, full]);
  }
});

Deno.test("who pays: a worker that marks an honest token as the job's last and drops cuts the answer short under its signature: the claim says its head is final, which the checker holds to the job's ending rule", async () => {
  const cut = { ...wireToken(0), finishReason: "stop" } as const;
  const cutter = await crashingWorker([cut]);
  const r = await router([cutter.toWorker]);
  try {
    const got = await run(r.port, jobFor("cut-short"), cutter);
    assert.equal(got.failed, undefined, "the client was told its answer is complete");
    assert.deepEqual(got.positions, [0]);
    // Failed before stop 68's second review: the finish reason was not signed, the claim could
    // not say the head ends the job, and the checker refuted every (honest) token.
    const claims = r.recorder.told.flatMap((m) =>
      m.type === "stream_claim" ? [m.claim as StreamClaim] : []
    );
    assert.equal(claims.length, 1);
    assert.equal(claims[0].final, true);
    assert.ok(verifyStreamClaim(claims[0], got.handle.jobId), "the final head is the worker's");
  } finally {
    await closeAll(r, [cutter]);
  }
});

Deno.test("who pays: a worker whose token event carries no signature of the job's stream is a broken stream: kept off the model, paid nothing, and the takeover is credited", async () => {
  const unsigned = await linked((atWorker, submissions) => {
    atWorker.handle(SubmitMessage, (body) => {
      submissions.push(body);
      return Promise.resolve(events([start(body.job), wireToken(0), wireToken(1)]));
    });
  });
  const good = await honest();
  const r = await router([unsigned.toWorker, good.toWorker]);
  try {
    const got = await run(r.port, jobFor("unsigned-stream"));
    // Not one of its tokens reached the client: the takeover ran the job from its start.
    assert.deepEqual(got.positions, ALL);
    assert.equal(got.text, TEXT);
    assert.deepEqual(good.submissions[0].resume, undefined);
    assert.deepEqual(credited(r.recorder.told), [good.key]);
    assert.equal(r.workers.avoided.has(unsigned.key), true, "the unsigned worker is not kept off");
  } finally {
    await closeAll(r, [unsigned, good]);
  }
});

// ---- a worker cut off for the frames it sent that its router refused ---------------------------
// The connection is lost (`too_many_refusals`), so the job moves on as for any loss, but through
// the worker's own doing (`network/_failure_codes.ts`): it is kept off the model, not only asked
// last, and cut off where its end event was due it is paid nothing.

/**
 * A worker that starts each job, sends `tokens`, and then, instead of anything more, sends its
 * router stream requests a router does not serve (a router takes no jobs): each is refused, and
 * past the connection's refusal limit the router cuts it off.
 */
function flooding(tokens: InferenceEvent[]) {
  return linked((atWorker, submissions, identity) => {
    atWorker.handle(SubmitMessage, (body) => {
      submissions.push(body);
      const list: InferenceEvent[] = [start(body.job), ...tokens];
      let i = 0;
      return Promise.resolve(
        signed(
          new ReadableStream<InferenceEvent>({
            pull: (c) => {
              if (i < list.length) return c.enqueue(list[i++]);
              for (let n = 0; n < 150; n++) {
                atWorker.openStream(SubmitMessage, body).cancel().catch(() => {});
              }
              return new Promise(() => {});
            },
          }, { highWaterMark: 0 }),
          identity,
          body,
        ),
      );
    });
  });
}

Deno.test("who pays: a worker that floods its router with refused messages mid-stream is cut off (too_many_refusals), kept off the model and paid nothing; the takeover resumes and is credited", async () => {
  const flooder = await flooding([wireToken(0), wireToken(1)]);
  const good = await honest();
  const r = await router([flooder.toWorker, good.toWorker]);
  try {
    const got = await run(r.port, jobFor("refusal-flood"));
    assert.deepEqual(got.positions, ALL);
    assert.equal(got.text, TEXT);
    assert.equal(flooder.toWorker.closeReason?.constructor.name, "TooManyRefusalsError");
    assert.deepEqual(good.submissions[0].resume, [97, 98]);
    assert.deepEqual(credited(r.recorder.told), [good.key]);
    await eventually(() => r.workers.avoided.has(flooder.key), "the flooder kept off the model");
  } finally {
    await closeAll(r, [flooder, good]);
  }
});

Deno.test("who pays: a worker that floods its router with refused messages where its end event was due is cut off, paid nothing and kept off the model; the client has every token", async () => {
  const flooder = await flooding(ALL.map((i) => wireToken(i)));
  const r = await router([flooder.toWorker]);
  try {
    const got = await run(r.port, jobFor("refusal-flood-at-end"));
    assert.deepEqual(got.positions, ALL);
    assert.equal(got.text, TEXT);
    assert.equal(got.summary.finishReason, "length");
    assert.equal(got.summary.receipt, undefined);
    assert.equal(got.summary.error?.code, "too_many_refusals");
    assert.deepEqual(credited(r.recorder.told), [], "a worker cut off at its end was paid");
    await eventually(() => r.workers.avoided.has(flooder.key), "the flooder kept off the model");
  } finally {
    await closeAll(r, [flooder]);
  }
});

// ---- a worker whose frames break the framing ----------------------------------------------------
// A frame past the router's limit is the worker's own doing (an honest worker's events fit: a token
// event is at most a few KB), so its connection's loss is a broken stream, as a refusal flood's is:
// kept off the model, not only asked last; and where its end was due, its receipt is not asked for
// later.

/** Bytes a frame from a worker may take on the router's side of these tests. */
const ROUTER_MAX_FRAME = 4096;

/**
 * A worker that starts each job, sends `tokens`, and once the client has read them all, a token
 * event far past the router's frame limit (a 1,000-character text with 20 alternatives as long:
 * about 21 KB). Read with `run(port, job, worker)`.
 */
async function oversized(tokens: InferenceEvent[]): Promise<CrashingWorker> {
  const identity = Identity.generate();
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, {
      identity: Identity.generate(),
      protocols,
      maxFrameBytes: ROUTER_MAX_FRAME,
    }),
    Connection.open(b, { identity, protocols }),
  ]);
  const delivered = Promise.withResolvers<void>();
  const submissions: SubmitBody[] = [];
  atWorker.handle(SubmitMessage, (body) => {
    submissions.push(body);
    const long = "x".repeat(1000);
    const huge: InferenceEvent = {
      kind: "token",
      index: tokens.length,
      tokenId: 120,
      text: long,
      top: Array.from({ length: 20 }, (_, i) => ({ tokenId: i, text: long, logprob: -1 })),
    };
    const list: InferenceEvent[] = [start(body.job), ...tokens];
    let i = 0;
    const stream = new ReadableStream<InferenceEvent>({
      pull: async (c) => {
        if (i < list.length) return c.enqueue(list[i++]);
        await delivered.promise;
        c.enqueue(huge);
        await new Promise(() => {});
      },
    }, { highWaterMark: 0 });
    return Promise.resolve(signed(stream, identity, body));
  });
  return {
    identity,
    key: toHex(identity.publicKey),
    toWorker,
    submissions,
    read: (n) => void (n === tokens.length && delivered.resolve()),
    close: async () => {
      await toWorker.close();
      await atWorker.close();
    },
  };
}

Deno.test("who pays: a worker that sends its router a frame past its limit mid-stream is cut off (frame_too_large), kept off the model and paid nothing; the takeover resumes and is credited", async () => {
  const breaker = await oversized([wireToken(0), wireToken(1)]);
  const good = await honest();
  const r = await router([breaker.toWorker, good.toWorker]);
  try {
    const got = await run(r.port, jobFor("frame-too-large"), breaker);
    assert.deepEqual(got.positions, ALL);
    assert.equal(got.text, TEXT);
    assert.equal((breaker.toWorker.closeReason as VeriflowError | null)?.code, "frame_too_large");
    assert.deepEqual(good.submissions[0].resume, [97, 98]);
    assert.deepEqual(credited(r.recorder.told), [good.key]);
    await eventually(() => r.workers.avoided.has(breaker.key), "the breaker kept off the model");
  } finally {
    await closeAll(r, [breaker, good]);
  }
});

Deno.test("who pays: a worker that sends its router a frame past its limit where its end event was due is paid nothing, kept off the model, and its receipt is not asked for later; the client has every token", async () => {
  const breaker = await oversized(ALL.map((i) => wireToken(i)));
  const r = await router([breaker.toWorker]);
  try {
    const got = await run(r.port, jobFor("frame-too-large-at-end"), breaker);
    assert.deepEqual(got.positions, ALL);
    assert.equal(got.summary.finishReason, "length");
    assert.equal(got.summary.receipt, undefined);
    assert.equal(got.summary.error?.code, "inference_stream_invalid");
    assert.deepEqual(credited(r.recorder.told), [], "a worker cut off at its end was paid");
    await eventually(() => r.workers.avoided.has(breaker.key), "the breaker kept off the model");
  } finally {
    await closeAll(r, [breaker]);
  }
});

// ---- what a takeover can get relayed and paid -----------------------------------------------------
// Failover seen from the wire, with workers scripted event by event: what a worker that takes over
// a job (or the first one) can and cannot get the router to relay, accept and pay.

const MODEL = { cid: "bafkreviewmodel", name: "review", kind: "text" as const };
const TOKENS_FAILOVER_REVIEW = 8;
const VOCAB = 256;
const ALPHABET = "abcdefghijklmnopqrstuvwxyz";

/** The job's true output, position by position, as a prover sees it. */
function chunk(index: number): TokenChunk {
  const text = ALPHABET[index];
  const tokenId = text.charCodeAt(0);
  return {
    index,
    tokenId,
    text,
    fingerprint: fingerprintOf(new Float32Array(VOCAB), tokenId),
    vocabSize: VOCAB,
    ...(index === TOKENS_FAILOVER_REVIEW - 1 ? { finishReason: "length" as const } : {}),
  };
}

/** Positions `from … to−1` as token events. */
function tokenEvents(from: number, to: number): InferenceEvent[] {
  const events: InferenceEvent[] = [];
  for (let i = from; i < to; i++) {
    const { index, tokenId, text, finishReason } = chunk(i);
    events.push({ kind: "token", index, tokenId, text, ...(finishReason ? { finishReason } : {}) });
  }
  return events;
}

function startFailoverReview(body: SubmitBody): InferenceEvent {
  const from = body.resume?.length ?? 0;
  return {
    kind: "start",
    jobId: jobId(body.job),
    model: MODEL,
    promptTokens: 2,
    ...(from > 0 ? { resumedFrom: from } : {}),
  };
}

/** An `end` event with a finished summary and the worker's receipt over positions `0 … n−1`. */
async function endOver(body: SubmitBody, identity: Identity, n: number): Promise<InferenceEvent> {
  const chunks = Array.from({ length: n }, (_, i) => chunk(i));
  const { receipt } = await proveJob(body.job, ReadableStream.from(chunks), identity);
  return {
    kind: "end",
    summary: {
      jobId: jobId(body.job),
      finishReason: "length",
      usage: { promptTokens: 2, completionTokens: n - (body.resume?.length ?? 0) },
      timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
      receipt,
    },
  };
}

interface ScriptedWorker {
  identity: Identity;
  toWorker: Connection;
  atWorker: Connection;
  submissions: SubmitBody[];
}

/** A worker answering each submission with the events `script` gives; `open`: never ends. */
async function scripted(
  script: (body: SubmitBody, identity: Identity) => Promise<InferenceEvent[]>,
  open = false,
): Promise<ScriptedWorker> {
  const identity = Identity.generate();
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols, closeGraceMs: 10 }),
    Connection.open(b, { identity, protocols, closeGraceMs: 10 }),
  ]);
  const submissions: SubmitBody[] = [];
  atWorker.handle(SubmitMessage, async (body) => {
    submissions.push(body);
    const events = await script(body, identity);
    return signed(
      new ReadableStream<InferenceEvent>({
        start: (c) => {
          events.forEach((e) => c.enqueue(e));
          if (!open) c.close();
        },
      }),
      identity,
      body,
    );
  });
  return { identity, toWorker, atWorker, submissions };
}

/** A router over `workers`, in the order it prefers them. */
async function routerOver(workers: ScriptedWorker[]) {
  const system = new ActorSystem({ name: "failover-review" });
  const net = new Workers(workers.map((w) => w.toWorker), [MODEL]);
  const { port, recorder, settled } = await spawnRouter(system, net);
  const job: TextJob = {
    kind: "text",
    model: MODEL.cid,
    prompt: "hi",
    params: params({ maxTokens: TOKENS_FAILOVER_REVIEW }),
    nonce: crypto.randomUUID(),
  };
  const close = async () => {
    for (const w of workers) {
      await w.toWorker.close();
      await w.atWorker.close();
    }
    await system.shutdown();
  };
  return { port, job, net, recorder, settled, close };
}

async function read(reader: ReadableStreamDefaultReader<StreamedToken>, n = Infinity) {
  const tokens: StreamedToken[] = [];
  while (tokens.length < n) {
    const { done, value } = await reader.read();
    if (done) break;
    tokens.push(value);
  }
  return tokens;
}

Deno.test("a worker that takes over a job and ends it at once, with a receipt over the lost worker's tokens, is not paid for them: the job resumes on the next worker and the client gets every token", async () => {
  const CUT = 3;
  // The first worker streams three tokens and is then lost.
  const first = await scripted(
    (body) => Promise.resolve([startFailoverReview(body), ...tokenEvents(0, CUT)]),
    true,
  );
  // The next one confirms the resume, produces nothing, and ends the job "finished" with a
  // receipt over the prefix it was handed: the lost worker's range, signed as its own.
  const taker = await scripted(async (body, identity) => [
    startFailoverReview(body),
    await endOver(body, identity, body.resume?.length ?? 0),
  ]);
  // An honest one resumes where it is asked and signs over the whole output.
  const honest = await scripted(async (body, identity) => [
    startFailoverReview(body),
    ...tokenEvents(body.resume?.length ?? 0, TOKENS_FAILOVER_REVIEW),
    await endOver(body, identity, TOKENS_FAILOVER_REVIEW),
  ]);
  const t = await routerOver([first, taker, honest]);
  try {
    const handle = await t.port.submit(t.job);
    const reader = handle.tokens.getReader();
    assert.deepEqual((await read(reader, CUT)).map((x) => x.index), [0, 1, 2]);
    await first.atWorker.close(); // the first worker dies
    const rest = await read(reader);
    assert.deepEqual(taker.submissions.map((s) => s.resume?.length), [CUT]);
    const summary = await handle.done;
    await t.settled();
    const paid = t.recorder.told.flatMap((m) => m.type === "receipt" ? [m.origin] : []);
    assert.ok(!paid.includes(toHex(taker.identity.publicKey)), "the taker's receipt is not paid");
    assert.deepEqual(rest.map((x) => x.index), [3, 4, 5, 6, 7], "no token missing");
    assert.equal(summary.finishReason, "length");
    assert.equal(summary.usage.completionTokens, TOKENS_FAILOVER_REVIEW);
    assert.equal(
      toHex(parseReceipt(summary.receipt).worker),
      toHex(honest.identity.publicKey),
      "the worker that produced the rest signs for the job",
    );
    assert.deepEqual(paid, [toHex(honest.identity.publicKey)]);
    assert.ok(t.net.avoided.has(toHex(taker.identity.publicKey)), "the taker is kept off");
  } finally {
    await t.close();
  }
});

Deno.test("a worker that streams past maxTokens (its last position not marked as the end) is a broken stream: the client gets exactly maxTokens tokens, the last from a worker that resumes at it", async () => {
  const OVER = 3;
  // Every token unmarked up to maxTokens + OVER, the last of those marked: more than the job.
  const greedy = await scripted((body) =>
    Promise.resolve([
      startFailoverReview(body),
      ...tokenEvents(0, TOKENS_FAILOVER_REVIEW - 1),
      ...Array.from({ length: OVER + 1 }, (_, i): InferenceEvent => ({
        kind: "token",
        index: TOKENS_FAILOVER_REVIEW - 1 + i,
        tokenId: 120,
        text: "x",
        ...(i === OVER ? { finishReason: "length" as const } : {}),
      })),
    ])
  );
  const honest = await scripted(async (body, identity) => [
    startFailoverReview(body),
    ...tokenEvents(body.resume?.length ?? 0, TOKENS_FAILOVER_REVIEW),
    await endOver(body, identity, TOKENS_FAILOVER_REVIEW),
  ]);
  const t = await routerOver([greedy, honest]);
  try {
    const handle = await t.port.submit(t.job);
    const tokens = await read(handle.tokens.getReader());
    const summary = await handle.done;
    assert.deepEqual(tokens.map((x) => x.index), [0, 1, 2, 3, 4, 5, 6, 7], "maxTokens, each once");
    assert.equal(tokens.map((x) => x.text).join(""), ALPHABET.slice(0, TOKENS_FAILOVER_REVIEW));
    assert.equal(tokens.at(-1)?.finishReason, "length");
    assert.equal(summary.usage.completionTokens, TOKENS_FAILOVER_REVIEW);
    assert.equal(summary.finishReason, "length");
    assert.equal(toHex(parseReceipt(summary.receipt).worker), toHex(honest.identity.publicKey));
    assert.ok(honest.submissions[0].resume !== undefined, "resumed, not started over");
    await t.settled();
    assert.ok(t.net.avoided.has(toHex(greedy.identity.publicKey)), "kept off the model");
  } finally {
    await t.close();
  }
});
