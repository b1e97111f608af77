/**
 * `/healthz` asks the prover and the validator through the node's one `PendingAsks`, as it asks
 * the store and the network (`node/_http_api.ts`'s `healthAsks`). Review verify4, F3: five probes
 * of an actor slow to answer sent five `stats` asks to its mailbox, each answered later in front
 * of its real work.
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { PendingAsks } from "../../actors/pending_asks.ts";
import { ledgerConditions } from "../../actors/ledger_conditions.ts";
import { proofStoreConditions } from "../../actors/prover_actor.ts";
import { FakeTimers, turns } from "../_helpers/fake_timers.ts";

/** An actor whose asks are answered only by the test. */
function heldActor<M>(name: string) {
  const sent: { answer: (v: unknown) => void }[] = [];
  const ref = {
    name,
    ask: () => new Promise((resolve) => sent.push({ answer: resolve })),
  } as unknown as ActorRef<M>;
  return { ref, sent };
}

Deno.test("health checks of a prover and a validator slow to answer send one stats ask each over five probes, and each probe still reports it unanswered", async () => {
  const timers = new FakeTimers();
  const asks = new PendingAsks({ timers, inFlightLimitMs: 30_000 });
  const prover = heldActor<never>("node/prover");
  const validator = heldActor<never>("node/validator");
  const probes: Promise<{ component: string; code: string }[]>[] = [];
  for (let probe = 0; probe < 5; probe++) {
    probes.push(proofStoreConditions(prover.ref, asks), ledgerConditions(validator.ref, asks));
    await turns(5);
    timers.fireAll(); // each probe's own 2 s pass
    await turns(5);
  }
  assert.deepEqual([prover.sent.length, validator.sent.length], [1, 1]);
  // Answered at last (so a probe that asked the actor itself ends too).
  for (const { answer } of [...prover.sent, ...validator.sent]) {
    answer({ storeFaults: [], ledgerWriteFault: undefined });
  }
  const seen = (await Promise.all(probes)).map((conditions) =>
    conditions.map(({ component, code }) => `${component} ${code}`).join()
  );
  assert.deepEqual(seen, Array(5).fill(["prover ask_timeout", "validator ask_timeout"]).flat());
});
