/**
 * Review s45, holds on receipts while peers' fraud proofs wait or are checked. Each test asserts
 * the ledger after the window (status, stakes, balances); the ledger's clock is the test's, and
 * no real-time sleep races a deadline (the tests poll only for work in flight to end).
 *
 * - Four staked colluders' false proofs about a receipt not recorded here yet, sent before an
 *   honest finder's true one, used to fill the 4 slots held per receipt: the finder's was refused
 *   (`too_many_held`), never taken again, and the cheat was paid here; the colluders' four
 *   penalties (400) were less than what the cheat kept (its pay and its locked slash, 21 × its
 *   reward: more than 400 from a 20-token receipt on).
 * - A peer's proof whose check threw (its model failing to load) was dropped: not settled, not
 *   passed on, and a re-send of it refused as a duplicate: the cheat was paid here.
 * - An accuser's stake backed its accusations, and paid their penalties, even where its own
 *   receipts locked all of it as a worker: a cheat about to be slashed accused for free, out of
 *   the slash it was about to lose, and its finder's reward shrank (30 in place of 80).
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProofHandled } from "../../actors/validator_actor.ts";
import type { ValidatorModelSource, ValidatorStats } from "../../actors/validator_messages.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import type { TextJob } from "../../protocols/job.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  disguised,
  f,
  falseProof,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const WORKER_STAKE = 100_000;
const ACCUSER_STAKE = 1_000;
const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
const SHARE = DEFAULT_ECONOMICS.validatorRewardShare;

/** A worker's proved job. */
type Proved = Awaited<ReturnType<typeof proveOn>> & { job: TextJob; id: string };

/** A validator that never challenges on its own coin, a worker and a finder staked. */
async function setup(models: ValidatorModelSource = HONEST_MODELS) {
  const [me, worker, finder, requester] = Array.from({ length: 4 }, Identity.generate);
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "review-s45-holds" });
  const published: FraudProof[] = [];
  await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => ({
      receive(message: NetworkMessage) {
        if (message.type === "publish_fraud_proof") published.push(message.proof);
        return undefined;
      },
    }),
  });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: 0,
    models,
    network: "node/network",
  });
  const deposit = (key: Identity, amount: number) =>
    validator.ask({ type: "deposit", key: key.publicKey, amount });
  await deposit(worker, WORKER_STAKE);
  await deposit(finder, ACCUSER_STAKE);
  const reads = ledgerReads(() => validator, clock);
  return {
    validator,
    worker,
    finder,
    published,
    deposit,
    ...reads,
    /** The worker's receipt for a fresh job: honest, or run on another model (`cheat`). */
    async prove(cheat: boolean): Promise<Proved> {
      const job = textJob(requester, crypto.randomUUID());
      const proved = await proveOn(job, worker, cheat ? f.otherSeed : f.honest);
      return { job, ...proved, id: receiptId(proved.receipt) };
    },
    /** `by`'s true fraud proof about a cheat receipt (its own validation of it). */
    async trueProof(p: Proved, by: Identity) {
      const { fraudProof } = await validateReceipt(
        { job: p.job, receipt: p.receipt, proof: p.proof },
        f.honest,
        by,
        { now: () => START },
      );
      assert.ok(fraudProof, "the cheat is caught by its finder");
      return fraudProof;
    },
    accuse: (proof: FraudProof) =>
      validator.ask<FraudProofHandled>({ type: "fraud_proof", proof, origin: "cd".repeat(32) }),
    announce: (p: Proved) =>
      announceAssigned(validator, p.receipt, p.job, requester, { issuedAt: START }),
    checking: async () =>
      (await validator.ask<ValidatorStats>({ type: "stats" })).fraudProofsChecking,
    finalize: () => validator.ask({ type: "finalize" }),
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("s45 holds: four staked colluders' false proofs held for a cheat receipt not recorded yet do not shut out a finder's true one: the cheat is slashed, the finder rewarded, each colluder charged", async () => {
  const t = await setup();
  try {
    const cheat = await t.prove(true);
    const colluders = Array.from({ length: 4 }, Identity.generate);
    for (const colluder of colluders) {
      await t.deposit(colluder, ACCUSER_STAKE);
      const held = await t.accuse(falseProof(cheat.receipt, colluder));
      assert.equal(held.awaitingReceipt, true);
      held.result?.catch(() => {});
    }
    const finder = await t.accuse(await t.trueProof(cheat, t.finder));
    assert.equal(finder.awaitingReceipt, true, `the finder's proof was ${finder.skipped}`);
    assert.equal((await t.announce(cheat)).recorded, true);
    assert.equal((await finder.result!).confirmed, true);
    await eventually(async () => (await t.checking()) === 0, "the held proofs to be settled");
    await t.closeWindow();
    const slash = cheat.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.equal((await t.record(cheat.id))?.status, "fraud");
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE - slash,
      locked: 0,
    });
    assert.equal((await t.account(t.finder.publicKey)).balance, slash * SHARE);
    for (const colluder of colluders) {
      assert.equal((await t.account(colluder.publicKey)).stake, ACCUSER_STAKE - PENALTY);
    }
  } finally {
    await t.close();
  }
});

/** The honest model, whose first `failures` loads throw (a model that fails to load). */
function failingModels(failures: number): ValidatorModelSource & { loads: () => number } {
  let loads = 0;
  return {
    has: (cid) => cid === f.honest.info.cid,
    get: (cid) => {
      if (loads++ < failures) return Promise.reject(new Error("model failed to load (test)"));
      return HONEST_MODELS.get(cid);
    },
    loads: () => loads,
  };
}

Deno.test("s45 holds: a peer's true proof whose check threw (the model failed to load once) is checked again at the next tick: the cheat is slashed here, the finder rewarded", async () => {
  const models = failingModels(1);
  const t = await setup(models);
  try {
    const cheat = await t.prove(true);
    assert.equal((await t.announce(cheat)).recorded, true);
    const taken = await t.accuse(await t.trueProof(cheat, t.finder));
    assert.equal(taken.queued, true);
    taken.result?.catch(() => {});
    await eventually(() => models.loads() >= 1, "the first check to run");
    // Finalize ticks inside the window (the ledger clock does not move): what failed is retried.
    await eventually(async () => {
      await t.finalize();
      return (await t.record(cheat.id))?.status === "fraud";
    }, "the proof to be checked again and settled");
    await t.closeWindow();
    const slash = cheat.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE - slash,
      locked: 0,
    });
    assert.deepEqual(await t.account(t.finder.publicKey), {
      balance: slash * SHARE,
      stake: ACCUSER_STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

Deno.test("s45 holds: a peer's proof whose check always throws is undecided after its tries: passed on, its hold released, the honest work paid, nobody charged", async () => {
  const models = failingModels(Infinity);
  const t = await setup(models);
  try {
    const honest = await t.prove(false);
    assert.equal((await t.announce(honest)).recorded, true);
    const accuser = Identity.generate();
    await t.deposit(accuser, ACCUSER_STAKE);
    // A false claim whose check needs the model (a citation, found on other weights under the
    // receipt's model name): a `receipt` proof is decided without a model, so a model that fails
    // to load no longer makes its check throw (review s50).
    const { fraudProof } = await validateReceipt(
      { job: honest.job, receipt: honest.receipt, proof: honest.proof },
      disguised(f.otherSeed, f.honest),
      accuser,
      { now: () => START },
    );
    assert.ok(fraudProof);
    const taken = await t.accuse(fraudProof);
    assert.equal(taken.queued, true);
    taken.result?.catch(() => {});
    await eventually(async () => {
      await t.finalize();
      return (await t.checking()) === 0;
    }, "the proof's tries to end");
    assert.equal(t.published.length, 1, "the undecided proof is passed on");
    await t.closeWindow();
    assert.equal((await t.record(honest.id))?.status, "final");
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: honest.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice,
      stake: WORKER_STAKE,
      locked: 0,
    });
    assert.equal((await t.account(accuser.publicKey)).stake, ACCUSER_STAKE);
  } finally {
    await t.close();
  }
});

Deno.test("s45 holds: a worker whose stake is all locked by its own cheat receipt accuses an honest receipt falsely: the accusation is not paid out of its locked slash, so the cheat's finder is rewarded its whole share", async () => {
  const t = await setup();
  try {
    const honest = await t.prove(false);
    assert.equal((await t.announce(honest)).recorded, true);
    // A second worker key: stake exactly the slash its cheat receipt locks.
    const cheater = Identity.generate();
    const requester = Identity.generate();
    const job = textJob(requester, crypto.randomUUID());
    const proved = await proveOn(job, cheater, f.otherSeed);
    const slash = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.ok(slash >= PENALTY, "its stake would back a penalty were it free");
    await t.deposit(cheater, slash);
    const cheat: Proved = { job, ...proved, id: receiptId(proved.receipt) };
    const recorded = await announceAssigned(
      t.validator,
      cheat.receipt,
      cheat.job,
      requester,
      { issuedAt: START },
    );
    assert.equal(recorded.recorded, true);
    assert.deepEqual(await t.account(cheater.publicKey), {
      balance: 0,
      stake: slash,
      locked: slash,
    });
    // Its stake is all locked: its false accusation must not spend what its slash is owed.
    const accusation = await t.accuse(falseProof(honest.receipt, cheater));
    await accusation.result?.catch(() => {});
    await eventually(async () => (await t.checking()) === 0, "the accusation to be settled");
    const caught = await t.accuse(await t.trueProof(cheat, t.finder));
    assert.equal((await caught.result!).confirmed, true);
    await t.closeWindow();
    assert.equal((await t.record(cheat.id))?.status, "fraud");
    assert.equal((await t.record(honest.id))?.status, "final", "the honest work is paid");
    assert.deepEqual(await t.account(cheater.publicKey), { balance: 0, stake: 0, locked: 0 });
    assert.equal(
      (await t.account(t.finder.publicKey)).balance,
      slash * SHARE,
      "the finder's reward is its share of the whole locked slash",
    );
  } finally {
    await t.close();
  }
});
