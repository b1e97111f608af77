/**
 * How a validator takes a fraud proof: a proof never records its receipt, and a signed accusation
 * is its accuser's word whatever it claims (a claim that does not fit its receipt costs the accuser
 * its penalty, once). Each test asserts the ledger outcome after the window.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProofHandled } from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId, signReceipt } from "../../protocols/receipt.ts";
import { type FraudProof, signFraudProof } from "../../protocols/fraud_proof.ts";
import { signVerdict } from "../../protocols/verdict.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { eventually } from "../_helpers/wait.ts";
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

// -------------------------------------------------------------------------------------------------
// A fraud proof never records its receipt. A receipt enters a ledger only through the receipt
// intake (bound to its job, the contradiction check, the coin, the takeover memory); a proof
// that outran the receipt's announcement is held and checked once the receipt came in. A false
// proof sent first used to record the receipt itself, so the announcement found it "already
// recorded" and skipped every check: a worker running another model, or claiming 100× its
// `maxTokens`, was paid for a flat 100 from a colluding (or its own) key. Each test asserts the
// ledger outcome after the window: status, balances, stake.

const WORKER_STAKE = 100_000;
const ACCUSER_STAKE = 1_000;
const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;

/** The slash locked behind a receipt of `tokens` tokens under the default economics. */
function slashOf(tokens: number): number {
  return tokens * DEFAULT_ECONOMICS.defaultTokenPrice * DEFAULT_ECONOMICS.slashMultiplier;
}

/** After the window: the receipt `id` settled as fraud, and the worker slashed for `tokens`. */
async function assertWorkerSlashed(
  t: Awaited<ReturnType<typeof setup>>,
  id: string,
  tokens: number,
): Promise<void> {
  assert.equal((await t.record(id))?.status, "fraud");
  assert.deepEqual(await t.account(t.worker.publicKey), {
    balance: 0,
    stake: WORKER_STAKE - slashOf(tokens),
    locked: 0,
  });
}

async function setup(p: number) {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const accuser = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  /** What the worker serves per receipt id (absent or undefined: withheld). */
  const served = new Map<string, ServedProof | undefined>();
  const system = new ActorSystem({ name: "fraud-proof-intake" });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: p,
    models: HONEST_MODELS,
    source: { proof: (r) => Promise.resolve(served.get(receiptId(r))) },
  });
  const stakes: [Identity, number][] = [[worker, WORKER_STAKE], [me, 1_000], [
    accuser,
    ACCUSER_STAKE,
  ]];
  for (const [key, amount] of stakes) {
    await validator.ask({ type: "deposit", key: key.publicKey, amount });
  }
  let n = 0;
  return {
    worker,
    accuser,
    validator,
    served,
    ...ledgerReads(() => validator, clock),
    /** The worker's receipt: honest, or run on another model (`cheat`); `tokens` re-signs it. */
    async prove(cheat: boolean, tokens?: number) {
      const job = textJob(requester, `job-${n++}`);
      const proved = await proveOn(job, worker, cheat ? f.otherSeed : f.honest);
      let receipt = proved.receipt;
      if (tokens !== undefined) {
        const { sig: _sig, worker: _worker, ...unsigned } = receipt;
        receipt = signReceipt({ ...unsigned, tokenCount: tokens }, worker);
      }
      const id = receiptId(receipt);
      served.set(id, signServedProof(id, proved.proof, worker));
      return { job, receipt, id };
    },
    /**
     * `proof` arrives from a peer before the receipt's announcement, and whatever the validator
     * does with it at once is done before the announcement comes (the attacker's order: it
     * waits until its proof is settled, then has the receipt announced).
     */
    async accuse(proof: FraudProof): Promise<FraudProofHandled> {
      const handled = await validator.ask<FraudProofHandled>({
        type: "fraud_proof",
        proof,
        origin: "cd".repeat(32),
      });
      if (handled.queued) await handled.result;
      return handled;
    },
    /** The requester's relay announces the receipt with its job and assignment. */
    announce: (receipt: Receipt, job: TextJob) =>
      announceAssigned(validator, receipt, job, requester, { issuedAt: START }),
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("a false fraud proof that outran a cheat receipt records nothing: the receipt is challenged on intake, fraud, the worker slashed, the accuser penalized", async () => {
  const t = await setup(1);
  try {
    const { job, receipt, id } = await t.prove(true);
    const held = await t.accuse(falseProof(receipt, t.accuser));
    assert.equal(held.queued, false);
    assert.equal(held.awaitingReceipt, true);
    assert.equal(await t.record(id), undefined, "a proof never records its receipt");
    const handled = await t.announce(receipt, job);
    assert.equal(handled.challenged, true, "the coin is drawn on intake");
    assert.equal((await handled.result!).verdict.outcome, "fraud");
    assert.equal((await held.result!).reason, "not_reproduced");
    await t.closeWindow();
    await assertWorkerSlashed(t, id, receipt.tokenCount);
    assert.equal((await t.account(t.accuser.publicKey)).stake, ACCUSER_STAKE - PENALTY);
  } finally {
    await t.close();
  }
});

Deno.test("the worker's own false proof about its receipt is refused: it buys no penalty in place of checks, and its cheat is slashed", async () => {
  const t = await setup(1);
  try {
    const { job, receipt, id } = await t.prove(true);
    const refused = await t.accuse(falseProof(receipt, t.worker));
    assert.equal(refused.skipped, "self_accusation");
    assert.equal(await t.record(id), undefined);
    const handled = await t.announce(receipt, job);
    assert.equal(handled.challenged, true);
    assert.equal((await handled.result!).verdict.outcome, "fraud");
    await t.closeWindow();
    await assertWorkerSlashed(t, id, receipt.tokenCount);
  } finally {
    await t.close();
  }
});

Deno.test("a receipt claiming 100× maxTokens, preceded by a false proof, is still slashed on arrival whatever the coin", async () => {
  const t = await setup(0);
  try {
    const { job, receipt, id } = await t.prove(true, 8 * 100);
    const held = await t.accuse(falseProof(receipt, t.accuser));
    assert.equal(held.awaitingReceipt, true);
    const handled = await t.announce(receipt, job);
    assert.equal(handled.challenged, true, "the contradiction check runs on intake");
    const result = await handled.result!;
    assert.equal(result.verdict.outcome, "fraud");
    assert.equal(result.fraudProof?.kind, "receipt");
    await held.result;
    await t.closeWindow();
    await assertWorkerSlashed(t, id, 800);
    assert.equal((await t.account(t.accuser.publicKey)).stake, ACCUSER_STAKE - PENALTY);
  } finally {
    await t.close();
  }
});

Deno.test("a receipt preceded by a false proof is still remembered for takeovers: a peer's true 'proof withheld' claim is taken over, and the withholding worker slashed", async () => {
  const t = await setup(0);
  try {
    const peer = Identity.generate();
    await t.validator.ask({ type: "deposit", key: peer.publicKey, amount: ACCUSER_STAKE });
    const { job, receipt, id } = await t.prove(true);
    t.served.set(id, undefined); // withheld from everyone
    const held = await t.accuse(falseProof(receipt, t.accuser));
    assert.equal((await t.announce(receipt, job)).challenged, false, "p = 0");
    await held.result;
    const claim = signVerdict({
      v: 1,
      subject: "inference",
      subjectId: id,
      target: receipt.worker,
      outcome: "invalid",
      reason: "proof_unavailable",
      issuedAt: START,
    }, peer);
    await t.validator.ask({ type: "verdict", verdict: claim, origin: toHex(peer.publicKey) });
    assert.equal((await t.stats()).challenged, 1, "the claim is taken over");
    await eventually(async () => (await t.stats()).openChallenges === 0, "the takeover to end");
    await t.closeWindow();
    await assertWorkerSlashed(t, id, receipt.tokenCount);
  } finally {
    await t.close();
  }
});

Deno.test("an honest receipt preceded by a false proof goes through the coin and is paid; the accuser pays the penalty", async () => {
  const t = await setup(1);
  try {
    const { job, receipt, id } = await t.prove(false);
    const held = await t.accuse(falseProof(receipt, t.accuser));
    assert.equal(held.awaitingReceipt, true);
    const handled = await t.announce(receipt, job);
    assert.equal(handled.challenged, true, "the coin is drawn on intake");
    assert.equal((await handled.result!).verdict.outcome, "valid");
    assert.equal((await held.result!).confirmed, false);
    await t.closeWindow();
    assert.equal((await t.record(id))?.status, "final");
    const credit = receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: credit,
      stake: WORKER_STAKE,
      locked: 0,
    });
    assert.equal((await t.account(t.accuser.publicKey)).stake, ACCUSER_STAKE - PENALTY);
  } finally {
    await t.close();
  }
});

Deno.test("a proof about a receipt never announced here records nothing and moves no balance; proofs held per receipt are not bounded apart (only per accuser and in all)", async () => {
  const t = await setup(1);
  try {
    const { receipt, id } = await t.prove(true);
    const answers = [await t.accuse(falseProof(receipt, t.accuser))];
    for (let i = 0; i < 4; i++) {
      const key = Identity.generate();
      await t.validator.ask({ type: "deposit", key: key.publicKey, amount: ACCUSER_STAKE });
      answers.push(await t.accuse(falseProof(receipt, key)));
    }
    assert.deepEqual(
      answers.map((a) => a.awaitingReceipt ?? a.skipped),
      [true, true, true, true, true],
    );
    await t.closeWindow();
    assert.equal(await t.record(id), undefined);
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE,
      locked: 0,
    });
    assert.equal((await t.account(t.accuser.publicKey)).stake, ACCUSER_STAKE);
  } finally {
    await t.close();
  }
});

Deno.test("a flood of held proofs from staked keys about receipts that never come does not push out an honest finder's: each key holds at most 4 (its fifth pushes out its first), the flooders' go first, and the cheat is slashed when its receipt comes", async () => {
  const t = await setup(0); // the coin never challenges here: only the finder's proof convicts
  try {
    const { job, receipt, id } = await t.prove(true);
    const { fraudProof } = await validateReceipt(
      { job, receipt, proof: t.served.get(id)!.proof },
      f.honest,
      t.accuser,
    );
    const finder = await t.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "cd".repeat(32),
    });
    assert.equal(finder.awaitingReceipt, true);
    // 17 staked keys, 4 proofs each, about receipts their own worker keys signed and never
    // announce: 68 held would overflow the 64; a fifth from one key pushes out its own first.
    const flood: (string | boolean | undefined)[] = [];
    for (let k = 0; k < 17; k++) {
      const flooder = Identity.generate();
      await t.validator.ask({ type: "deposit", key: flooder.publicKey, amount: ACCUSER_STAKE });
      for (let i = 0; i < (k === 0 ? 5 : 4); i++) {
        const { sig: _s, worker: _w, ...body } = receipt;
        const madeUp = signReceipt({
          ...body,
          jobId: toHex(crypto.getRandomValues(new Uint8Array(32))),
        }, Identity.generate());
        const h = await t.validator.ask<FraudProofHandled>({
          type: "fraud_proof",
          proof: falseProof(madeUp, flooder),
          origin: "ee".repeat(32),
        });
        h.result?.catch(() => {});
        flood.push(h.awaitingReceipt ?? h.skipped);
      }
    }
    assert.equal(flood.filter((x) => x === true).length, 69, "each held, pushing out others");
    // A proof about a receipt nobody signed is not held.
    const { sig: _s, ...forged } = {
      ...receipt,
      jobId: toHex(crypto.getRandomValues(new Uint8Array(32))),
    };
    const unsigned = await t.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: falseProof({ ...forged, sig: new Uint8Array(64) } as Receipt, t.accuser),
      origin: "ee".repeat(32),
    });
    assert.equal(unsigned.skipped, "bad_signature");
    // The colluding requester announces the cheat's receipt only now: the finder's proof,
    // still held, is checked and settles it.
    assert.ok((await t.announce(receipt, job)).recorded);
    assert.equal((await finder.result!).confirmed, true);
    await t.closeWindow();
    await assertWorkerSlashed(t, id, receipt.tokenCount);
  } finally {
    await t.close();
  }
});

Deno.test("an accuser's stake bounds what it pays, not whether its proof is checked: a second false proof from a key staked at the penalty is checked unbacked (no stake goes below zero), and a receipt takes at most three unbacked checks", async () => {
  const t = await setup(0);
  try {
    const poor = Identity.generate();
    await t.validator.ask({ type: "deposit", key: poor.publicKey, amount: PENALTY });
    const receipts = [];
    for (let i = 0; i < 2; i++) {
      const { job, receipt } = await t.prove(false);
      assert.ok((await t.announce(receipt, job)).recorded);
      receipts.push(receipt);
    }
    // Both sent before either is settled (the actor takes messages in order): the second is not
    // backed by the stake the first may cost, and is checked all the same (it could convict).
    const sent = receipts.map((receipt) =>
      t.validator.ask<FraudProofHandled>({
        type: "fraud_proof",
        proof: falseProof(receipt, poor),
        origin: "cd".repeat(32),
      })
    );
    const [first, second] = await Promise.all(sent);
    assert.equal(first.queued, true);
    assert.equal(second.queued, true);
    assert.equal((await first.result!).confirmed, false);
    assert.equal((await second.result!).confirmed, false);
    // The first penalty took all it had; the second took nothing (never below zero).
    assert.deepEqual(await t.account(poor.publicKey), { balance: 0, stake: 0, locked: 0 });
    // Keys pledged and spent to nothing, each accusing the second receipt: three more unbacked
    // checks of it at most (the second receipt had one), whatever the number of keys.
    const answers = [];
    for (let i = 0; i < 4; i++) {
      const spent = Identity.generate();
      await t.validator.ask({ type: "deposit", key: spent.publicKey, amount: 1 });
      const h = await t.validator.ask<FraudProofHandled>({
        type: "fraud_proof",
        proof: falseProof(receipts[1], spent),
        origin: "cd".repeat(32),
      });
      await h.result?.catch(() => {});
      answers.push(h.queued ? "queued" : h.skipped);
    }
    assert.deepEqual(answers, ["queued", "queued", "unstaked_accuser", "unstaked_accuser"]);
    // Honest work, falsely accused: paid when the window closes.
    await t.closeWindow();
    for (const receipt of receipts) {
      assert.equal((await t.record(receiptId(receipt)))?.status, "final");
    }
    assert.equal((await t.account(t.worker.publicKey)).stake, WORKER_STAKE);
  } finally {
    await t.close();
  }
});

Deno.test("an honest finder whose four earlier proofs are stuck here (their receipts never came) still has its next one held, and that cheat is slashed when its receipt comes", async () => {
  const t = await setup(0); // the coin never challenges here: only the finder's proof convicts
  try {
    const cheats = [];
    for (let i = 0; i < 5; i++) {
      const proved = await t.prove(true);
      const { job, id } = proved;
      let { receipt } = proved;
      if (i < 4) {
        // Signed long before this ledger's clock: refused `receipt_stale` by the intake, also
        // when the proof hands it the receipt it carries (review s73 F1), so it never comes.
        const { sig: _sig, worker: _worker, ...unsigned } = receipt;
        receipt = signReceipt(
          { ...unsigned, timings: { ...unsigned.timings, startedAt: 0 } },
          t.worker,
        );
      }
      const { fraudProof } = await validateReceipt(
        { job, receipt, proof: t.served.get(id)!.proof },
        f.honest,
        t.accuser,
      );
      cheats.push({ job, receipt, id, fraudProof: fraudProof! });
    }
    const answers = [];
    for (const c of cheats) {
      const h = await t.validator.ask<FraudProofHandled>({
        type: "fraud_proof",
        proof: c.fraudProof,
        origin: "cd".repeat(32),
      });
      h.result?.catch(() => {});
      answers.push(h);
    }
    assert.deepEqual(answers.map((a) => a.awaitingReceipt), [true, true, true, true, true]);
    // The first four receipts never come here; the fifth is announced after its proof.
    const last = cheats[4];
    assert.ok((await t.announce(last.receipt, last.job)).recorded);
    assert.equal((await answers[4].result!).confirmed, true);
    await t.closeWindow();
    await assertWorkerSlashed(t, last.id, last.receipt.tokenCount);
  } finally {
    await t.close();
  }
});

// -------------------------------------------------------------------------------------------------
// A signed accusation is the accuser's word, whatever it claims. A well-formed proof whose claim
// does not fit its receipt (a `tensor` proof about a text receipt, a text proof about a tensor job)
// was answered `malformed` by the checker — the reason the ValidatorActor reserves for a proof it
// cannot attribute — so its accuser paid no penalty, the accusation was not remembered, and the
// same claim re-signed with a new timestamp was checked again, each time for free. Each test
// asserts the ledger after the window: the honest worker paid, the accuser charged once.

async function setupAccusation() {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const accuser = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "review-s45-accusation" });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: 0,
    models: HONEST_MODELS,
    source: { proof: () => Promise.resolve(undefined) },
  });
  for (const [key, amount] of [[worker, WORKER_STAKE], [accuser, ACCUSER_STAKE]] as const) {
    await validator.ask({ type: "deposit", key: key.publicKey, amount });
  }
  const job = textJob(requester, "s45-honest");
  const { receipt } = await proveOn(job, worker);
  const handled = await announceAssigned(validator, receipt, job, requester, { issuedAt: START });
  assert.equal(handled.recorded, true);
  return {
    worker,
    accuser,
    job,
    receipt,
    id: receiptId(receipt),
    ...ledgerReads(() => validator, clock),
    async accuse(proof: FraudProof): Promise<FraudProofHandled> {
      const h = await validator.ask<FraudProofHandled>({
        type: "fraud_proof",
        proof,
        origin: "cd".repeat(32),
      });
      if (h.queued) await h.result!.catch(() => {});
      return h;
    },
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("s45: a signed tensor-kind accusation of an honest text receipt costs its accuser the penalty, and its re-signed copy costs it again", async () => {
  const t = await setupAccusation();
  try {
    const accusation = (issuedAt: number) =>
      signFraudProof({
        v: 1,
        kind: "tensor",
        job: t.job,
        receipt: t.receipt,
        chunks: [],
        cited: [],
        tensorOutputs: { y: { type: "float32", dims: [1], data: new Uint8Array(4) } },
        issuedAt,
      }, t.accuser);
    const first = await t.accuse(accusation(1));
    assert.equal(first.queued, true);
    // Settled, a refuted accusation does not block its accuser's next proof of the receipt
    // (review s76, F2: it blocked its confirmed one too): the copy re-signed is checked and
    // charged again, never free.
    const again = await t.accuse(accusation(2));
    assert.equal(again.queued, true, "the same claim re-signed is checked again");
    await t.closeWindow();
    assert.equal((await t.record(t.id))?.status, "final", "the honest work is paid");
    assert.equal(
      (await t.account(t.accuser.publicKey)).stake,
      ACCUSER_STAKE - 2 * PENALTY,
      "each false signed accusation costs its accuser the penalty",
    );
    assert.equal((await t.account(t.worker.publicKey)).stake, WORKER_STAKE);
  } finally {
    await t.close();
  }
});
