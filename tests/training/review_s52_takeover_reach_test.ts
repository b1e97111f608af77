/**
 * Stop 52: a ledger takes over a peer's `opening_missing` claim about a trainer it has no
 * connection to by dialling the trainer by its key (the NetworkActor's `reach`), as inference's
 * proof fetch does. Before, such a claim was left untaken (`no_connection`): a trainer that kept
 * its connections to a few validators — or whom a large network simply had not connected to most
 * ledgers — was slashed for withholding in those few ledgers alone, and paid in all the others.
 *
 * Each test drives a ledger and a training validator on one test clock (`_claim_node.ts`) whose
 * network stand-in brings the connection up only once the trainer is dialled, and asserts the
 * accounts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Connection } from "../../protocols/connection.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { Identity } from "../../protocols/identity.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { RoundModels } from "../../training/round_models.ts";
import { ChallengeMismatchError } from "../../training/step_opening.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { shuffledDeltaTrainer } from "./_shuffled_delta.ts";
import {
  assertPaid,
  bareChallengeRun,
  claim,
  type ClaimNode,
  claimNode,
  type DialMessage,
  STAKE,
  start,
  toldProofs,
  trainedEngine,
  TRAINER_STAKE,
  trainerLink,
} from "./_claim_node.ts";

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

Deno.test("review s52: a true claim about a trainer this ledger has no connection to is taken over by dialling it: it withholds from the dial's connection too, and is slashed here", () =>
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

Deno.test("review s52: a false claim about a trainer this ledger has no connection to: the dial brings it up, the trainer answers the takeover, it is paid and the claim counts against its claimant", () =>
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
  Deno.test(`review s52: a claim about a trainer whose dial brings no connection (${dial}) decides nothing: no challenge, the trainer is paid here, and the claimant is not counted false`, () =>
    withUnlinkedTrainer(`reach-${dial}`, { dial, refuses: true }, async (n, t) => {
      const claimant = Identity.generate();
      const record = await n.credited(t.receipt, claimant);
      await n.claim(claim(t.receipt, claimant));
      await eventually(
        () => dialsOf(n, t.identity.publicKey, "release_reach").length === 1,
        "the dial to end and be released",
      );
      assert.equal(dialsOf(n, t.identity.publicKey, "reach").length, 1, "dialled once");
      assert.equal(t.challenges.length, 0);
      await assertPaid(n, record);
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

Deno.test("review s52: a round's outcome whose coin draws a trainer this node has no connection to dials it, challenges it over the dial's connection, and convicts its lazy delta", async () => {
  const r = await outcomeForUnlinkedTrainer({ drawn: true, reached: true });
  assert.equal(r.dials.length, 1, "dialled once the coin drew it");
  assert.deepEqual(r.dials[0].key, r.identity.publicKey);
  assert.equal(r.dials[0].holder, r.receiptId);
  assert.equal(r.challenges.length, 1, "challenged over the dial's connection");
  assert.equal(r.proofs.length, 1, "its fraud proof, told to the validator");
  assert.notEqual(r.proofs[0].reason, "opening_missing");
});

Deno.test("review s52: a round's outcome whose coin does not draw an unconnected trainer dials nobody", async () => {
  const r = await outcomeForUnlinkedTrainer({ drawn: false, reached: true });
  assert.equal(r.dials.length, 0);
  assert.equal(r.challenges.length, 0);
  assert.equal(r.challengedHere, false, "a claim about it may still be taken over here");
});

Deno.test("review s52: a drawn trainer the dial does not reach is not challenged from here and nothing is proved, but its receipt counts as challenged here (no takeover races the dial)", async () => {
  const r = await outcomeForUnlinkedTrainer({ drawn: true, reached: false });
  assert.equal(r.dials.length, 1);
  assert.equal(r.challenges.length, 0);
  assert.equal(r.proofs.length, 0, "no opening_missing on this node's failed reach");
  assert.equal(r.challengedHere, true);
});

Deno.test("review s52: a takeover a restart of the training validator cuts off decides nothing against anyone: the receipt ends unresolved here (the trainer unpaid, its lock released, not slashed), the claimant is not counted false, and no challenge is made again", async () => {
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
