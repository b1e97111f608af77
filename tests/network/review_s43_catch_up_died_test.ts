/**
 * Review s43: a node's process dies right after its ledger settled a peer's conviction (the
 * ledger's entry is durable, nothing after it ran). Before, the conviction was written to
 * `<ledger>/catch-up/` only after the settlement, so it was lost from the catch-up: ledger C,
 * which had the cheat's receipt and was away, connected only to the restarted node and paid the
 * cheat every other ledger slashed. The catch-up now writes the conviction's file before it is
 * settled, and reads back only what the ledger settled as fraud.
 *
 * The first life runs in a child process (this file, run with `first-life <dir>`), which exits
 * inside the settlement: a process's death, not a supervisor's restart. No clock is raced:
 * every ledger runs on a clock fixed at `START`.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { CatchUpItem, ReceiptHandled } from "../../actors/validator_messages.ts";
import { type JobAssignment, signAssignment } from "../../protocols/assignment.ts";
import { decodeCbor, encodeCanonical } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Ledger } from "../../proof/ledger.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
import { joinLedgerNodes, spawnLedgerNode, STAKE } from "./_ledger_node.ts";

/** What the first life left: A's key, the accuser's and the cheat's, and the cheat's receipt. */
interface FirstLife {
  a: Uint8Array;
  v: Uint8Array;
  cheat: Uint8Array;
  receipt: Receipt;
  job: TextJob;
  assignment: JobAssignment;
}

/**
 * A's first life: it records the cheat's receipt, takes V's fraud proof from a peer, checks it
 * and settles it; the process exits as soon as the ledger's confirmed settlement is durable.
 */
async function firstLifeMain(dir: string): Promise<never> {
  const clock = { t: START };
  const [a, v, cheat, requester] = Array.from({ length: 4 }, Identity.generate);
  const job = textJob(requester, crypto.randomUUID());
  const proved = await proveOn(job, cheat, f.otherSeed);
  const assignment = signAssignment({ job, worker: cheat.publicKey, issuedAt: 0 }, requester);
  const { fraudProof } = await validateReceipt(
    { job, receipt: proved.receipt, proof: proved.proof },
    f.honest,
    v,
    { now: () => START },
  );
  if (fraudProof === undefined) throw new Error("no fraud proof");
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
  const system = new ActorSystem({ name: "review-s43-first-life" });
  const nodeA = await spawnLedgerNode(system, dir, "a", {
    identity: a,
    models: HONEST_MODELS,
    clock,
  });
  for (const key of [cheat, v]) {
    await nodeA.validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
  }
  await announceAssigned(nodeA.validator, proved.receipt, job, requester);
  // The process dies once the ledger's conviction is on disk: nothing after it runs.
  const settle = Ledger.prototype.settleFraud;
  Ledger.prototype.settleFraud = async function (this: Ledger, settlement) {
    const entry = await settle.call(this, settlement);
    if (settlement.confirmed) Deno.exit(0);
    return entry;
  };
  await nodeA.validator.ask({ type: "fraud_proof", proof: fraudProof, origin: "ab".repeat(32) });
  await new Promise((resolve) => setTimeout(resolve, 60_000));
  Deno.exit(3); // never settled
}

if (Deno.args[0] === "first-life") await firstLifeMain(Deno.args[1]);

/** Run A's first life in a child process on `dir`; what it left. */
async function firstLife(dir: string): Promise<FirstLife> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", new URL(import.meta.url).pathname, "first-life", dir],
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

Deno.test("review s43: a conviction whose settlement the process died right after still reaches, after the restart, a ledger that connects only to this node: the cheat is slashed there", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "review-s43-died" });
  try {
    const life = await firstLife(dir);
    const id = receiptId(life.receipt);
    const clock = { t: START };
    const me = Identity.fromSecretKey(life.a);
    // A's ledger settled the conviction before the process died.
    const ledger = await Ledger.open(`${dir}/a`, me, { now: () => clock.t });
    assert.equal(ledger.receipt(id)?.status, "fraud", "A's first life did not settle the proof");
    await ledger.close();
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
      identity: me,
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
      "the restarted node's catch-up lost the conviction its ledger settled",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
