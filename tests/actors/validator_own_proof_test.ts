/**
 * A validator's own fraud proof: it outlives a restart between the verdict and its settlement, a
 * check that fails ends its challenge, it is checked whatever the validator's stake, and a peer's
 * confirmed proof still settles a receipt whose own challenge here ended undecided.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { OWN_FRAUD_PROOFS_DIR, ReceiptFiles } from "../../actors/_receipt_files.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type {
  FraudProofHandled,
  ValidatorMessage,
  ValidatorModelSource,
} from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { fraudProofHash } from "../../protocols/fraud_proof.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { Ledger } from "../../proof/ledger.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import {
  announceAssigned,
  f,
  falseProof,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";
import { validateReceipt } from "../../proof/validation.ts";

// -------------------------------------------------------------------------------------------------
// A validator's own fraud proof outlives a restart between its verdict and its settlement, and
// an own proof whose check fails ends its challenge. Before, a validator stopped while it was
// checking the proof of a cheat it had just caught (the verdict recorded, the receipt
// `challenged`) found the receipt challenged at its next start with its material gone and left
// it unresolved: its own ledger neither paid nor slashed the cheat, while every ledger it had
// sent the proof to slashed it. And a check that threw left the challenge open for as long as
// the validator ran. And a validator that stopped after booking its own refuted proof but before
// clearing the challenge re-checked the proof at its next start, was refused a second settlement
// (one accusation per accuser and receipt) and left the honest work unresolved: unpaid there.

const WORKER_STAKE = 10_000;

/** The honest model for the challenge (the first `get`); each later `get` waits for `gate`. */
function gatedModels(gate: Promise<void>): ValidatorModelSource {
  let calls = 0;
  return {
    has: (cid) => cid === f.honest.info.cid,
    get: (cid) => calls++ === 0 ? HONEST_MODELS.get(cid) : gate.then(() => HONEST_MODELS.get(cid)),
  };
}

/** A cheat's receipt announced to a validator that challenges everything, on `models`. */
async function caughtCheat(dir: string, models: ValidatorModelSource, clock: { t: number }) {
  const worker = Identity.generate();
  const requester = Identity.generate();
  const me = Identity.generate();
  const job = textJob(requester, crypto.randomUUID());
  const proved = await proveOn(job, worker, f.otherSeed); // a cheat: another model
  const id = receiptId(proved.receipt);
  const setup = {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: 1,
    source: { proof: () => Promise.resolve(signServedProof(id, proved.proof, worker)) },
  };
  const system = new ActorSystem({ name: "own-proof" });
  const validator = await spawnValidator(system, { ...setup, models });
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  const handled = await announceAssigned(validator, proved.receipt, job, requester);
  handled.result?.catch(() => {});
  const slash = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
    DEFAULT_ECONOMICS.slashMultiplier;
  return { system, validator, setup, worker, id, slash };
}

/** Wait until `validator` has recorded its fraud verdict (the proof is then being checked). */
async function verdictRecorded(validator: ActorRef<ValidatorMessage>, clock: { t: number }) {
  const ledger = ledgerReads(() => validator, clock);
  await eventually(async () => (await ledger.stats()).verdicts.fraud === 1, "the fraud verdict");
}

Deno.test("a validator stopped while checking its own fraud proof settles it at its next start: the cheat is slashed in its own ledger", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const gate = Promise.withResolvers<void>();
  const first = await caughtCheat(dir, gatedModels(gate.promise), clock);
  let second: ActorSystem | undefined;
  try {
    await verdictRecorded(first.validator, clock);
    const before = ledgerReads(() => first.validator, clock);
    assert.equal((await before.record(first.id))?.status, "challenged");
    // Stopped mid-check, as a crash would: the check ends only once the validator stopped
    // taking messages, so its outcome is never settled.
    first.system.events.subscribe((event) => {
      if (event.type === "stopped" && event.name.endsWith("validator")) {
        gate.reject(new Error("stopped"));
      }
    });
    await first.system.shutdown();

    second = new ActorSystem({ name: "own-proof-restarted" });
    const told: NetworkMessage[] = [];
    await second.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork(told),
    });
    const validator = await spawnValidator(second, {
      ...first.setup,
      models: HONEST_MODELS,
      network: "node/network",
    });
    const ledger = ledgerReads(() => validator, clock);
    await ledger.drained();
    // Spread again once settled: the stop may have come before the proof left this node.
    await eventually(
      () => told.some((m) => m.type === "publish_fraud_proof"),
      "the resumed proof to be passed on",
    );
    await ledger.closeWindow();
    const record = (await ledger.record(first.id))!;
    const account = await ledger.account(first.worker.publicKey);
    assert.equal(record.status, "fraud", "the caught cheat's receipt did not end as fraud");
    assert.equal(account.stake, WORKER_STAKE - first.slash, "the caught cheat was not slashed");
    const kept = await Array.fromAsync(Deno.readDir(`${dir}/ledger/${OWN_FRAUD_PROOFS_DIR}`));
    assert.deepEqual(kept, [], "the settled proof is still kept");
  } finally {
    await second?.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an own fraud proof whose check throws ends its challenge unresolved at once: not paid, nobody slashed, and settled no second time after a restart", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const gate = Promise.withResolvers<void>();
  gate.reject(new Error("the model failed to load"));
  gate.promise.catch(() => {});
  const first = await caughtCheat(dir, gatedModels(gate.promise), clock);
  let second: ActorSystem | undefined;
  try {
    const ledger = ledgerReads(() => first.validator, clock);
    await ledger.drained(); // hung before: the challenge stayed open
    await ledger.closeWindow();
    assert.equal((await ledger.record(first.id))?.status, "unpaid");
    assert.equal((await ledger.account(first.worker.publicKey)).stake, WORKER_STAKE);
    await first.system.shutdown();

    second = new ActorSystem({ name: "own-proof-error-restarted" });
    const validator = await spawnValidator(second, { ...first.setup, models: HONEST_MODELS });
    const again = ledgerReads(() => validator, clock);
    await again.drained();
    assert.equal((await again.record(first.id))?.status, "unpaid");
    assert.equal((await again.stats()).fraudProofsChecked, 0, "a settled challenge was re-checked");
  } finally {
    await first.system.shutdown().catch(() => {});
    await second?.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a validator stopped between booking its own refuted proof and clearing the challenge clears it at its next start: the honest work is paid", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const job = textJob(requester, crypto.randomUUID());
  const { receipt } = await proveOn(job, worker); // honest work
  const id = receiptId(receipt);
  const proof = falseProof(receipt, me); // this validator's accusation, which does not hold
  const ledgerDir = `${dir}/ledger`;
  let system: ActorSystem | undefined;
  try {
    // The ledger as the stop left it: the challenge open, the refuted accusation booked (its
    // charge paid), the proof still kept on disk.
    const before = await Ledger.open(ledgerDir, me, { now: () => clock.t });
    await before.deposit(worker.publicKey, WORKER_STAKE);
    await before.deposit(me.publicKey, WORKER_STAKE);
    await before.recordReceipt(receipt, {
      assignment: signAssignment({ job, worker: receipt.worker, issuedAt: 0 }, requester),
    });
    await before.openChallenge(id);
    await before.settleFraud({
      receiptId: id,
      fraudProofHash: fraudProofHash(proof),
      validator: me.publicKey,
      confirmed: false,
      reason: "refuted",
    });
    const charged = before.account(me.publicKey).stake;
    assert.ok(charged < WORKER_STAKE, "the false accusation was charged");
    await before.close();
    await ReceiptFiles.in(ledgerDir).save(id, proof);

    system = new ActorSystem({ name: "own-refuted-restarted" });
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir,
      clock,
      challengeProbability: 1,
      models: HONEST_MODELS,
    });
    const ledger = ledgerReads(() => validator, clock);
    await ledger.drained();
    await ledger.closeWindow();
    const record = (await ledger.record(id))!;
    assert.equal(record.status, "final", "the honest work was left unpaid");
    const paid = await ledger.account(worker.publicKey);
    assert.equal(paid.stake, WORKER_STAKE);
    assert.ok(paid.balance > 0, "the worker earned nothing");
    assert.equal((await ledger.account(me.publicKey)).stake, charged, "charged once, not twice");
    const kept = await Array.fromAsync(Deno.readDir(`${ledgerDir}/${OWN_FRAUD_PROOFS_DIR}`));
    assert.deepEqual(kept, [], "the settled proof is still kept");
  } finally {
    await system?.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// -------------------------------------------------------------------------------------------------
// A validator's own fraud proof is checked whatever its stake: one with less than the false
// accusation penalty staked in its own ledger (a node run with `selfStake: 0`, or one whose
// stake went on penalties) used to skip its own proof as `unstaked_accuser`, and the caught
// cheat's receipt ended unpaid with nothing slashed.

for (const validatorStake of [1_000, 0]) {
  Deno.test(`a cheat caught by a validator with own stake ${validatorStake} is slashed`, async () => {
    const worker = Identity.generate();
    const requester = Identity.generate();
    const me = Identity.generate();
    const dir = await Deno.makeTempDir();
    const clock = { t: START };
    const system = new ActorSystem({ name: "unstaked" });
    try {
      const job = textJob(requester, crypto.randomUUID());
      const proved = await proveOn(job, worker, f.otherSeed); // a cheat: another model
      const id = receiptId(proved.receipt);
      const validator = await spawnValidator(system, {
        identity: me,
        ledgerDir: `${dir}/ledger`,
        clock,
        challengeProbability: 1,
        models: { has: (cid) => cid === f.honest.info.cid, ...HONEST_MODELS },
        source: { proof: () => Promise.resolve(signServedProof(id, proved.proof, worker)) },
      });
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
      if (validatorStake > 0) {
        await validator.ask({ type: "deposit", key: me.publicKey, amount: validatorStake });
      }
      const handled = await announceAssigned(validator, proved.receipt, job, requester);
      const { verdict } = await handled.result!;
      const ledger = ledgerReads(() => validator, clock);
      await ledger.closeWindow();
      const record = (await ledger.record(id))!;
      const account = await ledger.account(worker.publicKey);
      const slash = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
        DEFAULT_ECONOMICS.slashMultiplier;
      assert.equal(verdict.outcome, "fraud");
      assert.equal(record.status, "fraud", "the caught cheat's receipt did not end as fraud");
      assert.equal(account.stake, WORKER_STAKE - slash, "the caught cheat was not slashed");
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

// -------------------------------------------------------------------------------------------------
// A validator whose own challenge of a cheat ended undecided (it restarted mid-challenge: the
// receipt is `unpaid` here, its lock released) still settles a peer's confirmed fraud proof of
// that receipt inside its window, as every ledger that did not challenge does. It used to skip
// the proof (`not_pending`): the cheat went unpaid here but kept the stake it lost everywhere
// else, and could back more work with it in this ledger.

Deno.test("a receipt left unresolved by this validator's restart is slashed by a peer's confirmed fraud proof inside its window", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, worker, accuser, requester] = Array.from({ length: 4 }, Identity.generate);
  const job = textJob(requester, "unresolved-then-proven");
  const proved = await proveOn(job, worker, f.otherSeed); // a cheat: another model
  const id = receiptId(proved.receipt);
  const { fraudProof } = await validateReceipt(
    { job, receipt: proved.receipt, proof: proved.proof },
    f.honest,
    accuser,
    { now: () => START },
  );
  assert.ok(fraudProof, "the cheat is caught by the accuser");

  // The validator had recorded the receipt and opened its challenge when it stopped.
  const ledgerDir = `${dir}/ledger`;
  const before = await Ledger.open(ledgerDir, me, { now: () => clock.t });
  await before.deposit(worker.publicKey, WORKER_STAKE);
  await before.deposit(accuser.publicKey, 10_000);
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  const lock = (await before.recordReceipt(proved.receipt, { assignment })).locked;
  await before.openChallenge(id);
  await before.close();

  const system = new ActorSystem({ name: "unresolved-proof" });
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
    });
    const ledger = ledgerReads(() => validator, clock);
    assert.equal((await ledger.record(id))?.status, "unpaid", "ended undecided at the start");
    // Kept until its window ends, for a proof to slash (review s79, F1).
    assert.equal((await ledger.account(worker.publicKey)).locked, lock, "its lock kept");

    const handled = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "ab".repeat(32),
    });
    assert.equal(handled.skipped, undefined, "taken, not skipped");
    await handled.result;
    assert.equal((await ledger.record(id))?.status, "fraud");
    assert.equal((await ledger.account(worker.publicKey)).stake, WORKER_STAKE - lock);
    await ledger.closeWindow();
    assert.equal((await ledger.account(worker.publicKey)).balance, 0, "and never paid");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
