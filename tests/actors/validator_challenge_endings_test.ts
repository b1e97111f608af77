/**
 * How a challenge ends on the ledger (`actors/_challenge_endings.ts`, docs/PROOF.md's "challenge
 * ends" table): an ending outlives a ledger write that fails, a kept ending its own verdict does
 * not call for moves nothing, and every branch is asserted by the accounts of everyone it touches.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { endingWriteFails, peerProofWriteFails, STAKE } from "./_ledger_write_fault.ts";
import { ChallengeEndings } from "../../actors/_challenge_endings.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProofHandled, ValidatorModelSource } from "../../actors/validator_messages.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { validateReceipt } from "../../proof/validation.ts";
import type { TextModel } from "../../inference/text_model.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import {
  announceAssigned,
  disguised,
  f,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
  withheldVerdict,
} from "./_validator_fixture.ts";
import { eventually } from "../_helpers/wait.ts";

// -------------------------------------------------------------------------------------------------
// A challenge's ending outlives a ledger write that fails with a disk error. The ValidatorActor
// owns its ledger: a failed write poisons it, the actor crashes, and its supervisor restarts it
// with the ledger reopened from disk. Before, the restart found the receipt still `challenged`
// with nothing kept of how its challenge had ended, and left it unresolved: an honest worker
// whose challenge passed was never paid there, a cheat the validator had caught (its own fraud
// proof, or proof data withheld) kept its stake. The ending is now kept on disk before the ledger
// is asked, and applied at the restart; an ending the ledger already has (the write reached the
// log, the crash came after it) is applied once, not twice.
//
// The failing write is a fake (`_ledger_write_fault.ts`): the ledger log's append (nothing
// written) or the history index's apply (the entry durable in the log) throws an I/O-like error
// once, during one named ledger call. No clock is raced: the ledger's clock is the test's.

Deno.test("a valid challenge whose clearing write fails with a disk error is cleared after the restart: the honest worker is paid", async () => {
  const out = await endingWriteFails("honest", "clearChallenge", "append");
  assert.equal(out.status, "final", `the honest work ended ${out.status}`);
  assert.equal(out.worker.balance, out.reward, "the honest worker was not paid");
  assert.equal(out.worker.stake, STAKE);
});

Deno.test("a clearing whose write fails again at the restart is applied at the restart after it: the honest worker is paid", async () => {
  const out = await endingWriteFails("honest", "clearChallenge", "append", { times: 2 });
  assert.equal(out.crashes, 2, "the restart's write did not fail");
  assert.equal(out.status, "final", `the honest work ended ${out.status}`);
  assert.equal(out.worker.balance, out.reward, "the honest worker was not paid");
});

Deno.test("a caught cheat whose fraud settlement write fails with a disk error is slashed after the restart, and the validator earns its share", async () => {
  const out = await endingWriteFails("cheat", "settleFraud", "append");
  assert.equal(out.status, "fraud", `the cheat's receipt ended ${out.status}`);
  assert.equal(out.worker.stake, STAKE - out.slash, "the cheat kept its stake");
  assert.equal(out.worker.balance, 0, "the cheat was paid");
  assert.equal(out.validator.balance, out.slash * DEFAULT_ECONOMICS.validatorRewardShare);
});

Deno.test("a worker that withheld its proof data, whose fault write fails with a disk error, is slashed after the restart", async () => {
  const out = await endingWriteFails("withheld", "settleFault", "append");
  assert.equal(out.status, "fraud", `the withheld receipt ended ${out.status}`);
  assert.equal(out.worker.stake, STAKE - out.slash, "the worker that withheld kept its stake");
  assert.equal(out.worker.balance, 0);
});

Deno.test("a clearing that reached the ledger before the crash is applied once after the restart: the worker is paid once", async () => {
  const out = await endingWriteFails("honest", "clearChallenge", "index");
  assert.equal(out.crashes, 1);
  assert.equal(out.status, "final");
  assert.equal(out.worker.balance, out.reward, "paid other than once");
  assert.equal(out.worker.stake, STAKE);
});

Deno.test("a fraud settlement that reached the ledger before the crash is applied once after the restart: the cheat is slashed once", async () => {
  const out = await endingWriteFails("cheat", "settleFraud", "index");
  assert.equal(out.crashes, 1);
  assert.equal(out.status, "fraud");
  assert.equal(out.worker.stake, STAKE - out.slash, "slashed other than once");
  assert.equal(out.validator.balance, out.slash * DEFAULT_ECONOMICS.validatorRewardShare);
});

Deno.test("a fault that reached the ledger before the crash is applied once after the restart: slashed once", async () => {
  const out = await endingWriteFails("withheld", "settleFault", "index");
  assert.equal(out.crashes, 1);
  assert.equal(out.status, "fraud");
  assert.equal(out.worker.stake, STAKE - out.slash, "slashed other than once");
});

/** After one crash and the restart, the cheat a peer's proof caught is slashed here and not paid. */
function assertCheatSlashedAfterRestart(
  out: Awaited<ReturnType<typeof peerProofWriteFails>>,
): void {
  assert.equal(out.crashes, 1);
  assert.equal(out.status, "fraud", `the cheat's receipt ended ${out.status}`);
  assert.equal(out.cheat.stake, STAKE - out.slash, "the cheat kept its stake");
  assert.equal(out.cheat.balance, 0, "the cheat was paid");
}

Deno.test("a peer's fraud proof whose settlement write fails with a disk error is settled after the restart: the cheat it caught is slashed here", async () => {
  const out = await peerProofWriteFails("settlement");
  assertCheatSlashedAfterRestart(out);
  assert.ok(out.accuser.balance > 0, "the accuser was not rewarded");
});

Deno.test("a peer's fraud proof checked when another write fails (its settlement queued behind it) is settled after the restart: the cheat is slashed here", async () => {
  assertCheatSlashedAfterRestart(await peerProofWriteFails("checked"));
});

// -------------------------------------------------------------------------------------------------
// The kept challenge endings (`actors/_challenge_endings.ts`): what the start takes from disk, and
// what it tells. The verdict in a kept ending is signed, and checked by the ledger; the transition
// beside it (`cleared`, `fault`, `unresolved`) and its reason are not. An ending whose transition
// its own verdict does not call for (a `valid` verdict beside `fault`) is not this validator's
// decision, and must not move the ledger: before, the start applied it, and slashed the honest
// worker whose challenge had passed.
//
// And a kept ending applied at the start is the network's news as well as this ledger's: when the
// write that failed was the verdict's own, the verdict had never been passed on, and the start
// that recorded it did not pass it on either (the peers never heard of a worker that withheld).
//
// The failing write is `_ledger_write_fault.ts`'s fake.

Deno.test("a kept ending whose transition its own signed verdict does not call for (valid beside fault) is not applied at the start: the honest worker is not slashed", async () => {
  // The clearing's write fails (nothing written): the validator crashes with the ending kept.
  // Before the ledger is reopened, the kept file is written over: same signed verdict, `fault`.
  const out = await endingWriteFails("honest", "clearChallenge", "append", {
    async beforeReopen(ledgerDir, id) {
      const endings = ChallengeEndings.in(ledgerDir);
      const kept = (await endings.all()).get(id);
      assert.equal(kept?.end, "cleared", "no clearing was kept");
      await endings.keep(id, { ...kept!, end: "fault", reason: "proof_unavailable" });
    },
  });
  assert.notEqual(out.status, "fraud", "a valid verdict's receipt ended as a fault");
  assert.equal(out.worker.stake, STAKE, "the honest worker was slashed");
  assert.equal(out.stats.slashes, 0);
});

Deno.test("a fault whose verdict write failed is passed on to the network when the restart applies it", async () => {
  const out = await endingWriteFails("withheld", "recordVerdict", "append", { network: true });
  assert.equal(out.status, "fraud");
  assert.equal(out.worker.stake, STAKE - out.slash);
  const published = out.told.filter((m) => m.type === "publish_verdict");
  assert.equal(
    published.length,
    1,
    "the verdict of the fault applied at the start was never passed on",
  );
  assert.ok(out.told.some((m) => m.type === "peer_convicted"), "the slashed worker was not named");
  assert.equal(out.stats.slashes, 1);
  assert.equal(out.stats.verdicts.invalid, 1, "the verdict recorded at the start was not counted");
});

Deno.test("a kept ending rewritten to `cleared` beside an inconclusive verdict of a challenge this validator drew (not a takeover) is not applied at the start: the undecided job is not paid", async () => {
  // The model is listed (the receipt is credited and drawn) but never loads: the challenge ends
  // `inconclusive / model_unavailable`, unresolved. Its verdict write fails: the validator
  // crashes with the ending kept. Before the ledger is reopened, the kept file is written over:
  // same signed verdict, `cleared` — the ending a takeover's inconclusive verdict would call for.
  const out = await endingWriteFails("honest", "recordVerdict", "append", {
    models: { has: () => Promise.resolve(true), get: () => Promise.resolve(undefined) },
    async beforeReopen(ledgerDir, id) {
      const endings = ChallengeEndings.in(ledgerDir);
      const kept = (await endings.all()).get(id);
      assert.equal(kept?.end, "unresolved", "no unresolved ending was kept");
      assert.equal(kept!.verdict.outcome, "inconclusive");
      await endings.keep(id, { ...kept!, end: "cleared" });
    },
  });
  assert.equal(out.worker.balance, 0, "the undecided job was paid");
  assert.notEqual(out.status, "final", "the undecided job was finalized");
  assert.equal(out.worker.stake, STAKE, "the worker was slashed");
  assert.equal(out.stats.unresolved, 1, "the challenge did not end unresolved");
});

// -------------------------------------------------------------------------------------------------
// The rows of docs/PROOF.md's "challenge ends" table that no test pinned down by their ledger
// outcome. Each test drives a ValidatorActor on an injected ledger clock and asserts the accounts
// of everyone the branch touches (the worker's balance, stake and lock, the validator's), not only
// the verdict or the receipt's status:
//
// - an own challenge that caught a cheat but whose fraud proof's check throws
//   (`fraud_check_error`): undecided, the worker unpaid with its stake released, the validator
//   charged nothing; a peer's confirmed proof inside the window still slashes it;
// - an own challenge whose fraud proof the check refutes: the validator pays the false
//   accusation, the work stands and is paid when its window closes;
// - an own challenge ending `inconclusive / validator_error`: unpaid, the lock released, nobody
//   slashed and nobody rewarded;
// - a takeover (a peer's "proof withheld" claim) that found fraud but whose own proof's check
//   throws: it decided nothing, so the work is paid as without the claim. Before, the receipt was
//   left `unresolved`, the honest worker unpaid for a false claim and this validator's own gap;
// - a `commitment` fraud proof (signed served data that does not open the worker's commitment),
//   this validator's own or a peer's, while the receipt's model fails to load: it needs no
//   model, so it slashes the cheat. Before, the check loaded the model all the same and threw,
//   leaving the own catch `unresolved` (the cheat kept its stake) and the peer's undecided (the
//   cheat was paid here).

const WORKER_STAKE = 10_000;
const VALIDATOR_STAKE = 1_000;
const ACCUSER_STAKE = 1_000;

/**
 * A validator drawing every receipt (`p`, default 1) whose model source answers its n-th load
 * with `loads[n]` (the last one repeated): a model, or an error it throws.
 */
async function drawingValidator(loads: (TextModel | Error)[], p = 1) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, worker, requester, accuser] = Array.from({ length: 4 }, Identity.generate);
  const served = new Map<string, ServedProof>();
  let n = 0;
  const models: ValidatorModelSource = {
    has: (cid) => cid === f.honest.info.cid,
    get: () => {
      const load = loads[Math.min(n++, loads.length - 1)];
      return load instanceof Error ? Promise.reject(load) : Promise.resolve(load);
    },
  };
  const system = new ActorSystem({ name: "review-s50-branch-ledger" });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: p,
    models,
    source: { proof: (r: Receipt) => Promise.resolve(served.get(receiptId(r))) },
  });
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  await validator.ask({ type: "deposit", key: me.publicKey, amount: VALIDATOR_STAKE });
  await validator.ask({ type: "deposit", key: accuser.publicKey, amount: ACCUSER_STAKE });
  const reads = ledgerReads(() => validator, clock);
  /**
   * `worker` runs a job on `model`, serves its proof data (as `serve` makes it of the honest
   * served data; default as is), and the requester announces it.
   */
  const work = async (
    nonce: string,
    model: TextModel,
    serve: (id: string, honest: ServedProof, worker: Identity) => ServedProof = (_, s) => s,
  ) => {
    const job = textJob(requester, nonce);
    const proved = await proveOn(job, worker, model);
    const id = receiptId(proved.receipt);
    served.set(id, serve(id, signServedProof(id, proved.proof, worker), worker));
    const handled = await announceAssigned(validator, proved.receipt, job, requester);
    return { job, proved, id, handled };
  };
  return {
    me,
    worker,
    accuser,
    validator,
    work,
    ...reads,
    /** The own fraud proof's check runs off the mailbox: wait for it to end the challenge. */
    async checked(id: string) {
      await eventually(
        async () => (await reads.record(id))?.status !== "challenged",
        "the own proof's check to end the challenge",
      );
    },
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("an own challenge that caught a cheat but whose fraud proof's check throws is undecided: the worker unpaid, its lock released, the validator charged nothing; a peer's confirmed proof inside the window still slashes it", async () => {
  // Load 1: the challenge validates on the honest model and catches the cheat. Load 2: the
  // check of its own fraud proof fails to load the model.
  // Load 3 on: the model is back, for a peer's proof.
  const t = await drawingValidator([f.honest, new Error("the model file went away"), f.honest]);
  try {
    const { job, proved, id, handled } = await t.work("own-check-throws", f.otherSeed);
    const lock = (await t.record(id))!.locked;
    assert.ok(lock > 0);
    assert.equal(handled.challenged, true);
    const result = await handled.result!;
    assert.equal(result.verdict.outcome, "fraud");
    assert.ok(result.fraudProof, "the challenge built a fraud proof");
    await t.drained();
    await t.checked(id);
    assert.equal((await t.record(id))?.status, "unpaid", "undecided here: fraud_check_error");
    // Its lock kept until its window ends: a peer's proof can still slash it (review s79, F1).
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE,
      locked: lock,
    });
    assert.deepEqual(await t.account(t.me.publicKey), {
      balance: 0,
      stake: VALIDATOR_STAKE,
      locked: 0,
    }, "its own gap costs the validator nothing, and earns it nothing");

    // A peer's proof of the same cheat, inside the window: this time the model loads.
    const { fraudProof } = await validateReceipt(
      { job, receipt: proved.receipt, proof: proved.proof },
      f.honest,
      t.accuser,
      { now: () => START },
    );
    assert.ok(fraudProof);
    const handledPeer = await t.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "ab".repeat(32),
    });
    assert.equal(handledPeer.skipped, undefined, "taken, not skipped");
    assert.equal((await handledPeer.result)?.confirmed, true);
    assert.equal((await t.record(id))?.status, "fraud");
    await t.closeWindow();
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE - lock,
      locked: 0,
    });
    assert.deepEqual(await t.account(t.accuser.publicKey), {
      balance: lock * DEFAULT_ECONOMICS.validatorRewardShare,
      stake: ACCUSER_STAKE,
      locked: 0,
    });
    assert.deepEqual(await t.account(t.me.publicKey), {
      balance: 0,
      stake: VALIDATOR_STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

Deno.test("an own challenge whose fraud proof the check refutes charges the validator the false accusation, and the work stands: paid at the window, nothing slashed", async () => {
  // Load 1: the challenge validates the honest work on another model and "catches" it. Load 2:
  // the check re-runs the cited positions on the receipt's real model and refutes the proof.
  const t = await drawingValidator([disguised(f.otherSeed, f.honest), f.honest]);
  try {
    const { id, handled } = await t.work("own-proof-refuted", f.honest);
    assert.equal(handled.challenged, true);
    const result = await handled.result!;
    assert.equal(result.verdict.outcome, "fraud");
    assert.ok(result.fraudProof);
    await t.drained();
    await t.checked(id);
    const record = (await t.record(id))!;
    assert.equal(record.status, "pending", "cleared: the work stands");
    await t.closeWindow();
    assert.equal((await t.record(id))?.status, "final");
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: record.credit,
      stake: WORKER_STAKE,
      locked: 0,
    });
    assert.ok(record.credit > 0);
    assert.deepEqual(await t.account(t.me.publicKey), {
      balance: 0,
      stake: VALIDATOR_STAKE - DEFAULT_ECONOMICS.falseAccusationPenalty,
      locked: 0,
    }, "its own false accusation costs the validator the penalty");
  } finally {
    await t.close();
  }
});

Deno.test("an own challenge ending inconclusive / validator_error leaves the work unpaid with the worker's lock released: nobody slashed, nobody rewarded", async () => {
  const t = await drawingValidator([new Error("the model file is corrupt")]);
  try {
    const { id, handled } = await t.work("validator-error", f.honest);
    assert.equal(handled.challenged, true);
    assert.ok((await t.record(id))!.locked > 0, "the slash is locked while pending");
    const result = await handled.result!;
    assert.deepEqual([result.verdict.outcome, result.verdict.reason], [
      "inconclusive",
      "validator_error",
    ]);
    await t.drained();
    await t.closeWindow();
    assert.equal((await t.record(id))?.status, "unpaid");
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE,
      locked: 0,
    });
    assert.deepEqual(await t.account(t.me.publicKey), {
      balance: 0,
      stake: VALIDATOR_STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

Deno.test("a takeover whose own fraud proof's check throws decides nothing here: the claim leaves the honest work paid, as without it", async () => {
  // This validator's coin never fires (p = 0): only a peer's "proof withheld" claim makes it
  // ask. Load 1: its model file holds other weights under the receipt's model name, so it finds
  // the honest work "fraud". Load 2: the check of that proof fails to load the model at all.
  // Both are this validator's own gap, and a takeover can only convict.
  const t = await drawingValidator([
    disguised(f.otherSeed, f.honest),
    new Error("the model file went away"),
  ], 0);
  try {
    const claimant = Identity.generate();
    await t.validator.ask({ type: "deposit", key: claimant.publicKey, amount: ACCUSER_STAKE });
    const { id, handled } = await t.work("takeover-check-throws", f.honest);
    assert.equal(handled.challenged, false, "not drawn here");
    const record = (await t.record(id))!;
    assert.ok(record.credit > 0);
    await t.validator.ask({
      type: "verdict",
      verdict: withheldVerdict(id, t.worker.publicKey, START, claimant),
      origin: "cd".repeat(32),
    });
    assert.equal((await t.stats()).challenged, 1, "taken over");
    await t.drained();
    await t.checked(id);
    await t.closeWindow();
    assert.equal((await t.record(id))?.status, "final");
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: record.credit,
      stake: WORKER_STAKE,
      locked: 0,
    }, "paid as it would have been without the claim");
    assert.deepEqual(await t.account(t.me.publicKey), {
      balance: 0,
      stake: VALIDATOR_STAKE,
      locked: 0,
    });
    assert.equal((await t.account(claimant.publicKey)).balance, 0, "the claimant gains nothing");
  } finally {
    await t.close();
  }
});

/** `served`'s proof data with its last token flipped, signed by `worker`: it opens nothing. */
function garbled(id: string, served: ServedProof, worker: Identity): ServedProof {
  const tokens = served.proof.tokens.slice();
  tokens[tokens.length - 1] ^= 1;
  return signServedProof(id, { ...served.proof, tokens }, worker);
}

Deno.test("a worker caught serving signed data that does not open its commitment is slashed though the model fails to load for the check: a commitment proof needs no model", async () => {
  // Load 1: the challenge validates. Load 2 on: the model no longer loads.
  const t = await drawingValidator([f.honest, new Error("the model file went away")]);
  try {
    const { id, handled } = await t.work("commitment-no-model", f.honest, garbled);
    const lock = (await t.record(id))!.locked;
    const result = await handled.result!;
    assert.equal(result.fraudProof?.kind, "commitment");
    await t.drained();
    await t.checked(id);
    await t.closeWindow();
    assert.equal((await t.record(id))?.status, "fraud");
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE - lock,
      locked: 0,
    });
    assert.deepEqual(await t.account(t.me.publicKey), {
      balance: lock * DEFAULT_ECONOMICS.validatorRewardShare,
      stake: VALIDATOR_STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

Deno.test("a peer's commitment fraud proof slashes the cheat in a ledger whose model fails to load: it needs none, and the cheat is not paid there", async () => {
  // This validator never draws (p = 0), and its model never loads.
  const t = await drawingValidator([new Error("the model file is corrupt")], 0);
  try {
    const { job, proved, id, handled } = await t.work("peer-commitment", f.honest, garbled);
    assert.equal(handled.challenged, false);
    const record = (await t.record(id))!;
    assert.ok(record.credit > 0, "credited here: the node holds the model");
    // The accuser's challenge caught the worker serving data that does not open its commitment.
    const served = garbled(id, signServedProof(id, proved.proof, t.worker), t.worker);
    const { fraudProof } = await validateReceipt(
      { job, receipt: proved.receipt, proof: served.proof, proofSig: served.sig },
      f.honest,
      t.accuser,
      { now: () => START },
    );
    assert.equal(fraudProof?.kind, "commitment");
    const taken = await t.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "ab".repeat(32),
    });
    assert.equal(taken.queued, true);
    // A check that throws is tried again at each finalize tick (3 tries): give it them.
    for (let i = 0; i < 3; i++) await t.validator.ask({ type: "finalize" });
    await t.closeWindow();
    assert.equal((await t.record(id))?.status, "fraud");
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE - record.locked,
      locked: 0,
    });
    assert.deepEqual(await t.account(t.accuser.publicKey), {
      balance: record.locked * DEFAULT_ECONOMICS.validatorRewardShare,
      stake: ACCUSER_STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});
