/**
 * Review s64: the ValidatorActor's start reads its own verdicts from the ledger once. Its steering
 * record and the receipts it challenged before the stop (remembered again so a copy of one never
 * has its worker asked twice) come from the same verdicts; before, each read them
 * (`Ledger.verdictsBy`: 2 to 3 s on a ledger of 200,000 verdicts, each), so a start took twice
 * that. Counted through the ledger's reader; no timing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { Ledger } from "../../proof/ledger.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { Identity } from "../../protocols/identity.ts";

Deno.test("review s64: a validator's start reads its own verdicts from the ledger once (its steering record and the receipts it challenged come from one read)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s64-start-reads-" });
  const system = new ActorSystem({ name: "s64-start-reads" });
  const me = Identity.generate();
  const verdictsBy = Ledger.prototype.verdictsBy;
  let reads = 0;
  Ledger.prototype.verdictsBy = function (validator, target) {
    if (target === undefined && bytesEqual(validator, me.publicKey)) reads++;
    return verdictsBy.call(this, validator, target);
  };
  try {
    await system.spawn<ValidatorMessage>({
      name: "node/validator",
      factory: () =>
        new ValidatorActor({
          identity: me,
          ledgerDir: join(dir, "ledger"),
          finalizeIntervalMs: 0,
          models: { get: () => Promise.resolve(undefined) },
        }),
    });
    // Started: it answers.
    await system.lookup<ValidatorMessage>("node/validator")!.ask({
      type: "account",
      key: me.publicKey,
    });
    // Before: 2 (the steering record's read, and the restart's).
    assert.equal(reads, 1, "its own verdicts read once");
  } finally {
    Ledger.prototype.verdictsBy = verdictsBy;
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
