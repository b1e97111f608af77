/**
 * The first life of node A, in a process of its own, for `catch_up_restart_test.ts`: validator V
 * convicts a cheat and gossips the fraud proof to A (they are connected), and A checks, confirms
 * and settles it; then the process ends (its actor system shut down first). Writes what the test
 * goes on with to `<dir>/first-life.cbor`: A's secret key (its ledger is signed with it), V's and
 * the cheat's keys, and the cheat's receipt with its job and signed assignment. A's ledger is
 * `<dir>/a`. Every ledger runs on a clock fixed at `START`.
 *
 * Usage: `deno run -A tests/network/_catch_up_first_life.ts <dir>`
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ChallengeSource } from "../../actors/validator_messages.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  proveOn,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
import { joinLedgerNodes, spawnLedgerNode, STAKE } from "./_ledger_node.ts";

const dir = Deno.args[0];
const clock = { t: START };
const [a, v, cheat, requester] = Array.from({ length: 4 }, Identity.generate);
const job = textJob(requester, crypto.randomUUID());
const proved = await proveOn(job, cheat, f.otherSeed);
const id = receiptId(proved.receipt);
const assignment = signAssignment({ job, worker: cheat.publicKey, issuedAt: 0 }, requester);
const source: ChallengeSource = {
  proof: () => Promise.resolve(signServedProof(id, proved.proof, cheat)),
};

const system = new ActorSystem({ name: "catch-up-first-life" });
const nodeA = await spawnLedgerNode(system, dir, "a", {
  identity: a,
  models: HONEST_MODELS,
  clock,
});
await nodeA.validator.ask({ type: "deposit", key: cheat.publicKey, amount: STAKE });
await nodeA.validator.ask({ type: "deposit", key: v.publicKey, amount: STAKE });
await announceAssigned(nodeA.validator, proved.receipt, job, requester);
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
await Deno.writeFile(
  `${dir}/first-life.cbor`,
  encodeCanonical({
    a: a.exportSecretKey(),
    v: v.publicKey,
    cheat: cheat.publicKey,
    receipt: proved.receipt,
    job,
    assignment,
  }),
);
Deno.exit(0);
