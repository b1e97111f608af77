/**
 * Review s63: a peer's round outcome admitted at the gate is not lost when the training validator
 * stops while its audit, or its first credit, is under way.
 *
 * Admitted, an outcome is marked seen and its audit budgets charged; its audit then runs outside
 * the mailbox (`training/_outcome_audits.ts`), and so does its first credit. Before (stop 63), a
 * stop of the training validator meanwhile (a node stop, a restart after a crash) lost it: the
 * `audited` (or `uncredited`) tell to the stopped validator was refused, nothing was on disk, a
 * relay's later copy was dropped as seen, and the round's honest trainers, paid in every other
 * ledger, stayed unpaid in this one after the restart. Now an admitted outcome is on disk (the
 * kept outcomes' folder, `audit` stage, within their bounds) from admission until its credit is
 * answered, and the next start audits it again.
 *
 * Each test stops the training validator mid-way and reads the ledger outcome after the restart:
 * every trainer's receipt final, its credit paid.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type ActorContext, LaterReply } from "../../actors/actor.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { KEPT_OUTCOMES_DIR, MAX_KEPT_OUTCOMES_PER_PEER } from "../../training/_outcome_audits.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { type DeltaRead, onRoundLedger, type RoundLedger } from "./_round_ledger.ts";

/** A relaying peer other than the fixture's (hex key). */
const OTHER_PEER = "dd".repeat(32);

const onNode = (label: string, test: (node: RoundLedger, timers: FakeTimers) => Promise<void>) => {
  const timers = new FakeTimers();
  return onRoundLedger(
    { name: `s63-audit-stop-${label}`, resumeOwnProofs: true, timers },
    (node) => test(node, timers),
  );
};

/**
 * Storage reads of the round's deltas that hang until `fail()`: `started()` once the audit asked
 * for one (the outcome admitted, its audit under way).
 */
function hungReads(): { read: DeltaRead; started: () => boolean; fail: () => void } {
  const pending: ((error: Error) => void)[] = [];
  let failed = false;
  return {
    read: () =>
      failed ? Promise.reject(new Error("storage gone")) : new Promise<Uint8Array>((_, reject) => {
        pending.push(reject);
      }),
    started: () => pending.length > 0,
    fail: () => {
      failed = true;
      for (const reject of pending.splice(0)) reject(new Error("the old incarnation's read"));
    },
  };
}

/** Fire the training validator's waits until the round's trainers are paid here. */
async function paidAfterRestart(node: RoundLedger, timers: FakeTimers): Promise<void> {
  await eventually(() => {
    timers.fireAll();
    return node.log.some((l) => l.includes("reproduced, served"));
  }, "the outcome read back and reproduced");
  await node.assertPaid();
}

/** The kept outcomes' files on disk beside the ledger of `node`. */
async function keptFiles(node: RoundLedger): Promise<string[]> {
  const dir = join(node.dir, "ledger", KEPT_OUTCOMES_DIR);
  return await Array.fromAsync(Deno.readDir(dir)).then(
    (entries) => entries.filter((e) => e.name.endsWith(".cbor")).map((e) => e.name),
    () => [],
  );
}

Deno.test("review s63: a peer's outcome admitted at the gate whose audit is under way when the training validator stops is audited again at the next start: the round's honest trainers are credited and paid here", () =>
  onNode("audit", async (node, timers) => {
    const storage = hungReads();
    node.deltaReads(storage.read);
    await node.send(); // a peer's: admitted, its audit waits on storage
    await eventually(storage.started, "the audit under way");
    await node.restartTraining();
    storage.fail(); // the stopped incarnation's audit ends: its answer is lost
    node.deltaReads(undefined);
    await paidAfterRestart(node, timers);
  }));

Deno.test("review s63: a peer's audited outcome whose first credit is under way when the training validator stops (the ledger not answering one of its asks) is audited and credited again at the next start: its honest trainers are paid here", () =>
  onNode("credit", async (node, timers) => {
    // The ledger holds the round's first credit ask (answering the others meanwhile) until the
    // test lets it go unanswered.
    const receive = ValidatorActor.prototype.receive;
    const unanswered = Promise.withResolvers<never>();
    let held = false;
    ValidatorActor.prototype.receive = function (
      message: ValidatorMessage,
      ctx: ActorContext<ValidatorMessage>,
    ) {
      if (!held && message.type === "training_receipt" && message.credited) {
        held = true;
        return new LaterReply(unanswered.promise);
      }
      return receive.call(this, message, ctx);
    };
    try {
      await node.send(); // a peer's: admitted and reproduced, its first credit under way
      await eventually(() => held, "the first credit under way");
      await node.restartTraining();
      // The stopped incarnation's ask goes unanswered: its `uncredited` is refused.
      unanswered.reject(new Error("the ledger did not answer"));
    } finally {
      ValidatorActor.prototype.receive = receive;
    }
    await paidAfterRestart(node, timers);
  }));

Deno.test("review s63: a relay flooding outcomes admitted at the gate keeps at most its share of them on disk, and the genuine outcome from another relay is still kept and paid after a stop", () =>
  onNode("flood", async (node, timers) => {
    const storage = hungReads();
    node.deltaReads(storage.read);
    // A staked key of the flooder's own signs outcomes naming other models over the same deltas.
    const flooder = Identity.generate();
    await node.ledger().ask({ type: "deposit", key: flooder.publicKey, amount: node.stake });
    for (let i = 0; i < 8; i++) {
      const body: OutcomeBody = signOutcome({ ...node.signed, model: `bafyflood${i}` }, flooder);
      await node.send(body, OTHER_PEER);
    }
    await node.send(); // the genuine one, from the fixture's peer
    await eventually(storage.started, "the audits under way");
    const files = await keptFiles(node);
    assert.equal(
      files.length,
      MAX_KEPT_OUTCOMES_PER_PEER + 1,
      `the flooder's share and the genuine outcome on disk: ${files.join(", ")}`,
    );
    assert.ok(
      node.log.some((l) => l.includes("not kept on disk meanwhile (too many kept from its relay)")),
      "the rest of the flood audited in memory only, logged",
    );
    await node.restartTraining();
    storage.fail();
    node.deltaReads(undefined);
    await paidAfterRestart(node, timers);
  }));
