/**
 * A node's catch-up (`actors/_catch_up.ts`) survives a restart of its process: node A confirmed
 * a peer's conviction of a cheat (V's fraud proof, gossiped to it), then its process ended and a
 * new one started on the same data directory. Before, the convictions were in memory only: the
 * restarted A resent its own proofs (read back from `own-fraud-proofs/`) but not V's, and ledger
 * C, which had the cheat's receipt and was away, connected only to the restarted A and paid the
 * cheat every other ledger slashed.
 *
 * The first life runs in a child process (`_catch_up_first_life.ts`), so nothing of it stays in
 * this one's memory: a restart, not a supervisor's restart. No clock is raced: every ledger runs
 * on a clock fixed at `START`.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { CatchUpItem, ReceiptHandled } from "../../actors/validator_messages.ts";
import type { JobAssignment } from "../../protocols/assignment.ts";
import { decodeCbor } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import { HONEST_MODELS, ledgerReads, START } from "../actors/_validator_fixture.ts";
import { joinLedgerNodes, spawnLedgerNode, STAKE } from "./_ledger_node.ts";

const FIRST_LIFE = new URL("./_catch_up_first_life.ts", import.meta.url).pathname;

/** What the first life left: A's key, V's and the cheat's, and the cheat's assigned receipt. */
interface FirstLife {
  a: Uint8Array;
  v: Uint8Array;
  cheat: Uint8Array;
  receipt: Receipt;
  job: TextJob;
  assignment: JobAssignment;
}

/** Run A's first life in a child process on `dir`; what it left. */
async function firstLife(dir: string): Promise<FirstLife> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", FIRST_LIFE, dir],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.equal(
    out.code,
    0,
    `the first life failed: ${decoder.decode(out.stdout)}${decoder.decode(out.stderr)}`,
  );
  return decodeCbor(await Deno.readFile(`${dir}/first-life.cbor`)) as FirstLife;
}

Deno.test("a peer's conviction this node confirmed reaches, after the node's process restarted, a ledger that connects only to it: the cheat is slashed there too", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "catch-up-restart" });
  try {
    const life = await firstLife(dir);
    const id = receiptId(life.receipt);
    const clock = { t: START };
    // C had the cheat's receipt (through other peers) and the accuser's stake; it was away.
    const c = await spawnLedgerNode(system, dir, "c", {
      identity: Identity.generate(),
      models: HONEST_MODELS,
      clock,
    });
    await c.validator.ask({ type: "deposit", key: life.cheat, amount: STAKE });
    await c.validator.ask({ type: "deposit", key: life.v, amount: STAKE });
    const handled = await c.validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt: life.receipt,
      job: life.job,
      assignment: life.assignment,
      origin: "ab".repeat(32),
    });
    assert.equal(handled.recorded, true);
    // A's second life, on the same directory.
    const a = await spawnLedgerNode(system, dir, "a", {
      identity: Identity.fromSecretKey(life.a),
      models: HONEST_MODELS,
      clock,
    });
    const kept = await a.validator.ask<CatchUpItem[]>({ type: "catch_up" });
    await joinLedgerNodes(a, c);
    const reads = ledgerReads(() => c.validator, clock);
    // A bounded wait for the conviction; without it the window closes on what C has.
    await eventually(async () => (await reads.record(id))?.status === "fraud", "C to slash", {
      timeoutMs: 5_000,
    }).catch(() => {});
    await reads.closeWindow();
    const slash = life.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.equal(
      (await reads.record(id))?.status,
      "fraud",
      "C settled the cheat's receipt otherwise",
    );
    const cheat = await reads.account(life.cheat);
    assert.equal(cheat.balance, 0, "the cheat was paid");
    assert.equal(cheat.stake, STAKE - slash, "the cheat was not slashed");
    assert.equal(
      (await reads.account(life.v)).balance,
      slash * DEFAULT_ECONOMICS.validatorRewardShare,
      "the accuser was not rewarded once",
    );
    assert.deepEqual(
      kept.map((item) => item.kind === "fraud_proof" && receiptId(item.proof.receipt)),
      [id],
      "the restarted node's catch-up lost the conviction it confirmed",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
