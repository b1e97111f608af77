/**
 * Test fixture for the catch-up's network tests (`catch_up_restart_test.ts`,
 * `review_s43_catch_up_*_test.ts`): node A settles V's conviction of a cheat's receipt, and
 * ledger C, which had the receipt and was away, meets A only after A's process (or validator)
 * restarted. Here: the cheat's case; A knowing the receipt; the record A's first life (run in a
 * child process) leaves for the test's process, and its runner; C; A's second life joining C; and
 * the assertions that C slashed the cheat and rewarded the accuser once. Every ledger runs on a
 * clock fixed at `START`, which only `closeWindow` moves.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ActorSystem } from "../../actors/actor_system.ts";
import type { CatchUpItem, ReceiptHandled } from "../../actors/validator_messages.ts";
import { type JobAssignment, signAssignment } from "../../protocols/assignment.ts";
import { decodeCbor, encodeCanonical } from "../../protocols/cbor.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { proveJob } from "../../proof/prover.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  type LedgerClock,
  ledgerReads,
  proveOn,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
import { joinLedgerNodes, type LedgerNode, spawnLedgerNode, STAKE } from "./_ledger_node.ts";

/** What a ledger that was away is given: the cheat's assigned receipt, the cheat's and V's keys. */
export interface CheatEvidence {
  v: Uint8Array;
  cheat: Uint8Array;
  receipt: Receipt;
  job: TextJob;
  assignment: JobAssignment;
}

/** What the first life left: A's key (its ledger is signed with it) and the cheat's evidence. */
export interface FirstLife extends CheatEvidence {
  a: Uint8Array;
}

/** A's, V's, the cheat's and its requester's keys; the cheat's proved job; its evidence. */
export interface CheatCase {
  a: Identity;
  v: Identity;
  cheat: Identity;
  requester: Identity;
  job: TextJob;
  proved: Awaited<ReturnType<typeof proveJob>>;
  id: string;
  evidence: CheatEvidence;
}

/** Fresh keys, and a cheat that ran a fresh job on another model than the one it names. */
export async function cheatCase(): Promise<CheatCase> {
  const [a, v, cheat, requester] = Array.from({ length: 4 }, Identity.generate);
  const job = textJob(requester, crypto.randomUUID());
  const proved = await proveOn(job, cheat, f.otherSeed);
  const assignment = signAssignment({ job, worker: cheat.publicKey, issuedAt: 0 }, requester);
  const evidence = {
    v: v.publicKey,
    cheat: cheat.publicKey,
    receipt: proved.receipt,
    job,
    assignment,
  };
  return { a, v, cheat, requester, job, proved, id: receiptId(proved.receipt), evidence };
}

/** V's check of the cheat's receipt: its fraud proof (undefined where it found none). */
export async function fraudProofOf(c: CheatCase): Promise<FraudProof | undefined> {
  const { fraudProof } = await validateReceipt(
    { job: c.job, receipt: c.proved.receipt, proof: c.proved.proof },
    f.honest,
    c.v,
    { now: () => START },
  );
  return fraudProof;
}

/** Spawn A (`a`, its ledger `<dir>/a`) holding the cheat's and V's stakes and the cheat's receipt. */
export async function spawnKnowingA(
  system: ActorSystem,
  dir: string,
  c: CheatCase,
  clock: LedgerClock,
): Promise<LedgerNode> {
  const a = await spawnLedgerNode(system, dir, "a", {
    identity: c.a,
    models: HONEST_MODELS,
    clock,
  });
  for (const key of [c.cheat, c.v]) {
    await a.validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
  }
  await announceAssigned(a.validator, c.proved.receipt, c.job, c.requester);
  return a;
}

/** Write what A's first life leaves (a {@link FirstLife}) to `<dir>/first-life.cbor`. */
export function writeFirstLife(dir: string, c: CheatCase): Promise<void> {
  const life: FirstLife = { a: c.a.exportSecretKey(), ...c.evidence };
  return Deno.writeFile(`${dir}/first-life.cbor`, encodeCanonical(life));
}

/** Run A's first life in a child process (`deno run -A --quiet ...args`) on `dir`; what it left. */
export async function runFirstLife(dir: string, args: string[]): Promise<FirstLife> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", ...args],
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

/**
 * Spawn ledger C (`c`, its ledger `<dir>/c`), which had the cheat's receipt (through other peers)
 * and the accuser's stake, and was away; it connects to no one yet.
 */
export async function spawnAwayLedger(
  system: ActorSystem,
  dir: string,
  clock: LedgerClock,
  evidence: CheatEvidence,
): Promise<LedgerNode> {
  const c = await spawnLedgerNode(system, dir, "c", {
    identity: Identity.generate(),
    models: HONEST_MODELS,
    clock,
  });
  await c.validator.ask({ type: "deposit", key: evidence.cheat, amount: STAKE });
  await c.validator.ask({ type: "deposit", key: evidence.v, amount: STAKE });
  const handled = await c.validator.ask<ReceiptHandled>({
    type: "receipt",
    receipt: evidence.receipt,
    job: evidence.job,
    assignment: evidence.assignment,
    origin: "ab".repeat(32),
  });
  assert.equal(handled.recorded, true);
  return c;
}

/**
 * A's second life, on the same directory, in `system`: ledger C is spawned away
 * ({@link spawnAwayLedger}), the restarted A (its key from `life`) joins C only, and C is asserted
 * to have slashed the cheat ({@link assertAwaySlashed}). Resolves with the receipt ids of the
 * convictions in A's catch-up as it started (false for any other item).
 */
export async function restartMeetingAwayLedger(
  system: ActorSystem,
  dir: string,
  life: FirstLife,
  clock: LedgerClock,
): Promise<(string | false)[]> {
  const c = await spawnAwayLedger(system, dir, clock, life);
  const a = await spawnLedgerNode(system, dir, "a", {
    identity: Identity.fromSecretKey(life.a),
    models: HONEST_MODELS,
    clock,
  });
  const kept = await a.validator.ask<CatchUpItem[]>({ type: "catch_up" });
  await joinLedgerNodes(a, c);
  await assertAwaySlashed(c, clock, life);
  return kept.map((item) => item.kind === "fraud_proof" && receiptId(item.proof.receipt));
}

/**
 * Wait (up to the shared give-up time: every caller expects the conviction) for C to take the
 * conviction, close C's window and assert C settled the cheat's receipt as fraud: the cheat not
 * paid and slashed, the accuser rewarded once. Resolves with the slash.
 */
export async function assertAwaySlashed(
  c: LedgerNode,
  clock: LedgerClock,
  evidence: CheatEvidence,
): Promise<number> {
  const id = receiptId(evidence.receipt);
  const reads = ledgerReads(() => c.validator, clock);
  // A wait for the conviction; without it the window closes on what C has.
  await eventually(async () => (await reads.record(id))?.status === "fraud", "C to slash")
    .catch(() => {});
  await reads.closeWindow();
  const slash = evidence.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
    DEFAULT_ECONOMICS.slashMultiplier;
  assert.equal(
    (await reads.record(id))?.status,
    "fraud",
    "C settled the cheat's receipt otherwise",
  );
  const cheat = await reads.account(evidence.cheat);
  assert.equal(cheat.balance, 0, "the cheat was paid");
  assert.equal(cheat.stake, STAKE - slash, "the cheat was not slashed");
  assert.equal(
    (await reads.account(evidence.v)).balance,
    slash * DEFAULT_ECONOMICS.validatorRewardShare,
    "the accuser was not rewarded once",
  );
  return slash;
}
