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
  STAKE,
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
async function roundReproduced(
  n: ClaimNode,
  receipt: TrainingReceipt,
  delta: Uint8Array,
  tag = "",
) {
  await n.ledger.ask({ type: "deposit", key: receipt.trainer, amount: TRAINER_STAKE });
  const body = {
    round: 0,
    startModel: n.model.cid,
    model: `bafy-s81-unreached-model${tag}`,
    file: `bafy-s81-unreached-file${tag}`,
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

// ------------------------------------------------------------------------------------------------
// Review s81 vtrn2: three ways the above made an HONEST trainer lose its pay here. A receipt ends
// `trainer_unreachable` only on this node's own coin, after a dial was actually made, and while
// this node's own network is known to work (a live peer, or a dial that connected); otherwise it
// is left pending, and paid when its window closes.
// ------------------------------------------------------------------------------------------------

Deno.test("review s81 vtrn2 F1: an honest trainer drawn while this node's dials are full is dialled again once a slot frees, challenged, and paid here (before: never dialled again, unpaid)", async () => {
  let trainerConn: Connection | undefined;
  let link: Connection | undefined;
  let reaches = 0;
  // The first dial finds every slot taken (a round of more than MAX_DIALS unconnected trainers);
  // the next one is taken and brings the trainer's connection up.
  const reach = (m: DialMessage) => {
    if (m.type !== "reach") return false;
    if (++reaches === 1) return "full" as const;
    link = trainerConn;
    return true;
  };
  const n = await claimNode("s81-vtrn2-full", () => link, 2_500, reach);
  try {
    const t = await trainedEngine(n.model.cid, 1);
    const { receipt, delta } = t.receipts[0];
    const linked = trainerLink(t.identity, (c) => t.engine.open(c));
    trainerConn = linked.connection;
    const id = trainingReceiptId(receipt);
    await roundReproduced(n, receipt, delta);
    await eventually(
      async () => (await n.record(id)).status === "unpaid" || (await n.stats()).passed === 1,
      "the dial's end",
    );
    assert.equal((await n.stats()).passed, 1, "challenged once a slot freed, and passed");
    assert.ok(reaches >= 2, "dialled again after the first answer was full");
    assert.equal(linked.challenges.length, 1);
    const record = await n.record(id);
    await n.closeWindow();
    assert.deepEqual(await n.account(receipt.trainer), {
      balance: record.credit,
      stake: TRAINER_STAKE,
      locked: 0,
    });
  } finally {
    await n.close();
  }
});

Deno.test("review s81 vtrn2 F1: a drawn trainer this node's dials stay full for, to the dial's end, was never dialled: its receipt is left pending and paid here, not ended unreachable", async () => {
  let reaches = 0;
  const logs: string[] = [];
  const reach = (m: DialMessage) => m.type === "reach" && ++reaches > 0 && "full" as const;
  const n = await claimNode("s81-vtrn2-full-end", () => undefined, 400, reach, {
    log: (line) => logs.push(line),
  });
  try {
    const t = await trainedEngine(n.model.cid, 1);
    const { receipt, delta } = t.receipts[0];
    const id = trainingReceiptId(receipt);
    await roundReproduced(n, receipt, delta);
    await eventually(
      async () =>
        logs.some((l) => l.includes("never dialled")) || (await n.record(id)).status === "unpaid",
      "the dial's end",
    );
    assert.equal((await n.record(id)).status, "pending", "not ended: no dial was made");
    assert.ok(reaches >= 2, "asked again while the answer was full");
    const record = await n.record(id);
    await n.closeWindow();
    assert.deepEqual(await n.account(receipt.trainer), {
      balance: record.credit,
      stake: TRAINER_STAKE,
      locked: 0,
    });
  } finally {
    await n.close();
  }
});

Deno.test("review s81 vtrn2 F2: one staked griefer's claims about three honest trainers this ledger dials but cannot reach decide nothing: each receipt is left pending and paid, the griefer's stake whole (before: all three unpaid here, for free)", async () => {
  const logs: string[] = [];
  // A dial is made (the network takes it) but never connects: the trainers only dial out.
  const n = await claimNode("s81-vtrn2-grief", () => undefined, 400, () => true, {
    log: (line) => logs.push(line),
  });
  try {
    const griefer = Identity.generate();
    await n.pledge(griefer);
    const before = await n.account(griefer.publicKey);
    const records = [];
    for (let i = 0; i < 3; i++) {
      const t = await trainedEngine(n.model.cid, 1); // honest
      const { receipt } = t.receipts[0];
      await n.credit(receipt);
      const id = trainingReceiptId(receipt);
      const locked = (await n.record(id)).locked;
      await n.claim(claim(receipt, griefer));
      await eventually(
        async () =>
          logs.filter((l) => l.includes("not reached for a takeover")).length === i + 1 ||
          (await n.record(id)).status === "unpaid",
        `claim ${i}'s takeover to end`,
      );
      const record = await n.record(id);
      assert.equal(record.status, "pending", "left as it was: the claim decided nothing");
      assert.equal(record.locked, locked);
      records.push({ receipt, record });
    }
    const stats = await n.stats();
    assert.equal(stats.takeovers, 0, "no challenge was made");
    await n.closeWindow();
    for (const { receipt, record } of records) {
      assert.deepEqual(await n.account(receipt.trainer), {
        balance: record.credit,
        stake: TRAINER_STAKE,
        locked: 0,
      });
    }
    assert.deepEqual(before, { balance: 0, stake: STAKE, locked: 0 });
    assert.deepEqual(await n.account(griefer.publicKey), before);
  } finally {
    await n.close();
  }
});

Deno.test("review s81 vtrn2 F3: a validator whose own network is down (no live peer, no dial connects) leaves every drawn trainer it cannot reach pending and paid, logging the outage once (before: all unpaid here)", async () => {
  const logs: string[] = [];
  let peerAsks = 0;
  // Dials are taken but nothing ever connects, and this node holds no live peer.
  const n = await claimNode("s81-vtrn2-down", () => undefined, 400, () => true, {
    log: (line) => logs.push(line),
  }, { peers: () => (peerAsks++, []) });
  try {
    const drawn = [];
    for (let i = 0; i < 3; i++) {
      const t = await trainedEngine(n.model.cid, 1); // honest, listening elsewhere
      const { receipt, delta } = t.receipts[0];
      await roundReproduced(n, receipt, delta, `-down-${i}`);
      const id = trainingReceiptId(receipt);
      // This node asked its network for its peers (its evidence that it works) once the dial failed.
      await eventually(
        async () => peerAsks === i + 1 || (await n.record(id)).status === "unpaid",
        `trainer ${i}'s dial to end`,
      );
      assert.equal(
        (await n.record(id)).status,
        "pending",
        "left pending: the outage is this node's",
      );
      drawn.push({ receipt, credit: (await n.record(id)).credit });
    }
    assert.equal(logs.filter((l) => l.includes("network looks down")).length, 1, "logged once");
    assert.equal((await n.stats()).frauds, 0);
    await n.closeWindow();
    for (const { receipt, credit } of drawn) {
      assert.deepEqual(await n.account(receipt.trainer), {
        balance: credit,
        stake: TRAINER_STAKE,
        locked: 0,
      });
    }
  } finally {
    await n.close();
  }
});
