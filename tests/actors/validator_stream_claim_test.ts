/**
 * A stream claim in the validator (`actors/_stream_claims.ts`): this node's router lost a worker
 * that had streamed, signed, tokens the takeovers refused. The validator replays the position
 * with the job's model; a confirmed claim cuts the worker's stake (`slashMultiplier ×` the reward
 * of the tokens it signed) and pays this validator its share, once per job and worker; a refuted
 * or broken one moves nobody's stake or balance.
 */
import assert from "node:assert/strict";
import type { ReceiptHandled, StreamClaimHandled } from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { TextJob } from "../../protocols/job.ts";
import type { StreamCheckResult } from "../../proof/stream_check.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import { honestTokens } from "../proof/_stream_fixtures.ts";
import { f, HONEST_MODELS, proveOn, START, textJob } from "./_validator_fixture.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { failDuring } from "./_ledger_write_fault.ts";
import {
  claimed,
  claimOf,
  honestIds,
  job,
  leastLikelyAfter,
  lyingStream,
  me,
  setUp,
  STAKE,
  startValidator,
  streamCut,
  TOKENS,
  WRONG_AT,
} from "./_stream_claim_fixture.ts";

Deno.test("a stream claim the replay confirms cuts the lost worker's stake by m × the reward of the tokens it signed, pays this validator its share, is settled once per job, and the worker is routed around", async () => {
  const { validator, ledger, deposit, close, routedAround } = await setUp();
  try {
    const liar = Identity.generate();
    await deposit(liar.publicKey);
    await deposit(me.publicKey);
    const { j, ids } = await lyingStream("liar");
    const before = await ledger.account(me.publicKey);
    const { handled, check } = await claimed(validator, claimOf(j, liar, ids, WRONG_AT));
    assert.equal(handled.queued, true, `skipped: ${handled.skipped}`);
    assert.equal(check?.confirmed, true, `check: ${check?.reason}`);
    const slashed = streamCut(TOKENS);
    const worker = await ledger.account(liar.publicKey);
    assert.equal(worker.stake, STAKE - slashed, "the liar's stake");
    assert.equal(worker.balance, 0, "the liar was paid");
    const after = await ledger.account(me.publicKey);
    assert.equal(
      after.balance - before.balance,
      slashed * DEFAULT_ECONOMICS.validatorRewardShare,
      "this validator's reward",
    );
    // The same stream again, or at another position: settled already, nothing moves.
    for (const at of [WRONG_AT, WRONG_AT + 1]) {
      const again = await claimed(validator, claimOf(j, liar, ids, at));
      assert.equal(again.handled.queued, false, `at ${at}`);
      assert.equal(again.handled.skipped, "already_settled", `at ${at}`);
    }
    assert.equal((await ledger.account(liar.publicKey)).stake, STAKE - slashed);
    // Convicted here as a worker with a slashed receipt is: the network is told at once, and a
    // connection it opens later asks the ledger.
    assert.deepEqual(routedAround(), [toHex(liar.publicKey)]);
    assert.equal(await validator.ask({ type: "convicted", key: liar.publicKey }), true);
    const stats = await ledger.stats();
    assert.deepEqual(stats.streamClaims, { confirmed: 1, refuted: 0, undecided: 0 });
    assert.equal(stats.slashes, 1);
  } finally {
    await close();
  }
});

Deno.test("a stream claim against an honest worker's stream is refuted at every position it could name, and a broken claim convicts nobody: no stake or balance moves", async () => {
  const { validator, ledger, deposit, close, routedAround } = await setUp();
  try {
    const honest = Identity.generate();
    await deposit(honest.publicKey);
    await deposit(me.publicKey);
    const j = job("honest");
    const ids = await honestIds(j);
    const accounts = async () => [
      await ledger.account(honest.publicKey),
      await ledger.account(me.publicKey),
    ];
    const before = await accounts();
    for (const at of [0, WRONG_AT, TOKENS - 1]) {
      const { handled, check } = await claimed(validator, claimOf(j, honest, ids, at));
      assert.equal(handled.queued, true, `at ${at}: ${handled.skipped}`);
      assert.equal(check?.confirmed, false, `at ${at}`);
      assert.equal(check?.reason, "not_reproduced", `at ${at}`);
    }
    // A tampered stream, but signed by another key than the worker's it names.
    const wrong = [...ids];
    wrong[WRONG_AT] = await leastLikelyAfter(j, ids.slice(0, WRONG_AT));
    const forged = {
      ...claimOf(j, Identity.generate(), wrong, WRONG_AT),
      worker: honest.publicKey,
    };
    const { check } = await claimed(validator, forged);
    assert.equal(check?.reason, "bad_signature");
    assert.deepEqual(await accounts(), before, "a refuted or broken claim moved stake or balance");
    assert.deepEqual(routedAround(), []);
    assert.equal(await validator.ask({ type: "convicted", key: honest.publicKey }), false);
    // Three replays refuted and one broken claim; none convicted anyone.
    const stats = await ledger.stats();
    assert.deepEqual(stats.streamClaims, { confirmed: 0, refuted: 4, undecided: 0 });
    assert.equal(stats.slashes, 0);
    // Garbage, and this validator's own stream, are not taken at all.
    assert.equal((await claimed(validator, { job: j })).handled.skipped, "malformed");
    const own = await claimed(validator, claimOf(j, me, wrong, WRONG_AT));
    assert.equal(own.handled.skipped, "self_accusation");
  } finally {
    await close();
  }
});

Deno.test("a stream claim whose check throws (the model failed to load) is checked again at the next finalize tick, not lost: the liar is convicted", async () => {
  let failures = 1;
  const { validator, ledger, deposit, close } = await setUp({
    get: (cid) =>
      failures-- > 0
        ? Promise.reject(new Error("model load failed (transient)"))
        : HONEST_MODELS.get(cid),
  });
  try {
    const liar = Identity.generate();
    await deposit(liar.publicKey);
    const j = job("retry");
    // An id outside the vocabulary: confirmed without a forward pass, once the model is there.
    const claim = claimOf(j, liar, [f.honest.info.vocabSize + 5], 0);
    const handled = await validator.ask<StreamClaimHandled>({ type: "stream_claim", claim });
    assert.equal(handled.queued, true);
    // Failed before stop 68's review: the first check threw, and the claim was dropped for good.
    let checked: StreamCheckResult | undefined;
    handled.result!.then((c) => checked = c, () => {});
    // Each finalize tick checks again what threw; the first tick may come before the first
    // check has thrown.
    await eventually(async () => {
      await validator.ask({ type: "finalize" });
      return checked !== undefined;
    }, "the claim's check");
    const check = checked;
    assert.equal(failures, -1, "checked twice: once failed, once again");
    assert.equal(check?.reason, "confirmed");
    const slashed = streamCut(1);
    assert.equal((await ledger.account(liar.publicKey)).stake, STAKE - slashed);
  } finally {
    await close();
  }
});

Deno.test("a stream claim taken and not settled when the validator stops is taken again at its start: the liar is convicted after the restart", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const liar = Identity.generate();
  const j = job("restart");
  // An id outside the vocabulary: confirmed without a forward pass, once the model is there.
  const claim = claimOf(j, liar, [f.honest.info.vocabSize + 5], 0);
  try {
    // The model fails to load before the stop: the claim waits for the next tick.
    let loads = 0;
    const down = await startValidator(dir, clock, {
      get: () => (loads++, Promise.reject(new Error("model load failed"))),
    });
    await down.deposit(liar.publicKey);
    const handled = await down.validator.ask<StreamClaimHandled>({ type: "stream_claim", claim });
    assert.equal(handled.queued, true);
    await eventually(() => loads === 1, "the first check");
    await down.system.shutdown();
    // Failed before: the claim lived in memory only, and the restart forgot it.
    const up = await startValidator(dir, clock);
    try {
      const ledger = up.ledger;
      const slashed = streamCut(1);
      await eventually(
        async () => (await ledger.account(liar.publicKey)).stake === STAKE - slashed,
        "the liar convicted after the restart",
      );
    } finally {
      await up.system.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a worker convicted of a job's stream is not paid for the job anywhere: its receipt for it, handed in with this node's assignment (a lost end's), is recorded unpaid and not passed on to other ledgers; an honest worker's is", async () => {
  const { validator, ledger, deposit, close, announced } = await setUp();
  try {
    const liar = Identity.generate();
    const honest = Identity.generate();
    await deposit(liar.publicKey);
    await deposit(honest.publicKey);
    const handIn = async (j: TextJob, worker: Identity) => {
      const { receipt } = await proveOn(j, worker);
      const assignment = signAssignment({ job: j, worker: worker.publicKey, issuedAt: 0 }, me);
      const origin = toHex(worker.publicKey);
      return await validator.ask<ReceiptHandled>({
        type: "receipt",
        receipt,
        job: j,
        assignment,
        origin,
        announce: true,
      });
    };
    const j = textJob(me, "convicted-receipt");
    const ids = await honestTokens(f.honest, j);
    ids[3] = await leastLikelyAfter(j, ids.slice(0, 3));
    const { check } = await claimed(validator, claimOf(j, liar, ids, 3));
    assert.equal(check?.reason, "confirmed");
    const unpaid = await handIn(j, liar);
    assert.equal(unpaid.recorded, true);
    assert.equal((await ledger.record(unpaid.receiptId))?.credit, 0, "credited here");
    const paid = await handIn(textJob(me, "honest-receipt"), honest);
    assert.ok(((await ledger.record(paid.receiptId))?.credit ?? 0) > 0);
    // Failed before stop 68's second review: the convicted worker's receipt went out to every
    // peer ledger with this node's assignment, and each paid it in full.
    assert.deepEqual(announced(), [toHex(honest.publicKey)]);
  } finally {
    await close();
  }
});

for (const fault of ["append", "index"] as const) {
  Deno.test(`a stream conviction whose ledger write fails (${fault}) is settled after the validator's restart and passed on to the network: the liar is cut here and every ledger hears of it`, async () => {
    const { validator, ledger, deposit, close, told, system } = await setUp();
    let restarts = 0;
    system.events.subscribe((e) => {
      if (e.name === "node/validator" && e.type === "restarted") restarts++;
    });
    const restore = failDuring("settleStreamFraud", fault, 1);
    try {
      const liar = Identity.generate();
      await deposit(liar.publicKey);
      const { j, ids } = await lyingStream(`write-fails-${fault}`, me);
      const handled = await validator.ask<StreamClaimHandled>({
        type: "stream_claim",
        claim: claimOf(j, liar, ids, WRONG_AT),
      });
      assert.equal(handled.queued, true);
      handled.result?.catch(() => {});
      await eventually(() => restarts > 0, "the validator's restart");
      // Failed before review s69: the claim was forgotten before its settlement was written, and
      // the restart never saw it (append: the liar kept its stake; index: convicted here, passed
      // on to no other ledger).
      const slashed = streamCut(TOKENS);
      await eventually(
        async () => (await ledger.account(liar.publicKey)).stake === STAKE - slashed,
        "the liar convicted after the restart",
      );
      await eventually(
        () => told.some((m) => m.type === "publish_stream_proof"),
        "the conviction passed on",
      );
    } finally {
      restore();
      await close();
    }
  });
}
