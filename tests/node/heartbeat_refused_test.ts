/**
 * The heartbeat's receipts are the jobs this ledger recorded: receipts it refused (by the intake,
 * by the ledger, or lost to a ledger write that failed) are not among them but counted apart
 * (`refused N`), and a ledger that cannot write says so on every beat (review s70, node operators
 * #2: an immutable `ledger.log` showed `receipts 3` with none recorded). The validator is a
 * stand-in that answers fixed stats.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import {
  emptyValidatorStats,
  type ValidatorMessage,
  type ValidatorStats,
} from "../../actors/validator_messages.ts";
import { startHeartbeat } from "../../node/heartbeat.ts";
import { eventually } from "../_helpers/wait.ts";

/** Stats of a validator that took nothing, with `overrides`. */
function statsWith(overrides: Partial<ValidatorStats>): ValidatorStats {
  return { ...emptyValidatorStats(), ...overrides };
}

/** The validator part of the first beat of a node whose validator answers `stats`. */
async function beatOf(stats: ValidatorStats): Promise<string> {
  const validator = {
    ask: (message: ValidatorMessage) =>
      Promise.resolve(
        message.type === "stats" ? stats : { balance: 0, stake: 1_000_000, locked: 0 },
      ),
  } as unknown as ActorRef<ValidatorMessage>;
  const beats: string[] = [];
  const heartbeat = startHeartbeat({
    everyMs: 1,
    publicKey: new Uint8Array(32),
    validator: () => validator,
    network: () => undefined,
    log: (line) => beats.push(line),
  });
  try {
    return await eventually(() => beats[0], "a heartbeat");
  } finally {
    heartbeat.stop();
  }
}

Deno.test("the heartbeat does not count refused receipts as recorded: 5 handed in, 1 a copy, 3 refused (1 from a peer) are 1 receipt, refused 3", async () => {
  const beat = await beatOf(statsWith({
    received: 5,
    fromPeers: 2,
    copies: 1,
    refused: 3,
    refusedFromPeers: 1,
  }));
  // Failed before the fix: `receipts 4 (2 from peers, 1 copy)`, the refused counted as jobs.
  assert.match(beat, / · receipts 1 \(1 from peers, 1 copy\) refused 3 challenged 0 /);
  assert.doesNotMatch(beat, /ledger/);
});

Deno.test("a calm validator's heartbeat is as before (no refused part), and a ledger that cannot write is named on every beat", async () => {
  const calm = await beatOf(statsWith({ received: 3, own: 3 }));
  assert.match(calm, / · receipts 3 \(0 from peers, 0 copies\) challenged 0 /);
  assert.doesNotMatch(calm, /refused|ledger/);
  const failing = await beatOf(statsWith({
    received: 3,
    refused: 3,
    ledgerWriteFault: { cause: "EIO", message: "…", since: 0, failures: 3, reopens: 0 },
  }));
  assert.match(failing, / · receipts 0 \(0 from peers, 0 copies\) refused 3 challenged 0 /);
  assert.match(failing, / · ledger writes failing \(EIO, 3 failed\)$/);
  // Reopened from disk since (the ledger takes writes again): not named, as `/healthz` is ok.
  const reopened = await beatOf(statsWith({
    received: 3,
    refused: 3,
    ledgerWriteFault: {
      cause: "EIO",
      message: "…",
      since: 0,
      failures: 3,
      reopens: 1,
      reopenedAt: 5,
    },
  }));
  assert.doesNotMatch(reopened, /ledger/);
});
