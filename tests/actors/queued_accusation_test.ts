/**
 * One accuser's second proof of a receipt that comes while its first is still being checked here
 * is queued behind it and settles once the first has (`actors/_queued_accusations.ts`,
 * `actors/_fraud_proofs.ts`). Stop 77 (G2): it was refused `repeated_accusation`, so a confirmed
 * proof that came while the same accuser's refuted one was checked was lost, and the cheat was
 * paid in that ledger while a ledger that heard them the other way round slashed it. The check
 * of the first proof waits on a gate (its model's load) the test opens once both were sent.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { MAX_QUEUED_PER_ACCUSATION } from "../../actors/_queued_accusations.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  accuser,
  ACCUSER_STAKE,
  cheat,
  confirmed,
  ending,
  outcomes,
  PENALTY,
  queueLedger as ledger,
  send,
  START,
  WORKER_STAKE,
} from "./_queued_accusation_fixture.ts";
import { falseProof } from "./_validator_fixture.ts";

const refuted = falseProof(cheat.receipt, accuser, 1);

Deno.test("an accuser's confirmed proof that comes while its refuted one is still checked, and the other way round: queued, each settles, the cheat slashed and the accuser charged and rewarded alike in both ledgers", async () => {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "queued-accusation" });
  const clock = { t: START };
  const gate = Promise.withResolvers<void>();
  try {
    const a = await ledger(system, "a/validator", `${root}/a`, clock, gate.promise);
    const b = await ledger(system, "b/validator", `${root}/b`, clock, gate.promise);
    const inA = await send(a, [refuted, confirmed]);
    const inB = await send(b, [confirmed, refuted]);
    for (const handled of [inA, inB]) {
      assert.equal(handled[0].queued, true, "the first is being checked");
      assert.equal(handled[1].awaitingAccusation, true, "the second waits behind it");
    }
    gate.resolve();
    assert.deepEqual(await outcomes(a, inA), ["checked:false", "checked:true"]);
    assert.deepEqual(await outcomes(b, inB), ["checked:true", "checked:false"]);
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    const [endA, endB] = [await ending(a, clock), await ending(b, clock)];
    assert.equal(endA.status, "fraud", "slashed where the false proof came first");
    assert.equal(endA.worker.balance, 0);
    assert.ok(endA.worker.stake < WORKER_STAKE);
    assert.equal(endA.accuser.stake, ACCUSER_STAKE - PENALTY, "charged once for its false proof");
    assert.ok(endA.accuser.balance > 0, "rewarded for its confirmed proof");
    assert.deepEqual(endA, endB, "both ledgers end the same");
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the queue behind one accusation is bounded: past it the oldest queued proof goes, and the rest settle in order after the one being checked", async () => {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "queued-accusation-bound" });
  const clock = { t: START };
  const gate = Promise.withResolvers<void>();
  try {
    const v = await ledger(system, "v/validator", `${root}/v`, clock, gate.promise);
    const copies = Array.from(
      { length: MAX_QUEUED_PER_ACCUSATION + 2 },
      (_, i) => falseProof(cheat.receipt, accuser, i + 2),
    );
    const handled = await send(v, [...copies, confirmed]);
    gate.resolve();
    const answers = await outcomes(v, handled);
    // The first is checked; of the rest, queued one after another, the oldest go past the bound
    // and the newest (the confirmed proof last) settle.
    const dropped = copies.length - MAX_QUEUED_PER_ACCUSATION;
    assert.deepEqual(answers, [
      "checked:false",
      ...Array(dropped).fill("dropped"),
      ...Array(MAX_QUEUED_PER_ACCUSATION - 1).fill("checked:false"),
      "checked:true",
    ]);
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    const end = await ending(v, clock);
    assert.equal(end.status, "fraud");
    assert.equal(end.accuser.stake, ACCUSER_STAKE - MAX_QUEUED_PER_ACCUSATION * PENALTY);
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});
