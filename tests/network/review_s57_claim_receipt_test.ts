/**
 * Review s57: a "proof withheld" claim passed on goes after the receipt and job it is about, on
 * the same connection (`validation.receipt`), as it goes after its author's pledge
 * (`review_s56_verdict_pledge_test.ts`).
 *
 * A ledger takes a peer's claim over (asks the worker for its proof data itself, and slashes it if
 * it withholds there too) only while it remembers the receipt and its job (bounded: 4096 receipts,
 * 64 MiB, one queue for every worker, `_validator_memory.ts`). A worker with a colluding requester
 * floods receipts until its withheld receipt is forgotten; the claim that reached that ledger alone
 * was not taken over there, and the worker that withheld from it was paid there.
 *
 * The set-up: B — C. The claimant A is connected to neither; its claim reaches B from elsewhere.
 * The worker's receipt is recorded in both; C then forgets it under a flood of another staked
 * key's receipts for near-maximal jobs. The worker served B its proof data (B's takeover clears
 * it) and withholds from C. Every ledger runs on the test's clock.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Actor } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type {
  ChallengeSource,
  ValidatorMessage,
  ValidatorStats,
} from "../../actors/validator_messages.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  START,
  textJob,
  withheldVerdict,
} from "../actors/_validator_fixture.ts";
import { floodAssignedReceipts } from "../actors/_peer_verdict_fixture.ts";
import { joinLedgerNodes, spawnLedgerNode, spawnNetworkNode } from "./_ledger_node.ts";

const STAKE = 1_000_000;

Deno.test("a 'proof withheld' claim passed on to a ledger that forgot its receipt goes after the receipt (once per connection): the worker that withholds from that ledger too is slashed there, not paid", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "s57-claim-receipt" });
  try {
    const [b, c, claimant, worker, requester, flooder] = Array.from(
      { length: 6 },
      Identity.generate,
    );
    const job = textJob(requester, "s57-claimed");
    const proved = await proveOn(job, worker);
    const id = receiptId(proved.receipt);
    const serves: ChallengeSource = {
      proof: (r) =>
        Promise.resolve(
          receiptId(r) === id ? signServedProof(id, proved.proof, worker) : undefined,
        ),
    };
    const withholds: ChallengeSource = { proof: () => Promise.resolve(undefined) };
    const nodeB = await spawnLedgerNode(system, dir, "b", {
      identity: b,
      models: HONEST_MODELS,
      now: () => clock.t,
      clock,
      validator: { challengeProbability: 0, source: serves },
    });
    const nodeC = await spawnLedgerNode(system, dir, "c", {
      identity: c,
      models: HONEST_MODELS,
      now: () => clock.t,
      clock,
      validator: { challengeProbability: 0, source: withholds },
    });
    for (const node of [nodeB, nodeC]) {
      for (const key of [worker, claimant, flooder]) {
        await node.validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
      }
      assert.equal(
        (await announceAssigned(node.validator, proved.receipt, job, requester))
          .recorded,
        true,
      );
    }
    // C forgets the worker's receipt: the flood comes to C alone (from this node: not gossiped).
    await floodAssignedReceipts(nodeC.validator, flooder, requester, "s57");
    await joinLedgerNodes(nodeB, nodeC);
    const readsB = ledgerReads(() => nodeB.validator, clock);
    const readsC = ledgerReads(() => nodeC.validator, clock);

    // A's claim reaches B, which passes it on to C.
    const claim = withheldVerdict(id, worker.publicKey, clock.t, claimant);
    const recorded = await nodeB.validator.ask<string | undefined>({
      type: "verdict",
      verdict: claim,
      origin: toHex(claimant.publicKey),
    });
    assert.ok(recorded, "B records the claim");
    await readsB.drained(); // B took the claim over: served, cleared
    await eventually(
      async () => ((await readsC.stats()) as ValidatorStats).peerVerdicts >= 1,
      "C to record the claim",
    );
    await readsC.drained();
    const { challenged, received } = await readsC.stats();
    // Another staked claimant's claim about the same receipt: passed on by B, without the receipt
    // again (it went ahead of the first on this connection: a receipt's job may take 448 KiB, and
    // every claimant's claim carrying it multiplied what a claim costs the network).
    const second = Identity.generate();
    for (const node of [nodeB, nodeC]) {
      await node.validator.ask({ type: "deposit", key: second.publicKey, amount: STAKE });
    }
    await nodeB.validator.ask({
      type: "verdict",
      verdict: withheldVerdict(id, worker.publicKey, clock.t, second),
      origin: toHex(second.publicKey),
    });
    await eventually(
      async () => ((await readsC.stats()) as ValidatorStats).peerVerdicts >= 2,
      "C to record the second claim",
    );
    assert.equal((await readsC.stats()).received, received, "the receipt went ahead once");

    await readsC.closeWindow();
    await nodeB.validator.ask({ type: "finalize" });
    assert.equal((await readsB.record(id))?.status, "final", "the worker served B: paid there");
    assert.equal((await readsC.record(id))?.status, "fraud", "C paid the worker that withheld");
    const account = await readsC.account(worker.publicKey);
    assert.equal(account.balance, 0, "the withholder was paid in C");
    assert.ok(account.stake < STAKE, "the withholder was not slashed in C");
    assert.equal(challenged, 1, "C took the claim over");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A ledger as far as a NetworkActor asks one: it records the receipts and verdicts peers hand it
 * (in the order handed) and answers the rest with nothing held.
 */
class RecordingLedger implements Actor<ValidatorMessage> {
  constructor(readonly handed: string[]) {}

  receive(message: ValidatorMessage): unknown {
    switch (message.type) {
      case "receipt":
        this.handed.push("receipt");
        return { receiptId: "", recorded: true, challenged: false, draw: 1 };
      case "verdict":
        this.handed.push(`verdict ${toHex(message.verdict.validator).slice(0, 8)}`);
        return undefined;
      case "pledges":
      case "catch_up":
        return [];
      case "convicted":
        return false;
      case "account":
        return { stake: 0, locked: 0, balance: 0 };
      default:
        return undefined;
    }
  }
}

Deno.test("a claim's receipt goes ahead of it once per connection: the claims of other claimants about it go alone", async () => {
  const system = new ActorSystem({ name: "s57-receipt-once" });
  try {
    const [b, c, worker, requester] = Array.from({ length: 4 }, Identity.generate);
    const claimants = Array.from({ length: 3 }, Identity.generate);
    const handedAtC: string[] = [];
    const node = (name: string, identity: Identity, handed: string[]) =>
      spawnNetworkNode(system, name, identity, () => new RecordingLedger(handed));
    const nodeB = await node("b", b, []);
    const nodeC = await node("c", c, handedAtC);
    await joinLedgerNodes(nodeB, nodeC);
    const job = textJob(requester, "s57-once");
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    for (const claimant of claimants) {
      await nodeB.network.tell({
        type: "publish_verdict",
        verdict: withheldVerdict(id, worker.publicKey, START, claimant),
        evidence: { receipt, job },
      });
    }
    await eventually(
      () => Promise.resolve(handedAtC.filter((m) => m.startsWith("verdict")).length === 3),
      "C to be handed the three claims",
    );
    assert.deepEqual(handedAtC, [
      "receipt",
      ...claimants.map((k) => `verdict ${toHex(k.publicKey).slice(0, 8)}`),
    ]);
  } finally {
    await system.shutdown();
  }
});
