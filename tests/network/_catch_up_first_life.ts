/**
 * The first life of node A, in a process of its own, for `catch_up_restart_test.ts`: validator V
 * convicts a cheat and gossips the fraud proof to A (they are connected), and A checks, confirms
 * and settles it; then the process ends (its actor system shut down first). Writes what the test
 * goes on with to `<dir>/first-life.cbor`: A's secret key (its ledger is signed with it), V's and
 * the cheat's keys, and the cheat's receipt with its job and signed assignment. A's ledger is
 * `<dir>/a`. Every ledger runs on a clock fixed at `START`. (The record, the cheat's case and A's
 * set-up: `_catch_up_second_life.ts`.)
 *
 * Usage: `deno run -A tests/network/_catch_up_first_life.ts <dir>`
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ChallengeSource } from "../../actors/validator_messages.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { eventually } from "../_helpers/wait.ts";
import { announceAssigned, HONEST_MODELS, START } from "../actors/_validator_fixture.ts";
import { cheatCase, spawnKnowingA, writeFirstLife } from "./_catch_up_second_life.ts";
import { joinLedgerNodes, spawnLedgerNode, STAKE } from "./_ledger_node.ts";

const dir = Deno.args[0];
// Run as a test module (a glob naming this file) it has no directory: it would write `undefined/`.
if (dir === undefined) throw new Error("usage: _catch_up_first_life.ts <dir> (a child of a test)");
const clock = { t: START };
const c = await cheatCase();
const { v, cheat, requester, job, proved, id } = c;
const source: ChallengeSource = {
  proof: () => Promise.resolve(signServedProof(id, proved.proof, cheat)),
};

const system = new ActorSystem({ name: "catch-up-first-life" });
const nodeA = await spawnKnowingA(system, dir, c, clock);
const nodeV = await spawnLedgerNode(system, dir, "v", {
  identity: v,
  models: HONEST_MODELS,
  clock,
  validator: { challengeProbability: 1, source },
});
await joinLedgerNodes(nodeV, nodeA);
await nodeV.validator.ask({ type: "deposit", key: cheat.publicKey, amount: STAKE });
const handled = await announceAssigned(nodeV.validator, proved.receipt, job, requester);
await handled.result;
// A confirmed V's conviction (a peer's, gossiped to it) and settled it.
await eventually(
  async () =>
    (await nodeA.validator.ask<{ status: string } | undefined>({
      type: "receipt_status",
      receiptId: id,
    }))?.status === "fraud",
  "A to confirm V's conviction",
);
await system.shutdown();
await writeFirstLife(dir, c);
Deno.exit(0);
