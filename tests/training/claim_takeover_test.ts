/**
 * A peer's `opening_missing` is a claim, not a proof: a ledger takes it over
 * (`training/_claim_takeovers.ts`) by challenging the trainer itself, dialling it when not
 * connected, and only its own finding settles. Each test asserts who ends up paid, charged or
 * slashed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { roundCredits } from "../../proof/ledger_state.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  CHALLENGED_RECEIPTS_FILE,
  ChallengedReceipts,
} from "../../training/_challenged_receipts.ts";
import { ChallengeMismatchError, openChallengedSteps } from "../../training/step_opening.ts";
import type { TrainFunction } from "../../training/trainer_engine.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  assertPaid,
  bareChallengeRun,
  claim,
  type ClaimNode,
  claimNode,
  type DialMessage,
  H,
  split,
  STAKE,
  START,
  start,
  toldProofs,
  trainedEngine,
  TRAINER_STAKE,
  trainerLink,
} from "./_claim_node.ts";
import { shuffledDeltaTrainer } from "./_shuffled_delta.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { toHex } from "../../protocols/hash.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";
import { randomDeltaTrainer } from "./_pot_lazy_trainers.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { RoundModels } from "../../training/round_models.ts";
import {
  DEFAULT_OPENING_DEADLINE_MS,
  drawTrainingChallenge,
} from "../../training/training_challenge.ts";
import {
  signTrainingFraudProof,
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import { type LedgerNode, onLedgerNode } from "./_gated_ledger_node.ts";
import { LAZY_TRAINER_STAKE, lossFraud } from "./_loss_fraud.ts";

// ------------------------------------------------------------------------------------------------
// A peer's `opening_missing` is a claim, not a proof. What a checker can see of it is a signed
// challenge whose window passed before the proof was signed; whether the trainer answered rests on
// the accuser's word, and any staked key can sign a challenge it never sent. Before, every ledger
// slashed the trainer on that word: any staked key slashed an honest trainer in every ledger, for
// free (the slash is burned, so nobody gained — nor paid).
//
// Now a ledger takes such a claim over (within its takeover budget, as inference's "proof withheld"
// claims): it challenges the trainer itself, and only its own finding settles. Each test drives a
// ledger and a training validator on one test clock, with a trainer whose engine really trained the
// receipt and answers challenges over a connection stand-in, and asserts the accounts.
// ------------------------------------------------------------------------------------------------

/** How the trainer stand-in answers a challenge. */
type Behaviour = "answer" | "refuse";

/** A trainer whose engine trained `rounds` receipts, answering challenges as `behaviour` says. */
async function trainer(startModel: string, rounds: number, train?: TrainFunction) {
  const { identity, engine, receipts } = await trainedEngine(startModel, rounds, { train });
  let behaviour: Behaviour = "answer";
  const { connection, challenges } = trainerLink(identity, (challenge) => {
    if (behaviour === "refuse") throw new ChallengeMismatchError("refused");
    return engine.open(challenge);
  });
  return {
    identity,
    receipts,
    connection,
    challenges,
    behave: (next: Behaviour) => behaviour = next,
  };
}

/**
 * Run `test` on a fresh {@link claimNode} whose trainer trained `rounds` receipts; `linked` false: the
 * node has no connection to the trainer.
 */
async function withNode(
  name: string,
  rounds: number,
  test: (
    n: ClaimNode,
    t: Awaited<ReturnType<typeof trainer>>,
  ) => Promise<void>,
  linked = true,
  train?: TrainFunction,
): Promise<void> {
  let link: Connection | undefined;
  const n = await claimNode(name, () => link);
  try {
    const t = await trainer(n.model.cid, rounds, train);
    if (linked) link = t.connection;
    await test(n, t);
  } finally {
    await n.close();
  }
}

Deno.test("a staked key's false opening_missing claim about an honest trainer does not slash it: the ledger asks the trainer itself, it answers, and it is paid", () =>
  withNode("false-claim", 1, async (n, t) => {
    const { receipt } = t.receipts[0];
    const claimant = Identity.generate();
    const record = await n.credited(receipt, claimant);
    assert.deepEqual(await n.claim(claim(receipt, claimant)), { queued: true });
    await eventually(async () => (await n.stats()).falseClaims === 1, "the takeover to end");
    assert.equal(t.challenges.length, 1, "this validator asked the trainer once");
    assert.deepEqual(t.challenges[0].validator, n.identity.publicKey);
    assert.equal(
      n.published.filter((g) => (g as { kind: string }).kind === "fraud_proof").length,
      1,
      "the claim is passed on: other ledgers judge it on their own takeover",
    );
    await assertPaid(n, record);
    assert.deepEqual(await n.account(claimant.publicKey), { balance: 0, stake: STAKE, locked: 0 });
  }));

Deno.test("a true claim — the trainer refuses this ledger's takeover too — convicts it here on the ledger's own opening_missing: slashed, burned, nobody rewarded", () =>
  withNode("true-claim", 1, async (n, t) => {
    const { receipt } = t.receipts[0];
    const claimant = Identity.generate();
    const record = await n.credited(receipt, claimant);
    t.behave("refuse");
    await n.claim(claim(receipt, claimant));
    await eventually(
      async () => (await n.record(record.receiptId)).status === "fraud",
      "the takeover's own proof to settle",
    );
    await n.closeWindow();
    assert.equal((await n.record(record.receiptId)).status, "fraud");
    assert.deepEqual(await n.account(receipt.trainer), {
      balance: 0,
      stake: TRAINER_STAKE - record.locked,
      locked: 0,
    });
    assert.deepEqual(await n.account(claimant.publicKey), { balance: 0, stake: STAKE, locked: 0 });
    assert.deepEqual(
      await n.account(n.identity.publicKey),
      { balance: 0, stake: STAKE, locked: 0 },
      "word only: this validator earns nothing either",
    );
    const stats = await n.stats();
    assert.equal(stats.takeovers, 1);
    assert.equal(stats.faults, 1);
  }));

Deno.test("a claim this ledger cannot take over (no connection to the trainer, and no swarm to dial it) leaves the trainer paid here", () =>
  withNode("no-link", 1, async (n, t) => {
    const { receipt } = t.receipts[0];
    const claimant = Identity.generate();
    const record = await n.credited(receipt, claimant);
    await n.claim(claim(receipt, claimant));
    await eventually(async () => (await n.stats()).confirmed === 1, "the claim's check");
    await assertPaid(n, record);
    assert.equal((await n.stats()).takeovers, 0);
  }, false));

Deno.test("a claimant found false twice is benched: its third claim opens no takeover, and the trainer (silent this time) is not slashed on its word", () =>
  withNode("benched", 3, async (n, t) => {
    const claimant = Identity.generate();
    const records: ReceiptRecord[] = [];
    for (const { receipt } of t.receipts) records.push(await n.credited(receipt, claimant));
    for (const [i, { receipt }] of t.receipts.slice(0, 2).entries()) {
      await n.claim(claim(receipt, claimant));
      await eventually(async () => (await n.stats()).falseClaims === i + 1, "a takeover");
    }
    t.behave("refuse");
    await n.claim(claim(t.receipts[2].receipt, claimant));
    await eventually(async () => (await n.stats()).confirmed === 3, "the third claim's check");
    assert.equal((await n.stats()).takeovers, 2, "no third takeover");
    assert.equal(t.challenges.length, 2);
    await n.closeWindow();
    for (const record of records) {
      assert.equal((await n.record(record.receiptId)).status, "final");
    }
    assert.deepEqual(await n.account(t.identity.publicKey), {
      // In the ledger's quanta: a credit that follows the work is no whole number of credits.
      balance: roundCredits(records.reduce((sum, r) => sum + r.credit, 0)),
      stake: records.length * TRAINER_STAKE, // deposited with each receipt
      locked: 0,
    });
  }));

Deno.test("a receipt this validator challenged already (its coin, passed) is not challenged again on a claim — the trainer refuses a second challenge, which would convict it — even after a restart", () =>
  withNode("challenged-here", 1, async (n, t) => {
    const { receipt, delta } = t.receipts[0];
    const claimant = Identity.generate();
    const record = await n.credited(receipt, claimant);
    const { result } = await n.deltaComes(receipt, delta, t.connection);
    assert.equal((await result).ok, true);
    await n.restartTraining();
    // The trainer would now refuse a second challenge from this key.
    t.behave("refuse");
    await n.claim(claim(receipt, claimant));
    await eventually(async () => (await n.stats()).confirmed === 1, "the claim's check");
    await assertPaid(n, record);
    assert.equal((await n.stats()).takeovers, 0);
    assert.equal(t.challenges.length, 1, "asked once, by the coin");
  }));

Deno.test("a takeover checks no delta, but keeps the last opened step: when the delta comes (the coordinator's report, a round's outcome) a delta that is not the trained end state is convicted on the takeover's challenge", () =>
  withNode(
    "takeover-delta",
    1,
    async (n, t) => {
      const { receipt, delta } = t.receipts[0];
      const claimant = Identity.generate(); // the lazy trainer's own second key, say
      const record = await n.credited(receipt, claimant);
      await n.claim(claim(receipt, claimant));
      await eventually(async () => (await n.stats()).falseClaims === 1, "the takeover");
      // Its steps re-ran: the takeover passed. Then the delta comes with the report.
      const { result } = await n.deltaComes(receipt, delta, t.connection);
      assert.equal((await result).reason, "delta_mismatch");
      assert.equal(t.challenges.length, 1, "no second challenge: the kept step is enough");
      await eventually(
        async () => (await n.record(record.receiptId)).status === "fraud",
        "the delta proof to settle",
      );
      await n.closeWindow();
      assert.equal((await n.record(record.receiptId)).status, "fraud");
      const trainerAccount = await n.account(receipt.trainer);
      assert.equal(trainerAccount.balance, 0);
      assert.equal(trainerAccount.stake, TRAINER_STAKE - record.locked);
      const own = await n.account(n.identity.publicKey);
      assert.ok(own.balance > 0, "a delta proof is a proof: its validator is rewarded");
    },
    true,
    shuffledDeltaTrainer,
  ));

Deno.test("the challenged receipts read back from disk are untrusted: junk is skipped, a receipt past its window is forgotten, the rest remembered", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s51-challenged-" });
  try {
    let clock = START;
    const first = new ChallengedReceipts(dir, () => clock);
    await first.mark("a".repeat(64), START + 1_000);
    await first.mark("b".repeat(64), START + 5_000);
    clock = START + 2_000;
    const again = new ChallengedReceipts(dir, () => clock);
    await again.readBack();
    assert.equal(again.has("a".repeat(64)), false, "past its window");
    assert.equal(again.has("b".repeat(64)), true);
    await Deno.writeFile(
      join(dir, CHALLENGED_RECEIPTS_FILE),
      encodeCanonical([["c".repeat(64), START + 9_000], [1, 2], "x", ["d".repeat(64), "later"]]),
    );
    const junk = new ChallengedReceipts(dir, () => clock);
    await junk.readBack();
    assert.equal(junk.has("c".repeat(64)), true);
    assert.equal(junk.has("d".repeat(64)), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// Attacks on the takeover of a peer's `opening_missing` claim (`training/_claim_takeovers.ts`,
// `TrainingChallengeRun.takeover`). Each test drives a ledger and a training validator on one test
// clock (`_claim_node.ts`, as the claim tests above) and asserts who ends up paid or slashed.
// ------------------------------------------------------------------------------------------------

/**
 * A lazy trainer: it signs a receipt over states it never trained (a random delta, states
 * interpolated to it: `randomDeltaTrainer`), keeps those states, and answers every challenge
 * consistently with what it committed — its openings are signed, openable and open the receipt's
 * commitments; only a re-run of a step shows they are not training.
 */
function lazyTrainer(startModel: string) {
  const identity = Identity.generate();
  const { report, trace } = randomDeltaTrainer({
    arch: TEST_ARCH,
    startModel,
    start,
    shard: split.shards[0],
    steps: H,
    dataSeed: 11,
    hyper: TEST_HYPER,
    identity,
  });
  const { connection, challenges } = trainerLink(
    identity,
    (challenge) => openChallengedSteps(trace, challenge),
  );
  return { identity, receipt: report.receipt, connection, challenges };
}

/**
 * An honest trainer that trained one receipt and, as `trainer_service.ts` does, answers one
 * challenge per validator and receipt and refuses a second.
 */
async function honestTrainer(startModel: string) {
  const { identity, engine, receipts: [{ receipt, delta }] } = await trainedEngine(startModel, 1);
  const answered = new Set<string>();
  const { connection, challenges } = trainerLink(identity, (challenge) => {
    const key = `${toHex(challenge.validator)}/${challenge.receiptId}`;
    if (answered.has(key)) {
      throw new ChallengeMismatchError("this validator has challenged this receipt already");
    }
    answered.add(key);
    return engine.open(challenge);
  });
  return { identity, receipt, delta, connection, challenges };
}

/** A trainer with `rounds` receipts (one per round) that refuses every challenge: it withholds. */
async function withholdingTrainer(startModel: string, rounds: number) {
  const { identity, receipts } = await trainedEngine(startModel, rounds, { steps: 1 });
  const { connection, challenges } = trainerLink(identity, () => {
    throw new ChallengeMismatchError("withheld");
  });
  return { identity, receipts: receipts.map((r) => r.receipt), connection, challenges };
}

Deno.test("a lazy trainer that withheld from its challenger cannot serve a takeover openings that only open its commitments — the takeover re-runs them, and the trainer is slashed here instead of paid", async () => {
  let link: Connection | undefined;
  const n = await claimNode("lazy", () => link);
  try {
    const t = lazyTrainer(n.model.cid);
    link = t.connection;
    // The honest claimant: the lazy trainer refused its challenge (a re-run would have convicted
    // it everywhere; a refusal, since stop 51, slashes it in that claimant's ledger only).
    const claimant = Identity.generate();
    await n.pledge(claimant);
    await n.credit(t.receipt);
    const record = await n.record(trainingReceiptId(t.receipt));
    assert.ok(record.credit > 0 && record.locked > 0, "credited and locked: paid when final");
    assert.deepEqual(await n.claim(claim(t.receipt, claimant)), { queued: true });
    // The takeover ends: the trainer served this ledger openings that open its commitments.
    await eventually(async () => {
      const s = await n.stats();
      return s.falseClaims + s.frauds > 0;
    }, "the takeover to end");
    assert.equal(t.challenges.length, 1, "this validator asked the trainer once");
    await eventually(
      async () =>
        (await n.stats()).falseClaims > 0 ||
        (await n.record(record.receiptId)).status === "fraud",
      "the takeover's verdict to settle",
    );
    await n.closeWindow();
    assert.equal(
      (await n.record(record.receiptId)).status,
      "fraud",
      "the trainer's fake steps convict it here",
    );
    const stats = await n.stats();
    assert.equal(stats.falseClaims, 0, "the honest claimant's claim is not held against it");
    const trainer = await n.account(t.identity.publicKey);
    assert.equal(trainer.balance, 0, "not paid for steps it never trained");
    assert.ok(trainer.stake < TRAINER_STAKE, "slashed");
    assert.deepEqual(await n.account(claimant.publicKey), { balance: 0, stake: STAKE, locked: 0 });
  } finally {
    await n.close();
  }
});

Deno.test("a receipt this validator challenged before it was recorded here is remembered for its whole window here: a claim near that window's end opens no second challenge, and the honest trainer is paid", async () => {
  let link: Connection | undefined;
  const n = await claimNode("late-record", () => link);
  try {
    const t = await honestTrainer(n.model.cid);
    link = t.connection;
    // This node's coin challenges the receipt (an audited outcome's `afterRound`) before the
    // receipt is recorded in its ledger (its gossip is late, or its stake came after): passed.
    const { result } = await n.training().ask<{ result: Promise<{ ok?: boolean }> }>({
      type: "challenge",
      report: { receipt: t.receipt, delta: t.delta },
      connection: t.connection,
      terms: { round: t.receipt.round, startModel: t.receipt.startModel, steps: t.receipt.steps },
      arch: TEST_ARCH,
      shardSize: t.receipt.shardSize,
      shardRoot: t.receipt.shardRoot,
    });
    assert.equal((await result).ok, true);
    // Recorded and credited here two minutes later: its window here runs two minutes longer
    // than a window from the challenge.
    n.advance(2 * 60_000);
    const claimant = Identity.generate();
    await n.pledge(claimant);
    await n.credit(t.receipt);
    const record = await n.record(trainingReceiptId(t.receipt));
    assert.ok(record.credit > 0 && record.locked > 0);
    // A minute before the window closes here, a staked key claims the trainer withheld.
    n.advance(DEFAULT_ECONOMICS.challengeWindowMs - 60_000);
    assert.deepEqual(await n.claim(claim(t.receipt, claimant)), { queued: true });
    await eventually(async () => (await n.stats()).confirmed >= 1, "the claim's check");
    // The claim was considered in the validator's mailbox before `confirmed` counted it; a
    // takeover would have asked the ledger to hold the receipt before that (asks are posted at
    // once), so the ledger shows it `challenged` until the takeover ends.
    await eventually(
      async () => (await n.record(record.receiptId)).status !== "challenged",
      "a takeover, if one opened, to end",
    );
    await n.closeWindow();
    assert.equal((await n.record(record.receiptId)).status, "final");
    assert.deepEqual(await n.account(t.identity.publicKey), {
      balance: record.credit,
      stake: TRAINER_STAKE,
      locked: 0,
    });
    assert.equal(t.challenges.length, 1, "the trainer is challenged once by this validator");
  } finally {
    await n.close();
  }
});

Deno.test("claims about receipts whose window closed here (not finalized yet) cost the ledger no takeover budget, so a true claim after them is still taken over and the withholding trainer slashed", async () => {
  let link: Connection | undefined;
  const n = await claimNode("drain", () => link);
  try {
    const t = await withholdingTrainer(n.model.cid, 9);
    link = t.connection;
    const drainers = [Identity.generate(), Identity.generate()];
    const honest = Identity.generate();
    for (const key of [...drainers, honest]) await n.pledge(key);
    // Eight receipts whose window here has closed, the ledger not finalized yet (its tick is
    // every 10 s in a node: a receipt stays `pending` that long past its window).
    const stale = t.receipts.slice(0, 8);
    for (const receipt of stale) await n.credit(receipt);
    n.advance(DEFAULT_ECONOMICS.challengeWindowMs + 1);
    // The ninth, fresh: the trainer withheld its openings from the honest claimant.
    const withheld = t.receipts[8];
    await n.credit(withheld);
    const record = await n.record(trainingReceiptId(withheld));
    assert.ok(record.credit > 0 && record.locked > 0);
    // Two keys (four open takeovers each) claim the stale receipts: a takeover of one cannot
    // hold it (its window closed) and is cleared without asking the trainer, and is nobody's
    // false claim.
    for (const [i, receipt] of stale.entries()) {
      assert.deepEqual(await n.claim(claim(receipt, drainers[i % 2])), { queued: true });
    }
    await eventually(async () => (await n.stats()).confirmed === 8, "the stale claims' checks");
    assert.equal(t.challenges.length, 0, "no stale receipt's trainer was asked");
    // The honest claim about the withheld receipt.
    await n.claim(claim(withheld, honest));
    await eventually(async () => (await n.stats()).confirmed === 9, "the true claim's check");
    await eventually(
      async () => (await n.record(record.receiptId)).status !== "challenged",
      "a takeover, if one opened, to end",
    );
    await n.closeWindow();
    assert.equal(
      (await n.record(record.receiptId)).status,
      "fraud",
      "the withholding trainer convicted here on this ledger's own takeover",
    );
    let staleCredit = 0;
    for (const receipt of stale) {
      const r = await n.record(trainingReceiptId(receipt));
      assert.equal(r.status, "final");
      staleCredit += r.credit;
    }
    assert.deepEqual(await n.account(t.identity.publicKey), {
      balance: staleCredit, // the stale receipts only: not paid for the one it withheld
      stake: t.receipts.length * TRAINER_STAKE - record.locked, // deposited with each; slashed
      locked: 0,
    });
    assert.equal(t.challenges.length, 1, "this ledger asked the trainer itself");
  } finally {
    await n.close();
  }
});

// ------------------------------------------------------------------------------------------------
// A ledger takes over a peer's `opening_missing` claim about a trainer it has no connection to by
// dialling the trainer by its key (the NetworkActor's `reach`), as inference's proof fetch does.
// Before, such a claim was left untaken (`no_connection`): a trainer that kept its connections to a
// few validators — or whom a large network simply had not connected to most ledgers — was slashed
// for withholding in those few ledgers alone, and paid in all the others.
//
// Each test drives a ledger and a training validator on one test clock (`_claim_node.ts`) whose
// network stand-in brings the connection up only once the trainer is dialled, and asserts the
// accounts.
// ------------------------------------------------------------------------------------------------

/** What the dial brings: the connection (`"connects"`), nothing (`"silent"`), or a refusal. */
type Dial = "connects" | "silent" | "full";

/**
 * A claim node with no connection to a trainer that trained one receipt and answers challenges
 * (or refuses them: `refuses`); a dial of the trainer does what `dial` says. Runs `test`.
 */
async function withUnlinkedTrainer(
  name: string,
  { dial, refuses }: { dial: Dial; refuses: boolean },
  test: (n: ClaimNode, t: {
    identity: Identity;
    receipt: Awaited<ReturnType<typeof trainedEngine>>["receipts"][0]["receipt"];
    challenges: { validator: Uint8Array }[];
  }) => Promise<void>,
): Promise<void> {
  let link: Connection | undefined;
  let trainerKey: Uint8Array = new Uint8Array(0);
  let connection: Connection | undefined;
  const reach = (message: DialMessage) => {
    if (dial === "full") return "full" as const;
    if (dial === "connects" && bytesEqual(message.key, trainerKey)) link = connection;
    return true;
  };
  const n = await claimNode(name, () => link, 400, reach);
  try {
    const { identity, engine, receipts } = await trainedEngine(n.model.cid, 1);
    trainerKey = identity.publicKey;
    const linked = trainerLink(identity, (challenge) => {
      if (refuses) throw new ChallengeMismatchError("refused");
      return engine.open(challenge);
    });
    connection = linked.connection;
    await test(n, { identity, receipt: receipts[0].receipt, challenges: linked.challenges });
  } finally {
    await n.close();
  }
}

/** The dial messages `n` sent for `receipt`'s trainer, by type. */
function dialsOf(n: ClaimNode, trainer: Uint8Array, type: DialMessage["type"]): DialMessage[] {
  return n.dials.filter((d) => d.type === type && bytesEqual(d.key, trainer));
}

Deno.test("a true claim about a trainer this ledger has no connection to is taken over by dialling it: it withholds from the dial's connection too, and is slashed here", () =>
  withUnlinkedTrainer("reach-withholds", { dial: "connects", refuses: true }, async (n, t) => {
    const claimant = Identity.generate();
    const record = await n.credited(t.receipt, claimant);
    await n.claim(claim(t.receipt, claimant));
    await eventually(
      async () => (await n.record(record.receiptId)).status === "fraud",
      "the takeover's own proof to settle",
    );
    await n.closeWindow();
    assert.deepEqual(await n.account(t.receipt.trainer), {
      balance: 0,
      stake: TRAINER_STAKE - record.locked,
      locked: 0,
    });
    const [dial] = dialsOf(n, t.identity.publicKey, "reach");
    assert.equal(dial.holder, trainingReceiptId(t.receipt), "dialled on the receipt's behalf");
    await eventually(
      () => dialsOf(n, t.identity.publicKey, "release_reach").length === 1,
      "the dial released",
    );
    assert.equal((await n.stats()).takeovers, 1);
  }));

Deno.test("a false claim about a trainer this ledger has no connection to: the dial brings it up, the trainer answers the takeover, it is paid and the claim counts against its claimant", () =>
  withUnlinkedTrainer("reach-serves", { dial: "connects", refuses: false }, async (n, t) => {
    const claimant = Identity.generate();
    const record = await n.credited(t.receipt, claimant);
    await n.claim(claim(t.receipt, claimant));
    await eventually(async () => (await n.stats()).falseClaims === 1, "the takeover to end");
    assert.equal(t.challenges.length, 1, "asked once, over the connection the dial brought up");
    assert.deepEqual(t.challenges[0].validator, n.identity.publicKey);
    await assertPaid(n, record);
    assert.deepEqual(await n.account(claimant.publicKey), { balance: 0, stake: STAKE, locked: 0 });
  }));

for (const dial of ["silent", "full"] as const) {
  // Review s81 (train F1) ended such a receipt undecided here (unpaid); review s81 vtrn2 F2 put
  // it back: any staked key's claim then took the pay of an honest trainer that only dials out in
  // every ledger that could not reach it, for free. Only this node's own coin may end a receipt
  // unreached; a takeover not reached leaves it as it was (pending: paid).
  Deno.test(`a claim about a trainer whose dial brings no connection (${dial}) challenges nothing: the receipt is left as it was and the trainer paid here, not slashed, and the claimant is not counted false`, () =>
    withUnlinkedTrainer(`reach-${dial}`, { dial, refuses: true }, async (n, t) => {
      const claimant = Identity.generate();
      const record = await n.credited(t.receipt, claimant);
      await n.claim(claim(t.receipt, claimant));
      await eventually(
        () => dialsOf(n, t.identity.publicKey, "release_reach").length === 1,
        "the dial to end and be released",
      );
      const reaches = dialsOf(n, t.identity.publicKey, "reach").length;
      if (dial === "silent") assert.equal(reaches, 1, "dialled once");
      else assert.ok(reaches >= 2, "asked again while this node's dials were full");
      assert.equal(t.challenges.length, 0);
      assert.equal((await n.record(record.receiptId)).status, "pending", "left as it was");
      await assertPaid(n, record);
      assert.deepEqual(await n.account(claimant.publicKey), {
        balance: 0,
        stake: STAKE,
        locked: 0,
      });
      const stats = await n.stats();
      assert.equal(stats.takeovers, 0, "no challenge was made");
      assert.equal(stats.falseClaims, 0, "not the claimant's doing");
    }));
}

/**
 * A bare TrainingChallengeRun with no connection to a lazy trainer (its delta shuffled) gets a
 * round's outcome (`afterRound`), its coin drawing heads (`drawn`) or not; a dial of the trainer
 * brings its connection (`reached`) or not. What it dialled, asked and told the validator.
 */
async function outcomeForUnlinkedTrainer({ drawn, reached }: { drawn: boolean; reached: boolean }) {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s52-coin-reach-" });
  try {
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const model = await models.publish(TEST_ARCH, start);
    const { identity, engine, receipts: [{ receipt, delta }] } = await trainedEngine(
      model.cid,
      1,
      { train: shuffledDeltaTrainer },
    );
    const { connection, challenges } = trainerLink(identity, (c) => engine.open(c));
    const dials: { key: Uint8Array; holder: string }[] = [];
    const { run, ctx, told } = bareChallengeRun({
      models,
      openingDeadlineMs: 2_000,
      probability: 0.5,
      random: () => drawn ? 0.1 : 0.9,
      connectionTo: () => Promise.resolve(undefined),
      reach: (_ctx, key, _forMs, holder) => {
        dials.push({ key, holder });
        return Promise.resolve(reached ? connection : undefined);
      },
    });
    const body = {
      round: 0,
      startModel: model.cid,
      arch: TEST_ARCH,
      reports: [{ receipt, deltaFile: "unused" }],
    } as unknown as OutcomeBody;
    await run.afterRound(body, body.reports[0], delta, ctx);
    const proofs = toldProofs(told);
    return {
      identity,
      receiptId: trainingReceiptId(receipt),
      dials,
      challenges,
      proofs,
      challengedHere: run.challengedHere(trainingReceiptId(receipt)),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a round's outcome whose coin draws a trainer this node has no connection to dials it, challenges it over the dial's connection, and convicts its lazy delta", async () => {
  const r = await outcomeForUnlinkedTrainer({ drawn: true, reached: true });
  assert.equal(r.dials.length, 1, "dialled once the coin drew it");
  assert.deepEqual(r.dials[0].key, r.identity.publicKey);
  assert.equal(r.dials[0].holder, r.receiptId);
  assert.equal(r.challenges.length, 1, "challenged over the dial's connection");
  assert.equal(r.proofs.length, 1, "its fraud proof, told to the validator");
  assert.notEqual(r.proofs[0].reason, "opening_missing");
});

Deno.test("a round's outcome whose coin does not draw an unconnected trainer dials nobody", async () => {
  const r = await outcomeForUnlinkedTrainer({ drawn: false, reached: true });
  assert.equal(r.dials.length, 0);
  assert.equal(r.challenges.length, 0);
  assert.equal(r.challengedHere, false, "a claim about it may still be taken over here");
});

// Review s81 (train F2) changed this deliberately: before, the receipt stayed marked challenged
// here after the failed dial, and every later true claim about it was refused (`challenged_here`).
Deno.test("a drawn trainer the dial does not reach is not challenged from here and nothing is proved, and its receipt does not count as challenged here once the dial ended (a later claim may be taken over)", async () => {
  const r = await outcomeForUnlinkedTrainer({ drawn: true, reached: false });
  assert.equal(r.dials.length, 1);
  assert.equal(r.challenges.length, 0);
  assert.equal(r.proofs.length, 0, "no opening_missing on this node's failed reach");
  assert.equal(r.challengedHere, false);
});

Deno.test("a takeover a restart of the training validator cuts off decides nothing against anyone: the receipt ends unresolved here (the trainer unpaid, its lock released, not slashed), the claimant is not counted false, and no challenge is made again", async () => {
  let link: Connection | undefined;
  const n = await claimNode("restart-mid-takeover", () => link, 2_000);
  try {
    const { identity, engine, receipts: [{ receipt }] } = await trainedEngine(n.model.cid, 1);
    const gate = Promise.withResolvers<void>();
    const linked = trainerLink(identity, async (challenge) => {
      await gate.promise; // the trainer is still re-running its steps when the validator stops
      return await engine.open(challenge);
    });
    link = linked.connection;
    const claimant = Identity.generate();
    const record = await n.credited(receipt, claimant);
    await n.claim(claim(receipt, claimant));
    await eventually(() => linked.challenges.length === 1, "the takeover's challenge");
    await eventually(
      async () => (await n.record(record.receiptId)).status === "challenged",
      "the receipt held for the takeover",
    );
    await n.restartTraining();
    gate.resolve();
    await eventually(
      async () => (await n.record(record.receiptId)).status === "unpaid",
      "the cut-off challenge to end unresolved",
    );
    await n.closeWindow();
    assert.equal((await n.record(record.receiptId)).status, "unpaid");
    assert.deepEqual(await n.account(receipt.trainer), {
      balance: 0,
      stake: TRAINER_STAKE,
      locked: 0,
    });
    assert.deepEqual(await n.account(claimant.publicKey), { balance: 0, stake: STAKE, locked: 0 });
    const stats = await n.stats();
    assert.equal(stats.falseClaims, 0);
    assert.equal(linked.challenges.length, 1, "not challenged again after the restart");
  } finally {
    await n.close();
  }
});

// ------------------------------------------------------------------------------------------------
// The training rows of docs/TRAINING.md's "Who pays" list and docs/PROOF.md's training table that
// were pinned only at the ledger (`tests/proof/ledger_training_test.ts`), driven here through the
// training validator and the ValidatorActor on one test clock, asserting every account the branch
// touches:
//
// - a peer's genuine `opening_missing` proof (issued after its challenge's deadline), which this
//   ledger cannot take over (no connection to the trainer): it is a claim, not a proof, and does
//   not settle on its accuser's word — the trainer is paid when its window closes, and nobody is
//   charged (the takeover's branches, each with its accounts, are above; before, this slashed the
//   trainer, burned);
// - a peer's `opening_missing` proof issued before its challenge's deadline: refuted, the accuser
//   pays the penalty and the trainer is paid when its window closes.
// ------------------------------------------------------------------------------------------------

const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
const ACCUSER_STAKE = 10 * PENALTY;
/** The ledger clock's start (ms): a fixed clock, never the wall's. */
const START_BRANCH = 1_000_000;

/**
 * `accuser`'s `opening_missing` proof against `lazy`'s receipt, on a challenge with the full answer
 * window issued `challengedAgo` ms before START, the proof itself issued at START.
 */
function missingProof(
  lazy: TrainingFraudProof,
  accuser: Identity,
  challengedAgo: number,
): TrainingFraudProof {
  const { sig: _sig, validator: _validator, opening: _opening, ...unsigned } = lazy;
  return signTrainingFraudProof({
    ...unsigned,
    reason: "opening_missing",
    challenge: drawTrainingChallenge(lazy.receipt, accuser, {
      now: () => START_BRANCH - challengedAgo,
    }),
    issuedAt: START_BRANCH,
  }, accuser);
}

/** `proof`'s receipt recorded and credited in `node` (paid when final), its accuser pledged. */
async function creditedReceipt(
  node: LedgerNode,
  proof: TrainingFraudProof,
  accuser: Identity,
): Promise<ReceiptRecord> {
  await node.pledge(accuser, ACCUSER_STAKE);
  await node.recordLazy(proof);
  const { receipt } = proof;
  await node.training().ask({
    type: "credit",
    receipts: [receipt],
    terms: { round: receipt.round, startModel: receipt.startModel, steps: receipt.steps },
  });
  const rec = (await node.ledger.ask<ReceiptRecord | undefined>({
    type: "receipt_status",
    receiptId: trainingReceiptId(receipt),
  }))!;
  assert.ok(rec.credit > 0 && rec.locked > 0, "credited and locked: paid when final");
  return rec;
}

Deno.test("a peer's genuine opening_missing proof this ledger cannot take over is a claim: the trainer is paid at its window, nobody is charged", () =>
  onLedgerNode("review-s50-opening-missing", async (node) => {
    const accuser = Identity.generate();
    const lazy = lossFraud(node.model.cid, accuser, 8);
    const rec = await creditedReceipt(node, lazy, accuser);
    // Challenged with the full window, which passed before the proof was signed.
    const proof = missingProof(lazy, accuser, DEFAULT_OPENING_DEADLINE_MS + 1);
    assert.deepEqual(await node.send(proof), { queued: true });
    await eventually(async () => (await node.checked()) === 1, "the claim's check");
    await node.closeWindow();
    assert.equal(await node.status(rec.receiptId), "final");
    assert.deepEqual(await node.account(lazy.receipt.trainer), {
      balance: rec.credit,
      stake: LAZY_TRAINER_STAKE,
      locked: 0,
    });
    assert.deepEqual(await node.account(accuser.publicKey), {
      balance: 0,
      stake: ACCUSER_STAKE,
      locked: 0,
    }, "a claim not taken over costs its author nothing");
  }, START_BRANCH));

Deno.test("a peer's opening_missing proof signed before its challenge's deadline is refuted: the accuser pays the penalty, the trainer is paid at its window", () =>
  onLedgerNode("review-s50-opening-early", async (node) => {
    const accuser = Identity.generate();
    const lazy = lossFraud(node.model.cid, accuser, 8);
    const rec = await creditedReceipt(node, lazy, accuser);
    // The deadline is still a second away when the proof is signed.
    const proof = missingProof(lazy, accuser, DEFAULT_OPENING_DEADLINE_MS - 1_000);
    assert.deepEqual(await node.send(proof), { queued: true });
    await eventually(
      async () => (await node.account(accuser.publicKey)).stake < ACCUSER_STAKE,
      "the refuted proof to settle",
    );
    await node.closeWindow();
    assert.equal(await node.status(rec.receiptId), "final");
    assert.deepEqual(await node.account(lazy.receipt.trainer), {
      balance: rec.credit,
      stake: LAZY_TRAINER_STAKE,
      locked: 0,
    });
    assert.deepEqual(await node.account(accuser.publicKey), {
      balance: 0,
      stake: ACCUSER_STAKE - PENALTY,
      locked: 0,
    });
  }, START_BRANCH));
