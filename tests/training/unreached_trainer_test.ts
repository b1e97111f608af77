/**
 * A trainer this ledger's coin drew from a round's reproduced outcome, and that it could not
 * reach (review s81 train F1, F2). Before, such a trainer was "not challenged from here" and paid
 * when its window closed: a lazy trainer that refused every connection but its coordinator's was
 * checked by its coordinator's coin alone and paid in every other ledger (F1); and its receipt
 * stayed marked challenged here, so a peer's true `opening_missing` claim about it, once it was
 * reachable again, was refused (`challenged_here`) and the withholder paid here (F2). Now its
 * receipt ends `undecided` here (unpaid, not slashed), is not marked challenged here (a later
 * claim is taken over, and the withholder slashed), and an honest trainer away only for a moment
 * is found within the dial and paid. Each test drives a ledger and a training validator on one
 * test clock (`_claim_node.ts`) and asserts the trainer's account after the window.
 */
import assert from "node:assert/strict";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { type TrainingReceipt, trainingReceiptId } from "../../training/training_receipt.ts";
import { ChallengeMismatchError } from "../../training/step_opening.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  claim,
  type ClaimNode,
  claimNode,
  type DialMessage,
  PEER,
  start,
  trainedEngine,
  TRAINER_STAKE,
  trainerLink,
} from "./_claim_node.ts";
import { shuffledDeltaTrainer } from "./_shuffled_delta.ts";
import { TEST_ARCH } from "./_fixtures.ts";

/**
 * What this validator posts itself once its audit reproduced a round of `receipt` (`delta` its
 * reported delta) by another coordinator: the receipt is credited here, and this node's coin
 * (probability 1 on a claim node) draws its trainer.
 */
async function roundReproduced(n: ClaimNode, receipt: TrainingReceipt, delta: Uint8Array) {
  await n.ledger.ask({ type: "deposit", key: receipt.trainer, amount: TRAINER_STAKE });
  const body = {
    round: 0,
    startModel: n.model.cid,
    model: "bafy-s81-unreached-model",
    file: "bafy-s81-unreached-file",
    arch: TEST_ARCH,
    accepted: [toHex(receipt.trainer)],
    reports: [{ receipt, deltaFile: "unused" }],
    excluded: [],
    coordinator: Identity.generate().publicKey,
  } as unknown as OutcomeBody;
  await n.training().ask({
    type: "audited",
    body,
    audit: {
      ok: true,
      verified: true,
      dir: "/nonexistent",
      momentum: start,
      deltas: [delta],
      convicted: [],
    },
    origin: PEER,
  });
  await eventually(
    async () => (await n.record(trainingReceiptId(receipt)))?.credit > 0,
    "the round's credit",
  );
}

/**
 * A claim node whose network dials (`reach` answers true) but brings the trainer's connection up
 * only while `online()` says so; `connection()` is the trainer's link, once set.
 */
function dialledWhile(online: () => boolean, connection: () => Connection | undefined) {
  let link: Connection | undefined;
  const reach = (m: DialMessage) => {
    if (m.type === "reach" && online()) link = connection();
    return true;
  };
  return { link: () => link, reach };
}

Deno.test("a lazy trainer this ledger's coin drew but could not reach is not paid here: its receipt ends undecided (unpaid, its stake whole), where before it was paid in full", async () => {
  let trainerConn: Connection | undefined;
  const way = dialledWhile(() => false, () => trainerConn);
  const n = await claimNode("s81-unreached-lazy", way.link, 400, way.reach);
  try {
    const t = await trainedEngine(n.model.cid, 1, { train: shuffledDeltaTrainer });
    const { receipt, delta } = t.receipts[0];
    const linked = trainerLink(t.identity, (c) => t.engine.open(c));
    trainerConn = linked.connection;
    const id = trainingReceiptId(receipt);
    await roundReproduced(n, receipt, delta);
    await eventually(async () => (await n.record(id)).status === "unpaid", "ended undecided");
    const held = await n.record(id);
    assert.ok(held.locked > 0, "its lock kept while its window is open (a proof may still come)");
    await n.closeWindow();
    assert.equal(linked.challenges.length, 0, "never asked: not reached");
    assert.equal((await n.record(id)).status, "unpaid");
    assert.deepEqual(await n.account(receipt.trainer), {
      balance: 0,
      stake: TRAINER_STAKE,
      locked: 0,
    });
    const stats = await n.stats();
    assert.equal(stats.frauds, 0, "nothing proved on this node's failed reach");
  } finally {
    await n.close();
  }
});

Deno.test("control: the same lazy trainer, reached by the dial, is challenged, convicted and slashed here", async () => {
  let trainerConn: Connection | undefined;
  const way = dialledWhile(() => true, () => trainerConn);
  const n = await claimNode("s81-reached-lazy", way.link, 400, way.reach);
  try {
    const t = await trainedEngine(n.model.cid, 1, { train: shuffledDeltaTrainer });
    const { receipt, delta } = t.receipts[0];
    trainerConn = trainerLink(t.identity, (c) => t.engine.open(c)).connection;
    const id = trainingReceiptId(receipt);
    await roundReproduced(n, receipt, delta);
    await eventually(async () => (await n.record(id)).status === "fraud", "convicted");
    const locked = (await n.record(id)).locked;
    await n.closeWindow();
    assert.deepEqual(await n.account(receipt.trainer), {
      balance: 0,
      stake: TRAINER_STAKE - locked,
      locked: 0,
    });
  } finally {
    await n.close();
  }
});

Deno.test("after a coin dial that found a withholding trainer away, a peer's true claim about it, the trainer back, is taken over here and the trainer slashed (before: refused `challenged_here`, the trainer paid)", async () => {
  let online = false;
  let trainerConn: Connection | undefined;
  const way = dialledWhile(() => online, () => trainerConn);
  const n = await claimNode("s81-unreached-then-claim", way.link, 400, way.reach);
  try {
    const t = await trainedEngine(n.model.cid, 1, { train: shuffledDeltaTrainer });
    const { receipt, delta } = t.receipts[0];
    // It withholds from every challenge (it could not open a shuffled delta).
    const linked = trainerLink(t.identity, () => {
      throw new ChallengeMismatchError("refused");
    });
    trainerConn = linked.connection;
    const claimant = Identity.generate();
    await n.pledge(claimant);
    const id = trainingReceiptId(receipt);
    await roundReproduced(n, receipt, delta);
    await eventually(async () => (await n.record(id)).status === "unpaid", "the failed dial's end");
    const locked = (await n.record(id)).locked;
    assert.equal(linked.challenges.length, 0, "the coin's dial did not reach it");
    online = true;
    await n.claim(claim(receipt, claimant));
    await eventually(async () => (await n.record(id)).status === "fraud", "the takeover's proof");
    assert.equal(linked.challenges.length, 1, "asked once, by the takeover");
    assert.equal((await n.stats()).takeovers, 1);
    await n.closeWindow();
    assert.deepEqual(await n.account(receipt.trainer), {
      balance: 0,
      stake: TRAINER_STAKE - locked,
      locked: 0,
    });
  } finally {
    await n.close();
  }
});

Deno.test("an honest trainer that this node cannot dial (no swarm) and that joins again within the dial is challenged once it is back, passes, and is paid here", async () => {
  let trainerConn: Connection | undefined;
  // No swarm here: the dial answers false, and the trainer is not there when the dial looks for
  // it; it joins again on its own right after (the next look finds it).
  let dialled = false;
  let looks = 0;
  const link = () => dialled && ++looks > 1 ? trainerConn : undefined;
  const reach = () => {
    dialled = true;
    return false;
  };
  // A dial window of 2.5 s: the run looks for the trainer every second within it.
  const n = await claimNode("s81-unreached-back", link, 2_500, reach);
  try {
    const t = await trainedEngine(n.model.cid, 1);
    const { receipt, delta } = t.receipts[0];
    const linked = trainerLink(t.identity, (c) => t.engine.open(c));
    trainerConn = linked.connection;
    const id = trainingReceiptId(receipt);
    await roundReproduced(n, receipt, delta);
    await eventually(async () => (await n.stats()).passed === 1, "the challenge to pass");
    assert.equal(linked.challenges.length, 1, "asked once it was back");
    const record = await n.record(id);
    await n.closeWindow();
    assert.equal((await n.record(id)).status, "final");
    assert.deepEqual(await n.account(receipt.trainer), {
      balance: record.credit,
      stake: TRAINER_STAKE,
      locked: 0,
    });
  } finally {
    await n.close();
  }
});

Deno.test("a peer's true claim that comes while this node's coin is dialling the withholding trainer is kept, and taken over once the dial failed: the trainer is slashed here (before: refused, the trainer paid)", async () => {
  let online = false;
  let trainerConn: Connection | undefined;
  const way = dialledWhile(() => online, () => trainerConn);
  // A 1 s dial: the claim comes inside it, and its tries again (5 ms, doubling) outlast it.
  const n = await claimNode("s81-claim-during-dial", way.link, 1_000, way.reach);
  try {
    const t = await trainedEngine(n.model.cid, 1, { train: shuffledDeltaTrainer });
    const { receipt, delta } = t.receipts[0];
    const linked = trainerLink(t.identity, () => {
      throw new ChallengeMismatchError("refused");
    });
    trainerConn = linked.connection;
    const claimant = Identity.generate();
    await n.pledge(claimant);
    const id = trainingReceiptId(receipt);
    await roundReproduced(n, receipt, delta);
    await eventually(() => n.dials.some((d) => d.type === "reach"), "the coin's dial");
    const locked = (await n.record(id)).locked;
    // The trainer is back (a later dial reaches it), but this dial has not found it.
    online = true;
    await n.claim(claim(receipt, claimant));
    await eventually(async () => (await n.record(id)).status === "fraud", "the takeover's proof");
    assert.equal(linked.challenges.length, 1, "asked once, by the takeover");
    assert.equal((await n.stats()).takeovers, 1);
    await n.closeWindow();
    assert.deepEqual(await n.account(receipt.trainer), {
      balance: 0,
      stake: TRAINER_STAKE - locked,
      locked: 0,
    });
  } finally {
    await n.close();
  }
});
