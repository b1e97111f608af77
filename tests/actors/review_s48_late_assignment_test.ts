/**
 * Review s48 of the intake's late assignment (`ValidatorActor`, receipt intake; `Ledger`'s
 * `recordReceipt`): a receipt that reached a ledger without its assignment first (a relay that
 * stripped it) is passed on to the ledger's peers only once its assignment comes, and a ledger
 * behind it that hears the receipt only through it records it then or never. When the copy
 * without the assignment was drawn and its challenge ended undecided here (this validator's own
 * gap: its model store failed), the assignment that came after was neither attached nor passed on,
 * and the ledgers behind never paid the honest worker, which they do when the copies come the
 * other way round.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ReceiptHandled, ValidatorModelSource } from "../../actors/validator_actor.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const STAKE = 1_000_000;
const RELAY = "ab".repeat(32);
const REQUESTER_NODE = "cd".repeat(32);

/** A model store that fails to read: every challenge of S ends undecided (`unresolved`). */
const BROKEN_MODELS: ValidatorModelSource = {
  get: () => Promise.reject(new Error("model store unreadable")),
};

/**
 * S draws every receipt and cannot read its model store; P, behind S, draws none and hears
 * receipts only through S. S hears the worker's receipt without its assignment, then with it
 * (`bareFirst`), or the other way round. Returns what P paid the worker, and how many times S
 * passed the receipt on.
 */
async function paidBehind(
  bareFirst: boolean,
): Promise<{ balance: number; credit: number; announced: number }> {
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: `s48-late-${bareFirst}` });
  try {
    const worker = Identity.generate();
    const requester = Identity.generate();
    const s = Identity.generate();
    const told: NetworkMessage[] = [];
    await system.spawn<NetworkMessage>({
      name: "s/network",
      factory: () => new RecordingNetwork(told),
    });
    const atS = await spawnValidator(system, {
      name: "s/validator",
      identity: s,
      ledgerDir: `${dir}/s`,
      clock,
      challengeProbability: 1,
      network: "s/network",
      models: BROKEN_MODELS,
    });
    const atP = await spawnValidator(system, {
      name: "p/validator",
      identity: Identity.generate(),
      ledgerDir: `${dir}/p`,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
    });
    for (const v of [atS, atP]) {
      await v.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
    }
    const job = textJob(requester, `late-${bareFirst}`);
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    const bare = () => atS.ask<ReceiptHandled>({ type: "receipt", receipt, job, origin: RELAY });
    const assigned = () =>
      announceAssigned(atS, receipt, job, requester, { origin: REQUESTER_NODE });
    const first = await (bareFirst ? bare() : assigned());
    assert.deepEqual([first.recorded, first.challenged], [true, true]);
    // Resolves once the challenge's ending is in the ledger.
    await first.result;
    const reads = ledgerReads(() => atS, clock);
    assert.equal((await reads.record(id))?.status, "unpaid", "S's own challenge is undecided");
    await (bareFirst ? assigned() : bare());
    await assigned(); // a repeat: nothing new
    // What S passed on reaches P.
    for (const message of told) {
      if (message.type !== "announce_receipt") continue;
      const { receipt, job, assignment } = message;
      await atP.ask({ type: "receipt", receipt, job, assignment, origin: toHex(s.publicKey) });
    }
    const announced = told.filter((m) => m.type === "announce_receipt").length;
    const behind = ledgerReads(() => atP, clock);
    await behind.closeWindow();
    await reads.closeWindow();
    // S itself never pays what it could not decide, and slashes nothing.
    assert.equal((await reads.record(id))?.status, "unpaid");
    assert.deepEqual(await reads.account(worker.publicKey), {
      balance: 0,
      stake: STAKE,
      locked: 0,
    });
    const credit = receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
    return { balance: (await behind.account(worker.publicKey)).balance, credit, announced };
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("review s48: a ledger behind one whose challenge ended undecided pays the honest worker whichever copy of its receipt (without or with the assignment) reached that one first", async () => {
  const assignedFirst = await paidBehind(false);
  assert.equal(assignedFirst.balance, assignedFirst.credit, "control: assigned copy first");
  assert.equal(assignedFirst.announced, 1, "control: passed on once");
  const bareFirst = await paidBehind(true);
  assert.equal(
    bareFirst.balance,
    bareFirst.credit,
    "the copy without the assignment came first: the assignment after it must still be passed on",
  );
  assert.equal(bareFirst.announced, 1, "passed on once, not at every repeat");
});
