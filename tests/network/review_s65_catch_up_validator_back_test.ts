/**
 * Review s65 red team (helper G): an honest node whose validator is down at the moment a ledger
 * connects sent that ledger no catch-up at all, for as long as the connection lasted
 * (`network/catch_up.ts`: "a validator that does not answer sends nothing to this peer"). The
 * validator comes back seconds later (the supervisor restarts it; a peer's message that crashes it
 * is enough), but nothing asked it again: a peer that stays connected — the usual case, a
 * connection lives for hours — never heard of the receipts this node assigned, its convictions or
 * its faults, and the honest ledgers ended different (here: the honest worker paid in A and unpaid
 * in C).
 *
 * A assigns and records W's receipt while no ledger is connected (it is in A's catch-up), then
 * its validator stops; C connects to A; A's validator comes back. Asserted on both ledgers after
 * the window: W is paid tokens × price in C as in A, under A's assignment.
 *
 * @module
 */
import { Identity } from "../../protocols/identity.ts";
import { HONEST_MODELS, textJob } from "../actors/_validator_fixture.ts";
import { paidInCAsInA, recordAssigned } from "./_assigned_receipt.ts";
import {
  inLedgerSetting,
  joinWhileValidatorDown,
  spawnSettingNode,
  STAKE,
} from "./_ledger_node.ts";

Deno.test("review s65: a ledger that connects while A's validator is down is sent A's catch-up once the validator is back: the honest worker is paid in C as in A", () =>
  inLedgerSetting("s65-catch-up-validator-back", async (setting) => {
    const { dir, clock, system } = setting;
    const [a, c, worker] = [1, 2, 3].map(() => Identity.generate());
    const nodeA = await spawnSettingNode(setting, system, "a", a);
    const nodeC = await spawnSettingNode(setting, system, "c", c);
    for (const node of [nodeA, nodeC]) {
      await node.validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
    }
    // Recorded while no ledger was connected: A's catch-up holds it.
    const recorded = await recordAssigned(nodeA, a, worker, textJob(a, "s65-validator-back"));

    const aAgain = await joinWhileValidatorDown(system, dir, nodeC, nodeA, {
      identity: a,
      models: HONEST_MODELS,
      clock,
    });
    await paidInCAsInA(
      clock,
      { nodeA: aAgain, nodeC },
      a,
      worker,
      recorded,
      "C to record the receipt from A's catch-up, once A's validator is back",
    );
  }));
