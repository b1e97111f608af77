/**
 * Review s59: a round's outcome that reaches the training validator while this node's ledger
 * cannot take it.
 *
 * A peer's `training.outcome` is passed on once per connection. The training validator asks its
 * ledger twice for it: the coordinator's stake at the gate (`_outcome_gate.ts`), and, once the
 * audit reproduced the round, a credit per receipt (`_receipt_credits.ts`). Both answers were
 * taken as final when the ledger gave none:
 *
 * - at the gate, "no answer" read as stake 0: the outcome was refused (`unstaked_coordinator`)
 *   and, passed on once, never came again;
 * - at the credit, an ask that failed (the ValidatorActor crashed on a failed write, or was
 *   stopped) was dropped as a refusal, and the model, proven, shut out every later copy.
 *
 * Either way the round's honest trainers, credited in every other ledger, went unpaid in this one.
 * Each test reads the ledger outcome: the trainers' receipts final, their balances paid.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Ledger } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { MAX_KEPT_OUTCOMES } from "../../training/_outcome_audits.ts";
import { MAX_END_ATTEMPTS } from "../../training/_challenge_endings.ts";
import { eventually } from "../_helpers/wait.ts";
import { H, onRoundLedger, type RoundLedger } from "./_round_ledger.ts";
import { uncheckableOutcome } from "./_uncheckable_outcome.ts";

/**
 * The round ledger ({@link onRoundLedger}): an honest round's signed outcome, its keys staked;
 * `retryMs` the first wait before an unanswered ledger ask is made again (default 20 ms).
 */
const onNode = (label: string, test: (node: RoundLedger) => Promise<void>, retryMs?: number) =>
  onRoundLedger({ name: `s59-outcome-${label}`, retryMs }, test);

/**
 * Run `test` with the ledger's first training-receipt write failing as a disk does (EIO: the
 * ValidatorActor crashes, and its supervisor restarts it); `failures()` counts the failed writes.
 */
async function withFirstCreditWriteFailing(
  test: (failures: () => number) => Promise<void>,
): Promise<void> {
  const record = Ledger.prototype.recordTrainingReceipt;
  let failures = 0;
  try {
    Ledger.prototype.recordTrainingReceipt = function () {
      Ledger.prototype.recordTrainingReceipt = record;
      failures++;
      return Promise.reject(Object.assign(new Error("Input/output error (simulated)"), {
        code: "EIO",
      }));
    };
    await test(() => failures);
  } finally {
    Ledger.prototype.recordTrainingReceipt = record;
  }
}

Deno.test("review s59: a peer's round outcome handed over while this node's ledger is stopped is taken again once the ledger is back: the round's honest trainers are paid here too", () =>
  onNode("gate-stopped", async (node) => {
    await node.stopLedger();
    await node.send();
    // The gate asked for the coordinator's stake and got no answer: nothing audited yet.
    await eventually(() => node.log.length > 0, "the gate to find no ledger");
    assert.deepEqual((await node.stats()).adopted, [], "not audited without a ledger");
    await node.startLedger();
    await node.assertPaid();
    const stats = await node.stats();
    assert.equal(stats.adopted.length, 1, "audited and served once the ledger was back");
    assert.ok(
      !stats.outcomesRefused.some((r) => r.reason === "unstaked_coordinator"),
      "a ledger that did not answer is not a coordinator without stake",
    );
  }));

Deno.test("review s59: a reproduced round whose credit crashed the ledger (a failed write) is credited again once the ledger is back: the round's honest trainers are paid here too", () =>
  // The first receipt's write fails as a disk does: the ValidatorActor crashes, restarts.
  withFirstCreditWriteFailing((failures) =>
    onNode("credit-crashed", async (node) => {
      await node.send();
      await node.assertPaid();
      assert.equal(failures(), 1, "the first credit's write failed");
    })
  ));

/** A signed outcome of a made-up round, by a fresh coordinator with no stake anywhere. */
function junkOutcome(n: number): OutcomeBody {
  return uncheckableOutcome(n, Identity.generate());
}

Deno.test("review s59: a peer relaying a flood of signed outcomes while this node's ledger is down does not crowd out the genuine outcome another peer relays: its trainers are paid here", () =>
  onNode("gate-flood", async (node) => {
    await node.stopLedger();
    const flooder = "ff".repeat(32);
    for (let n = 0; n < MAX_KEPT_OUTCOMES; n++) await node.send(junkOutcome(n), flooder);
    await node.send();
    await eventually(
      () =>
        node.log.some((l) =>
          l.includes(node.signed.model.slice(0, 16)) && l.includes("kept, the ledger")
        ),
      "the genuine outcome kept",
    );
    await node.startLedger();
    await node.assertPaid();
    // The flood, taken again once the ledger answered: its coordinators have no stake here.
    await eventually(
      async () => (await node.stats()).outcomesRefused.length > 0,
      "the flood refused",
    );
    const refused = (await node.stats()).outcomesRefused;
    assert.ok(refused.every((r) => r.reason === "unstaked_coordinator"), "only the flood refused");
  }));

Deno.test("review s59: an outcome kept for a ledger that stays down is dropped after a bounded number of tries, and charged to no budget: sent again once the ledger is back, it is audited and its trainers paid", () =>
  // The first wait 1 ms: the tries (doubling) run out in about half a second.
  onNode("gate-gives-up", async (node) => {
    await node.stopLedger();
    await node.send();
    await eventually(
      () => node.log.some((l) => l.includes("dropped") && l.includes(`${MAX_END_ATTEMPTS} tries`)),
      "the tries to run out",
    );
    const tries = node.log.filter((l) => l.includes("kept, the ledger did not answer")).length;
    assert.equal(tries, MAX_END_ATTEMPTS - 1, "kept after each try but the last");
    assert.deepEqual((await node.stats()).adopted, [], "never audited without a ledger");
    await node.startLedger();
    await node.send(); // relayed again by a peer
    await node.assertPaid();
  }, 1));

Deno.test("review s59: the receipts this node's coordinator credits whose write crashed the ledger are credited again once the ledger is back: its honest trainers are paid in its own ledger", () =>
  withFirstCreditWriteFailing((failures) =>
    onNode("coordinator-credit-crashed", async (node) => {
      // The coordinator's `credit`, its outcome not (yet) audited here: a training validator
      // restarted since the round before has no momentum to reproduce it, and credits nothing
      // for it (`round_audit.ts`), so this credit is the only one.
      const { round, startModel, reports } = node.signed;
      await node.training().ask({
        type: "credit",
        receipts: reports.map((r) => r.receipt),
        terms: { round, startModel, steps: H },
      });
      await node.assertPaid();
      assert.equal(failures(), 1, "the first credit's write failed");
    })
  ));
