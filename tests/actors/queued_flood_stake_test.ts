/**
 * At the bound on proofs queued in all (`MAX_QUEUED_ACCUSATIONS`, `actors/_queued_accusations.ts`)
 * a covered proof is not refused for a flood of covered proofs queued before it. Review s78: 64
 * keys each pledging enough to cover their proofs, one queued each before the honest accuser's
 * queued confirmed proof, pushed it out (the newcomer went at a tie) and the cheat was paid. Now
 * one about a receipt not recorded here goes first, then the accuser with the least free stake
 * per queued proof, and the ledger says what the flood cost each key.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import {
  MAX_QUEUED_ACCUSATIONS,
  type QueuedAccusation,
  QueuedAccusations,
} from "../../actors/_queued_accusations.ts";
import type { FraudCheckResult } from "../../proof/fraud_check.ts";
import type { Account } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Receipt } from "../../protocols/receipt.ts";
import { falseProof, proveOn, textJob } from "./_validator_fixture.ts";
import {
  accuser,
  assertSlashedAndCharged,
  cheat,
  confirmed,
  ending,
  outcomes,
  PENALTY,
  pledge,
  queueLedger,
  requester,
  send,
  START,
} from "./_queued_accusation_fixture.ts";

/** Never pledges: its receipt is never recorded, so a proof of it is held for it for good. */
const unpledged = Identity.generate();
const never = await proveOn(textJob(requester, "queued-flood-never", { prompt: "x" }), unpledged);
const flooders = Array.from({ length: MAX_QUEUED_ACCUSATIONS }, () => Identity.generate());
/** Each flooding key's pledge: exactly what its proof in flight and its queued one reserve. */
const FLOODER_STAKE = 2 * PENALTY;

/**
 * The accuser's refuted proof is being checked; each of 64 keys pledging {@link FLOODER_STAKE}
 * sends two proofs of `target` (its first in flight, its second queued behind it); then the
 * accuser's confirmed proof is queued. What each proof came to, the ledger's ending, and each
 * flooding key's stake after.
 */
async function flood(target: Receipt) {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "queued-flood-stake" });
  const clock = { t: START };
  const gate = Promise.withResolvers<void>();
  try {
    const v = await queueLedger(system, "v/validator", `${root}/v`, clock, gate.promise);
    const [first] = await send(v, [falseProof(cheat.receipt, accuser, 1)]);
    assert.equal(first.queued, true, "the refuted proof is being checked");
    // Which flooding key's queued proof was dropped (its waiter rejected at once, inside the
    // validator's `receive`; one about an unknown receipt is never checked, so never settles).
    const dropped = flooders.map(() => false);
    for (const key of flooders) {
      await pledge(v, key, FLOODER_STAKE);
      const [inFlight, queued] = await send(v, [
        falseProof(target, key, 1),
        falseProof(target, key, 2),
      ]);
      assert.ok(inFlight.queued || inFlight.awaitingReceipt, "a flooder's first is in flight");
      assert.equal(queued.awaitingAccusation, true, "its second is queued behind it");
      const i = flooders.indexOf(key);
      queued.result?.catch(() => dropped[i] = true);
    }
    const [second] = await send(v, [confirmed]);
    assert.equal(second.awaitingAccusation, true, "the confirmed proof waits behind the first");
    gate.resolve();
    assert.deepEqual(await outcomes(v, [first, second]), ["checked:false", "checked:true"]);
    const end = await ending(v, clock);
    return { end, dropped, stakes: await stakes(v) };
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
}

/** Each flooding key's stake at `v`. */
async function stakes(v: ActorRef<ValidatorMessage>): Promise<number[]> {
  const all: number[] = [];
  for (const key of flooders) {
    all.push((await v.ask<Account>({ type: "account", key: key.publicKey })).stake);
  }
  return all;
}

/** Only the last flooding key to queue (the latest of those as low) lost its queued proof. */
function lastDropped(dropped: boolean[]): void {
  assert.deepEqual(
    dropped,
    flooders.map((_, i) => i === flooders.length - 1),
    "the last flooding key's queued proof went, and no other",
  );
}

Deno.test("64 covered keys queuing proofs behind ones held for a receipt never recorded, before the accuser's queued confirmed proof, do not push it out: the worker slashed, the accuser charged and rewarded, each key's stake untouched", async () => {
  const { end, dropped, stakes } = await flood(never.receipt);
  assertSlashedAndCharged(end, "flood about an unknown receipt");
  lastDropped(dropped);
  // Nothing of theirs was checked: the flood cost them nothing, and bought nothing.
  assert.deepEqual(stakes, flooders.map(() => FLOODER_STAKE), "no flooding key charged");
});

Deno.test("64 covered keys accusing the cheat's recorded receipt, each queuing a second proof before the accuser's queued confirmed proof, do not push it out: the worker slashed, the accuser rewarded, each key charged a penalty for each of its proofs checked", async () => {
  const { end, dropped, stakes } = await flood(cheat.receipt);
  assertSlashedAndCharged(end, "flood about the recorded receipt");
  lastDropped(dropped);
  // Both of a key's proofs checked and refuted: two penalties; the key whose queued proof went:
  // one.
  assert.deepEqual(
    stakes,
    flooders.map((_, i) => i === flooders.length - 1 ? FLOODER_STAKE - PENALTY : 0),
    "each flooding key charged for each of its proofs checked",
  );
});

/** A queued proof named `hash`, covered by its accuser's stake and about a recorded receipt. */
function item(hash: string, known = true): QueuedAccusation {
  const waiting = Promise.withResolvers<FraudCheckResult>();
  waiting.promise.catch(() => {});
  return { proof: confirmed, hash, arrivedAt: START, backed: true, known, waiting };
}

Deno.test("at the bound, the accuser with the least free stake per queued proof gives one, a proof about a receipt not recorded here goes before one about a recorded receipt, and the newcomer goes when it is the least backed", () => {
  const keys = Array.from({ length: MAX_QUEUED_ACCUSATIONS }, (_, i) => `${i}`.padStart(4, "k"));
  const stake = new Map<string, number>(keys.map((key) => [key, 10]));
  const freeStake = (key: string) => stake.get(key) ?? 0;
  // One poorer key among 64: a richer newcomer pushes out its proof.
  stake.set(keys[5], 5);
  stake.set("rich", 100);
  const poorer = new QueuedAccusations({ freeStake });
  for (const [i, key] of keys.entries()) poorer.queue(key, "r", item(`h${i}`));
  poorer.queue("rich", "r", item("rich"));
  assert.ok(poorer.holds("rich"), "the richer newcomer stays");
  assert.ok(!poorer.holds("h5"), "the poorest accuser's proof goes");
  assert.equal(poorer.size, MAX_QUEUED_ACCUSATIONS);
  // A key with two queued proofs and twice the stake is as low per proof as the others: at a tie
  // the latest of them gives its oldest (here the first key, which queued its second last).
  const pair = new QueuedAccusations({
    freeStake: (key) => key === keys[0] ? 20 : key === "rich" ? 100 : 10,
  });
  for (const [i, key] of keys.slice(0, -1).entries()) pair.queue(key, "r", item(`p${i}`));
  pair.queue(keys[0], "r2", item("p0b"));
  pair.queue("rich", "r", item("rich"));
  assert.ok(!pair.holds("p0") && pair.holds("p0b"), "the tied latest gives its oldest");
  assert.ok(pair.holds("rich") && pair.holds("p1"), "the others stay");
  // About an unknown receipt, the richest key's proof still goes before a poorer key's known one.
  stake.set("unknown", 1_000);
  const unknown = new QueuedAccusations({ freeStake });
  unknown.queue("unknown", "u", item("u", false));
  for (const [i, key] of keys.slice(1).entries()) unknown.queue(key, "r", item(`k${i}`));
  unknown.queue(keys[5], "r2", item("poor"));
  assert.ok(!unknown.holds("u"), "the proof about an unknown receipt goes");
  assert.ok(unknown.holds("poor"), "the known one stays");
  // With no free stake at all, the key queuing the most still gives its oldest.
  const none = new QueuedAccusations({ freeStake: () => 0 });
  none.queue("many", "r1", item("m1"));
  none.queue("many", "r2", item("m2"));
  for (const [i, key] of keys.slice(0, -2).entries()) none.queue(key, "r", item(`z${i}`));
  none.queue(keys[keys.length - 2], "r", item("last"));
  assert.ok(!none.holds("m1") && none.holds("m2"), "no stake: the key queuing the most gives one");
  assert.ok(none.holds("last"), "the newcomer stays");
  // A newcomer poorer per proof than every queued accuser is the one that goes.
  stake.set("poorest", 1);
  const newcomer = new QueuedAccusations({ freeStake });
  for (const [i, key] of keys.entries()) newcomer.queue(key, "r", item(`n${i}`));
  newcomer.queue("poorest", "r", item("poorest"));
  assert.ok(!newcomer.holds("poorest"), "the poorest newcomer goes");
  assert.ok(newcomer.holds("n0") && newcomer.holds("n5"), "the others stay");
});
