/**
 * Stop 51: a peer's `opening_missing` is a claim, not a proof. What a checker can see of it is a
 * signed challenge whose window passed before the proof was signed; whether the trainer answered
 * rests on the accuser's word, and any staked key can sign a challenge it never sent. Until stop 51
 * every ledger slashed the trainer on that word: any staked key slashed an honest trainer in every
 * ledger, for free (the slash is burned, so nobody gained — nor paid).
 *
 * Now a ledger takes such a claim over (within its takeover budget, as inference's "proof
 * withheld" claims): it challenges the trainer itself, and only its own finding settles. Each test
 * drives a ledger and a training validator on one test clock, with a trainer whose engine really
 * trained the receipt and answers challenges over a connection stand-in, and asserts the accounts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  CHALLENGED_RECEIPTS_FILE,
  ChallengedReceipts,
} from "../../training/_challenged_receipts.ts";
import { ChallengeMismatchError } from "../../training/step_opening.ts";
import type { TrainFunction } from "../../training/trainer_engine.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  assertPaid,
  claim,
  type ClaimNode,
  claimNode,
  STAKE,
  START,
  trainedEngine,
  TRAINER_STAKE,
  trainerLink,
} from "./_claim_node.ts";
import { shuffledDeltaTrainer } from "./_shuffled_delta.ts";

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

Deno.test("review s51: a staked key's false opening_missing claim about an honest trainer does not slash it: the ledger asks the trainer itself, it answers, and it is paid", () =>
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

Deno.test("review s51: a true claim — the trainer refuses this ledger's takeover too — convicts it here on the ledger's own opening_missing: slashed, burned, nobody rewarded", () =>
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

Deno.test("review s51: a claim this ledger cannot take over (no connection to the trainer, and no swarm to dial it) leaves the trainer paid here", () =>
  withNode("no-link", 1, async (n, t) => {
    const { receipt } = t.receipts[0];
    const claimant = Identity.generate();
    const record = await n.credited(receipt, claimant);
    await n.claim(claim(receipt, claimant));
    await eventually(async () => (await n.stats()).confirmed === 1, "the claim's check");
    await assertPaid(n, record);
    assert.equal((await n.stats()).takeovers, 0);
  }, false));

Deno.test("review s51: a claimant found false twice is benched: its third claim opens no takeover, and the trainer (silent this time) is not slashed on its word", () =>
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
      balance: records.reduce((sum, r) => sum + r.credit, 0),
      stake: records.length * TRAINER_STAKE, // deposited with each receipt
      locked: 0,
    });
  }));

Deno.test("review s51: a receipt this validator challenged already (its coin, passed) is not challenged again on a claim — the trainer refuses a second challenge, which would convict it — even after a restart", () =>
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

Deno.test("review s51: a takeover checks no delta, but keeps the last opened step: when the delta comes (the coordinator's report, a round's outcome) a delta that is not the trained end state is convicted on the takeover's challenge", () =>
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

Deno.test("review s51: the challenged receipts read back from disk are untrusted: junk is skipped, a receipt past its window is forgotten, the rest remembered", async () => {
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
