/**
 * Review s60: a round outcome (or a credit of its receipts) kept because the ledger did not answer
 * outlives a restart of the training validator.
 *
 * Stop 59 made the training validator keep, and take again, an outcome whose ledger ask went
 * unanswered: a peer's outcome at the gate (the coordinator's stake), or a credit of a round's
 * receipts (`training/_outcome_audits.ts`). Kept in memory only, a stop or restart of the
 * training validator while one was kept lost it, nothing brought it back (a peer passes an outcome
 * on once; this node's coordinator forgets its credit once the training validator answered), and
 * the round's honest trainers, paid in every other ledger, went unpaid in this one. Each test
 * restarts the training validator on the same ledger directory while the item is kept and reads
 * the ledger outcome: the trainers' receipts final, their balances paid.
 *
 * @module
 */
import assert from "node:assert/strict";
import { eventually } from "../_helpers/wait.ts";
import { H, onRoundLedger, type RoundLedger } from "./_round_ledger.ts";

/**
 * The round ledger ({@link onRoundLedger}) as a node keeps it: the training validator keeps what
 * it keeps in the ledger's directory, so `restartTraining` starts a new one on what the old one
 * kept.
 */
const onNode = (label: string, test: (node: RoundLedger) => Promise<void>) =>
  onRoundLedger({ name: `s60-outcome-${label}`, resumeOwnProofs: true }, test);

Deno.test("review s60: a peer's round outcome kept at the gate for a stopped ledger outlives a restart of the training validator: the round's honest trainers are paid here too", () =>
  onNode("gate", async (node) => {
    await node.stopLedger();
    await node.send(); // a peer's
    await eventually(
      () => node.log.some((l) => l.includes("kept, the ledger did not answer")),
      "the outcome kept",
    );
    await node.restartTraining();
    await node.startLedger();
    await node.assertPaid();
  }));

Deno.test("review s60: the credit this node's coordinator made of its round, kept for a stopped ledger, outlives a restart of the training validator: its honest trainers are paid in its own ledger", () =>
  onNode("coordinator-credit", async (node) => {
    await node.stopLedger();
    const { round, startModel, reports } = node.signed;
    await node.training().ask({
      type: "credit",
      receipts: reports.map((r) => r.receipt),
      terms: { round, startModel, steps: H },
    });
    assert.ok(
      node.log.some((l) => l.includes("kept, the ledger did not answer")),
      "the credit kept",
    );
    await node.restartTraining();
    await node.startLedger();
    await node.assertPaid();
  }));
