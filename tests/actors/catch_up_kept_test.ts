/**
 * The catch-up kept on disk (`actors/_catch_up.ts`: `<ledger dir>/catch-up/` and `catch-up-
 * verdicts/`): convictions and verdicts read back at a start under the same bounds as in memory,
 * only what the ledger settled and inside its window; a conviction about a variant of a receipt
 * kept across a restart; and a fault's verdict written ahead of its settlement, so a process that
 * ends right after it still sends it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CATCH_UP_DIR,
  CATCH_UP_VERDICTS_DIR,
  CatchUp,
  MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES,
  MAX_CATCH_UP_FRAUD_PROOF_BYTES,
  MAX_CATCH_UP_FRAUD_PROOFS,
  MAX_CATCH_UP_VERDICTS,
} from "../../actors/_catch_up.ts";
import type { CatchUpItem, FraudProofHandled } from "../../actors/validator_messages.ts";
import { decodeCbor, encodeCanonical } from "../../protocols/cbor.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  announceAssigned,
  catchUpAtStart,
  f,
  falseProof,
  HONEST_MODELS,
  inLedgerDir,
  ledgerHolding,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
  withheldVerdict,
} from "./_validator_fixture.ts";
import { TEST_ARCH } from "../training/_fixtures.ts";
import { lossFraud } from "../training/_loss_fraud.ts";
import { MAX_NETWORK_JOB_BYTES } from "../../protocols/job.ts";
import { verdictId } from "../../protocols/verdict.ts";
import {
  inLedgerSetting,
  keptFault,
  latePeerCatchesUp,
  type LedgerSetting,
  spawnLedgerNode,
  STAKE as KEPT_STAKE,
  withholds,
} from "../network/_ledger_node.ts";
import { type WithheldFault, withheldFault } from "./_withheld_fault.ts";
import { cp } from "node:fs/promises";
import { ActorSystem } from "../../actors/actor_system.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { LedgerIndex } from "../../proof/ledger_index.ts";
import { Ledger } from "../../proof/ledger.ts";
import { eventually } from "../_helpers/wait.ts";
import { resigned } from "../proof/_ledger_fixtures.ts";
import { ChallengeEndings } from "../../actors/_challenge_endings.ts";
import { endingWriteFails, STAKE as WRITE_FAULT_STAKE } from "./_ledger_write_fault.ts";
import { copyDir } from "../_helpers/copy_dir.ts";

// -------------------------------------------------------------------------------------------------
// The catch-up's convictions are kept on disk (`actors/_catch_up.ts`, `<ledger dir>/catch-up/`)
// and read back under the same bounds: 64 proofs, 8 MiB, one per receipt, the worker holding the
// most giving room back first; what is past its window is not read back; a damaged entry or an
// unreadable folder does not stop the validator's start. (That a restarted node sends what it
// read back: `tests/network/catch_up_restart_test.ts`.)

const [cheat, flooder, accuser, requester] = Array.from({ length: 4 }, Identity.generate);
const until = START + DEFAULT_ECONOMICS.challengeWindowMs;
const now = () => START;

/** A conviction of `worker`'s receipt `i` (only its receipt's id, worker and size matter). */
const baseOf = async (worker: Identity) =>
  falseProof((await proveOn(textJob(requester, "kept"), worker)).receipt, accuser);
const cheatBase = await baseOf(cheat);
const flooderBase = await baseOf(flooder);
const about = (base: FraudProof, i: number, padding = 0): FraudProof => ({
  ...base,
  receipt: { ...base.receipt, jobId: i.toString(16).padStart(64, "0") },
  chunks: padding === 0 ? [] : [{ index: 0, tokens: new Uint8Array(padding), path: [] }],
});
const conviction = (proof: FraudProof): CatchUpItem => ({ kind: "fraud_proof", proof });
const idsOf = (items: CatchUpItem[]) =>
  items.map((item) =>
    item.kind === "fraud_proof"
      ? receiptId(item.proof.receipt)
      : item.kind === "training_fraud_proof"
      ? trainingReceiptId(item.body.proof.receipt)
      : ""
  );
/** The receipt ids with a file in the catch-up folder of `ledgerDir`. */
const filesIn = async (ledgerDir: string) =>
  (await Array.fromAsync(Deno.readDir(join(ledgerDir, CATCH_UP_DIR))))
    .map((entry) => entry.name.replace(/\.cbor$/, "")).sort();

Deno.test("convictions are read back from disk, inference and training, and dropped past their window", () =>
  inLedgerDir(async (ledgerDir) => {
    const kept = new CatchUp(ledgerDir);
    const training = lossFraud("bafy-start", accuser);
    await kept.add(conviction(about(cheatBase, 1)), until);
    await kept.add(
      { kind: "training_fraud_proof", body: { proof: training, arch: TEST_ARCH } },
      until,
    );
    await kept.add(conviction(about(cheatBase, 2)), START + 1);
    const verdict = withheldVerdict("ab".repeat(32), cheat.publicKey, START, accuser);
    await kept.add({ kind: "verdict", verdict }, until);
    // Verdicts are kept on disk too, in a folder of their own (see the
    // verdicts' section below).
    assert.equal(kept.current(START).length, 4);
    const read = await CatchUp.read(ledgerDir, { now });
    assert.deepEqual(idsOf(read.current(START)), idsOf(kept.current(START)));
    assert.deepEqual(
      read.current(START).map((item) => item.kind),
      ["fraud_proof", "training_fraud_proof", "fraud_proof", "verdict"],
    );
    // Past its window: not read back, and its file is gone.
    const later = await CatchUp.read(ledgerDir, { now: () => START + 2 });
    assert.deepEqual(
      idsOf(later.current(START + 2)),
      [receiptId(about(cheatBase, 1).receipt), trainingReceiptId(training.receipt), ""],
    );
    assert.equal((await filesIn(ledgerDir)).length, 2);
  }));

Deno.test("bounds hold after reading back: 64 convictions, the worker holding the most dropped first, its files removed", () =>
  inLedgerDir(async (ledgerDir) => {
    // Two writers on one folder (as a process cut short between a write and a removal leaves
    // it): more convictions on disk than the bound.
    const first = new CatchUp(ledgerDir);
    await first.add(conviction(about(cheatBase, 1)), until);
    const second = new CatchUp(ledgerDir);
    for (let i = 0; i < MAX_CATCH_UP_FRAUD_PROOFS; i++) {
      await second.add(conviction(about(flooderBase, 1_000 + i)), until);
    }
    assert.equal((await filesIn(ledgerDir)).length, MAX_CATCH_UP_FRAUD_PROOFS + 1);
    const read = await CatchUp.read(ledgerDir, { now });
    let ids = idsOf(read.current(START));
    assert.equal(ids.length, MAX_CATCH_UP_FRAUD_PROOFS);
    assert.ok(ids.includes(receiptId(about(cheatBase, 1).receipt)), "the other cheat's went");
    assert.deepEqual(await filesIn(ledgerDir), [...ids].sort(), "the dropped one's file stayed");
    // And on from there: the flooder's run pushes out its own.
    for (let i = 0; i < MAX_CATCH_UP_FRAUD_PROOFS; i++) {
      await read.add(conviction(about(flooderBase, 2_000 + i)), until);
    }
    ids = idsOf((await CatchUp.read(ledgerDir, { now })).current(START));
    assert.equal(ids.length, MAX_CATCH_UP_FRAUD_PROOFS);
    assert.ok(ids.includes(receiptId(about(cheatBase, 1).receipt)), "the other cheat's went");
    assert.deepEqual(await filesIn(ledgerDir), [...ids].sort());
  }));

Deno.test("bounds hold after reading back: 8 MiB of convictions, the worker holding the most bytes dropped first", () =>
  inLedgerDir(async (ledgerDir) => {
    const kept = new CatchUp(ledgerDir);
    await kept.add(conviction(about(cheatBase, 1)), until);
    const big = MAX_CATCH_UP_FRAUD_PROOF_BYTES / 8; // about a frame each: eight fill the bound
    for (let i = 0; i < 9; i++) {
      await kept.add(conviction(about(flooderBase, 1_000 + i, big)), until);
    }
    const read = await CatchUp.read(ledgerDir, { now });
    const items = read.current(START);
    const bytes = items.reduce(
      (sum, item) => sum + (item.kind === "fraud_proof" ? encodeCanonical(item.proof).length : 0),
      0,
    );
    assert.ok(bytes <= MAX_CATCH_UP_FRAUD_PROOF_BYTES, `${bytes} bytes read back`);
    assert.ok(idsOf(items).includes(receiptId(about(cheatBase, 1).receipt)));
    assert.deepEqual(await filesIn(ledgerDir), idsOf(items).sort());
  }));

Deno.test("a damaged catch-up entry does not stop the validator's start: it is logged and removed, and the sound ones are read back", () =>
  inLedgerDir(async (ledgerDir) => {
    // A conviction the ledger settled (only those are read back at a validator's start).
    const sound = cheatBase;
    const me = Identity.generate();
    const job = textJob(requester, "kept");
    await ledgerHolding(ledgerDir, me, sound, { job, requester, fraud: true });
    await new CatchUp(ledgerDir).add(conviction(sound), until);
    const folder = join(ledgerDir, CATCH_UP_DIR);
    const name = (i: number) => join(folder, `${i.toString(16).padStart(64, "a")}.cbor`);
    const bytes = await Deno.readFile(join(folder, `${receiptId(sound.receipt)}.cbor`));
    await Deno.writeFile(name(1), new Uint8Array([0xff, 0x00, 0x13])); // not CBOR
    await Deno.writeFile(name(2), bytes.subarray(0, bytes.length >> 1)); // cut short
    await Deno.writeFile(name(3), encodeCanonical({ seq: 0, until, item: { kind: "x" } }));
    await Deno.writeFile(name(4), bytes); // a sound conviction under another receipt's name
    const { items, log } = await catchUpAtStart(ledgerDir, me);
    assert.deepEqual(idsOf(items), [receiptId(sound.receipt)]);
    assert.equal(log.filter((line) => line.includes("damaged")).length, 4, log.join("\n"));
    assert.deepEqual(await filesIn(ledgerDir), [receiptId(sound.receipt)]);
  }));

Deno.test("a catch-up folder that cannot be read does not stop the validator's start: logged, and the catch-up starts empty", () =>
  inLedgerDir(async (ledgerDir) => {
    await Deno.mkdir(ledgerDir, { recursive: true });
    await Deno.writeFile(join(ledgerDir, CATCH_UP_DIR), new Uint8Array([1])); // not a folder
    const { items, log } = await catchUpAtStart(ledgerDir, Identity.generate());
    assert.deepEqual(items, []);
    assert.ok(log.some((line) => line.includes("catch-up not read")), log.join("\n"));
  }));

// -------------------------------------------------------------------------------------------------
// What a validator's start reads back from `<ledger>/catch-up/` is what its ledger settled. The
// catch-up writes a conviction's file ahead of its settlement (so a process that dies right after
// the settlement keeps it: `tests/network/catch_up_restart_test.ts`), and a process or
// actor that dies before the ledger settled it leaves a file the ledger never took; a file's window
// is written beside it, unsigned. Before, both were read back as they were: a connecting peer was
// sent a conviction this ledger had not settled (taking one of the 64 places), and one past the
// receipt's window as long as the file said.

const [unsettledCheat, unsettledAccuser, unsettledRequester] = Array.from(
  { length: 3 },
  Identity.generate,
);
const job = textJob(unsettledRequester, "unsettled");
const { receipt } = await proveOn(job, unsettledCheat);
const id = receiptId(receipt);
// Only its receipt and accuser matter here: the ledger is told it was confirmed.
const proof = falseProof(receipt, unsettledAccuser);
const window = DEFAULT_ECONOMICS.challengeWindowMs;

/** A ledger in `ledgerDir` (signed by `me`) with the cheat's receipt; settled as fraud if told. */
const ledgerWith = (ledgerDir: string, me: Identity, fraud: boolean) =>
  ledgerHolding(ledgerDir, me, proof, { job, requester: unsettledRequester, fraud });

/** What a validator (`me`) started on `ledgerDir` at ledger time `t` sends a connecting peer. */
const sentAt = async (ledgerDir: string, me: Identity, t: number): Promise<CatchUpItem[]> =>
  (await catchUpAtStart(ledgerDir, me, t)).items;

const fileOf = (ledgerDir: string) => join(ledgerDir, CATCH_UP_DIR, `${id}.cbor`);

Deno.test("a conviction file for a receipt the ledger did not settle as fraud is not sent to a connecting peer, and is removed", () =>
  inLedgerDir(async (ledgerDir) => {
    const me = Identity.generate();
    await ledgerWith(ledgerDir, me, false);
    // Written ahead of a settlement the process died before.
    await new CatchUp(ledgerDir).add({ kind: "fraud_proof", proof }, START + window);
    const sent = await sentAt(ledgerDir, me, START);
    assert.deepEqual(sent, [], "a peer was sent a conviction this ledger never settled");
    await assert.rejects(Deno.stat(fileOf(ledgerDir)), Deno.errors.NotFound);
  }));

Deno.test("a conviction read back is sent until its receipt's window in the ledger closes, whatever its file says", () =>
  inLedgerDir(async (ledgerDir) => {
    const me = Identity.generate();
    await ledgerWith(ledgerDir, me, true);
    // Its window, as the file holds it, written over (unsigned).
    await new CatchUp(ledgerDir).add({ kind: "fraud_proof", proof }, START + 100 * window);
    const inside = await sentAt(ledgerDir, me, START + window);
    assert.equal(inside.length, 1, "the settled conviction was not read back");
    const past = await sentAt(ledgerDir, me, START + window + 1);
    assert.deepEqual(past, [], "a peer was sent a conviction past its receipt's window");
    await assert.rejects(Deno.stat(fileOf(ledgerDir)), Deno.errors.NotFound);
  }));

// -------------------------------------------------------------------------------------------------
// The catch-up's verdicts (the faults this validator decided, the endings its start applied) are
// kept on disk (`actors/_catch_up.ts`, `<ledger dir>/catch-up-verdicts/`, one file each by verdict
// id) and read back at a process's first start under the same bounds as in memory — only those the
// ledger recorded, inside their receipt's window there; a damaged entry logged and removed, never
// stopping the start. Before, they were kept in memory only, and a ledger that met the validator
// only after its process restarted paid the worker that withheld
// (`tests/network/catch_up_restart_test.ts`).

/** A kept verdict with its evidence. */
type Fault = WithheldFault;

const by = Identity.generate();
/** A fault's verdict by `by` about a fresh receipt of `worker`, with its receipt and a job of `promptBytes`. */
function faultOf(worker: Identity, promptBytes = 16): Promise<Fault> {
  return withheldFault(worker, by, promptBytes, "s59-shape");
}

const verdictIds = (items: CatchUpItem[]) =>
  items.flatMap((item) => item.kind === "verdict" ? [verdictId(item.verdict)] : []);
/** The verdict ids with a file in the catch-up's verdict folder of `ledgerDir`. */
const verdictFilesIn = async (ledgerDir: string) =>
  (await Array.fromAsync(Deno.readDir(join(ledgerDir, CATCH_UP_VERDICTS_DIR))))
    .map((entry) => entry.name.replace(/\.cbor$/, "")).sort();

Deno.test("verdicts are read back from disk with their evidence, oldest first, and dropped past their window", () =>
  inLedgerDir(async (ledgerDir) => {
    const kept = new CatchUp(ledgerDir);
    const [a, b] = [Identity.generate(), Identity.generate()];
    await kept.add(await faultOf(a), until);
    await kept.add(await faultOf(b), START + 1);
    const read = await CatchUp.read(ledgerDir, { now });
    assert.deepEqual(read.current(START), kept.current(START), "the same items, evidence too");
    const later = await CatchUp.read(ledgerDir, { now: () => START + 2 });
    assert.deepEqual(
      verdictIds(later.current(START + 2)),
      verdictIds(kept.current(START)).slice(0, 1),
    );
    assert.deepEqual(await verdictFilesIn(ledgerDir), verdictIds(later.current(START + 2)));
    // Not recorded by the ledger: not read back, its file removed.
    const none = await CatchUp.read(ledgerDir, { now, recorded: () => undefined });
    assert.deepEqual(none.current(START), []);
    assert.deepEqual(await verdictFilesIn(ledgerDir), []);
  }));

Deno.test("bounds hold after reading back verdicts: 64, the worker with the most dropped first, its files removed; evidence past its byte bound dropped from the file too", () =>
  inLedgerDir(async (ledgerDir) => {
    // Two writers on one folder: more verdicts on disk than the bound.
    const [withholder, flooder] = [Identity.generate(), Identity.generate()];
    const first = new CatchUp(ledgerDir);
    const other = await faultOf(withholder);
    await first.add(other, until);
    const second = new CatchUp(ledgerDir);
    for (let i = 0; i < MAX_CATCH_UP_VERDICTS; i++) await second.add(await faultOf(flooder), until);
    assert.equal((await verdictFilesIn(ledgerDir)).length, MAX_CATCH_UP_VERDICTS + 1);
    const read = await CatchUp.read(ledgerDir, { now });
    const ids = verdictIds(read.current(START));
    assert.equal(ids.length, MAX_CATCH_UP_VERDICTS);
    assert.ok(
      ids.includes(verdictId(other.verdict)),
      "the other withholder's fault went",
    );
    assert.deepEqual(await verdictFilesIn(ledgerDir), [...ids].sort());

    // Evidence: past the byte bound the flooder's oldest give theirs up, on disk too.
    const big = new CatchUp(`${ledgerDir}-big`);
    const count = Math.ceil(MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES / MAX_NETWORK_JOB_BYTES) + 2;
    for (let n = 0; n < count; n++) {
      await big.add(await faultOf(flooder, MAX_NETWORK_JOB_BYTES - 1024), until);
    }
    const carried = (items: CatchUpItem[]) =>
      items.map((item) => item.kind === "verdict" && item.evidence !== undefined);
    const inMemory = carried(big.current(START));
    assert.ok(inMemory.includes(false) && inMemory.includes(true));
    const back = await CatchUp.read(`${ledgerDir}-big`, { now });
    assert.deepEqual(carried(back.current(START)), inMemory);
    let bytes = 0;
    for (const name of await verdictFilesIn(`${ledgerDir}-big`)) {
      bytes += (await Deno.stat(join(`${ledgerDir}-big`, CATCH_UP_VERDICTS_DIR, `${name}.cbor`)))
        .size;
    }
    assert.ok(bytes <= MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES + 64 * 2048, `${bytes} bytes on disk`);
    await Deno.remove(`${ledgerDir}-big`, { recursive: true });
  }));

Deno.test("at a validator's start, a fault it decided is read back from disk (a new process), and damaged or unrecorded verdict entries are removed, the damaged ones logged, the start going on", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const me = Identity.generate();
    // A fault the first start applies (kept before a stop): its verdict kept for the catch-up.
    const work = await keptFault(join(dir, "a"), me, { t: START });
    const firstLife = await catchUpAtStart(join(dir, "a"), me);
    assert.equal(firstLife.items.length, 1);
    const [sound] = await verdictFilesIn(join(dir, "a"));
    // A new process on the same ledger (its catch-up read from disk), with damaged entries.
    const ledgerDir = join(dir, "b");
    await copyDir(join(dir, "a"), ledgerDir);
    const folder = join(ledgerDir, CATCH_UP_VERDICTS_DIR);
    const name = (i: number) => join(folder, `${i.toString(16).padStart(64, "a")}.cbor`);
    const bytes = await Deno.readFile(join(folder, `${sound}.cbor`));
    await Deno.writeFile(name(1), new Uint8Array([0xff, 0x00, 0x13])); // not CBOR
    await Deno.writeFile(name(2), bytes.subarray(0, bytes.length >> 1)); // cut short
    await Deno.writeFile(name(3), encodeCanonical({ seq: 0, until, item: { kind: "x" } }));
    await Deno.writeFile(name(4), bytes); // a sound verdict under another verdict's name
    // Evidence not bound to the verdict's receipt.
    const file = decodeCbor(bytes) as { seq: number; until: number; item: CatchUpItem };
    const stray = await faultOf(work.worker);
    const mismatched = {
      ...file,
      item: { ...file.item, evidence: stray.evidence },
    };
    await Deno.writeFile(name(5), encodeCanonical(mismatched));
    // Sound, but a verdict this ledger never recorded.
    const unrecorded = await faultOf(work.worker);
    const unrecordedId = verdictId(unrecorded.verdict);
    await Deno.writeFile(
      join(folder, `${unrecordedId}.cbor`),
      encodeCanonical({ seq: 1, until, item: unrecorded }),
    );
    const { items, log } = await catchUpAtStart(ledgerDir, me);
    assert.deepEqual(verdictIds(items), [sound], "the fault decided before the restart");
    assert.equal(log.filter((line) => line.includes("damaged")).length, 5, log.join("\n"));
    assert.deepEqual(await verdictFilesIn(ledgerDir), [sound]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a catch-up verdict folder that cannot be read does not stop the validator's start: logged, and no verdict read back", () =>
  inLedgerDir(async (ledgerDir) => {
    await Deno.mkdir(ledgerDir, { recursive: true });
    await Deno.writeFile(join(ledgerDir, CATCH_UP_VERDICTS_DIR), new Uint8Array([1])); // a file
    const { items, log } = await catchUpAtStart(ledgerDir, Identity.generate());
    assert.deepEqual(items, []);
    assert.ok(log.some((line) => line.includes("catch-up verdicts not read")), log.join("\n"));
  }));

// -------------------------------------------------------------------------------------------------
// A conviction about a variant of a worker's receipt, across a restart. A confirmed fraud proof
// about variant B of a receipt settles, on a ledger that recorded the worker's variant A for the
// job, against A (`Ledger.fraudSubject`). The catch-up writes the conviction ahead of its
// settlement and, at a start, keeps only what the ledger settled as fraud on that accuser's proof;
// that look-up was keyed on the proof's own receipt id, B's, which this ledger never records. So
// the conviction was dropped from the catch-up at the restart: a ledger that recorded A too and
// connected later was never sent it, and paid the cheat this ledger slashed.

const STAKE = 100_000;
const { defaultTokenPrice: PRICE, slashMultiplier: M } = DEFAULT_ECONOMICS;

/** A cheat's variants A and B of one job's receipt, and a peer's confirmed proof against B. */
async function variants(worker: Identity, requester: Identity, accuser: Identity) {
  const job = textJob(requester, `job-${crypto.randomUUID()}`);
  const proved = await proveOn(job, worker, f.otherSeed);
  const a = proved.receipt;
  const b = resigned(a, { outputHash: "ee".repeat(32) }, worker);
  const served = signServedProof(receiptId(b), proved.proof, worker);
  const { fraudProof } = await validateReceipt(
    { job, receipt: b, proof: served.proof },
    f.honest,
    accuser,
    { now: () => START },
  );
  assert.ok(fraudProof, "the variant is caught where it was sent");
  const { fraudProof: proofA } = await validateReceipt(
    { job, receipt: a, proof: signServedProof(receiptId(a), proved.proof, worker).proof },
    f.honest,
    accuser,
    { now: () => START },
  );
  assert.ok(proofA, "the recorded variant is caught too");
  return { job, a, b, proof: fraudProof, proofA };
}

/** The receipt ids of the convictions among `items`. */
const convictions = (items: CatchUpItem[]) =>
  items.flatMap((i) => i.kind === "fraud_proof" ? [receiptId(i.proof.receipt)] : []);

Deno.test("a validator stopped after the ledger settled a variant's conviction, before the rest ran, still sends it by catch-up after the restart, and in a new process", async () => {
  const dir = await Deno.makeTempDir();
  const [me, worker, requester, accuser] = Array.from({ length: 4 }, Identity.generate);
  const ledgerDir = `${dir}/ledger`;
  const clock = { t: START };
  const system = new ActorSystem({ name: "review-s46-variant-restart" });
  let restarts = 0;
  system.events.subscribe((event) => {
    if (event.name === "node/validator" && event.type === "restarted") restarts++;
  });
  const apply = LedgerIndex.prototype.apply;
  const settle = Ledger.prototype.settleFraud;
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
    });
    for (const key of [worker, accuser]) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
    }
    const { job, a, b, proof } = await variants(worker, requester, accuser);
    assert.ok((await announceAssigned(validator, a, job, requester)).recorded);
    // The conviction's settlement is durable in the ledger's log; the process stops right
    // after it (the index's write fails): nothing after the settlement runs in this life.
    Ledger.prototype.settleFraud = function (this: Ledger, settlement) {
      Ledger.prototype.settleFraud = settle;
      LedgerIndex.prototype.apply = function () {
        LedgerIndex.prototype.apply = apply;
        throw new Error("Input/output error (os error 5) (simulated)");
      };
      return settle.call(this, settlement);
    };
    const handled = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof,
      origin: "cd".repeat(32),
    });
    handled.result?.catch(() => {});
    assert.equal(handled.queued, true);
    await eventually(() => restarts > 0, "the validator to crash and be restarted");
    const ledger = ledgerReads(() => validator, clock);
    assert.equal((await ledger.record(receiptId(a)))?.status, "fraud");
    // A ledger that recorded A too, connecting now, is sent the conviction.
    const sent = await validator.ask<CatchUpItem[]>({ type: "catch_up" });
    assert.deepEqual(
      convictions(sent),
      [receiptId(b)],
      "the restarted validator's catch-up lost the variant's conviction its ledger settled",
    );
    // The same ledger directory read by a new process (another path: its catch-up is read
    // from disk, not shared with this process's).
    await system.shutdown();
    const copy = `${dir}/copy`;
    await cp(ledgerDir, copy, { recursive: true });
    const { items } = await catchUpAtStart(copy, me, START);
    assert.deepEqual(
      convictions(items),
      [receiptId(b)],
      "a new process's catch-up lost the variant's conviction its ledger settled",
    );
    // The ledger's outcome: A slashed (not paid) once the window closes.
    const reopened = await Ledger.open(copy, me, {
      now: () => START + DEFAULT_ECONOMICS.challengeWindowMs + 1,
    });
    await reopened.finalizeDue();
    assert.equal(reopened.receipt(receiptId(a))?.status, "fraud");
    assert.deepEqual(reopened.account(worker.publicKey), {
      balance: 0,
      stake: STAKE - a.tokenCount * PRICE * M,
      locked: 0,
    });
    await reopened.close();
  } finally {
    LedgerIndex.prototype.apply = apply;
    Ledger.prototype.settleFraud = settle;
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("one accuser's proof about variant B, while its proof about the recorded variant A is being checked, is the same accusation: not checked beside it, only after it settled", async () => {
  const dir = await Deno.makeTempDir();
  const [me, worker, requester, accuser] = Array.from({ length: 4 }, Identity.generate);
  const clock = { t: START };
  const system = new ActorSystem({ name: "review-s46-variant-repeat" });
  // Once armed, the model loads only once the test lets it: A's check stays in flight meanwhile.
  const gate = Promise.withResolvers<void>();
  let armed = false;
  let loads = 0;
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 0,
      models: {
        get: async (cid) => {
          if (armed) {
            loads++;
            await gate.promise;
          }
          return await HONEST_MODELS.get(cid);
        },
      },
    });
    for (const key of [worker, accuser]) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
    }
    const { job, a, proof, proofA } = await variants(worker, requester, accuser);
    assert.ok((await announceAssigned(validator, a, job, requester)).recorded);
    armed = true;
    const gossip = (p: unknown) =>
      validator.ask<FraudProofHandled>({ type: "fraud_proof", proof: p, origin: "cd".repeat(32) });
    const first = await gossip(proofA);
    first.result?.catch(() => {});
    assert.equal(first.queued, true);
    const second = await gossip(proof);
    second.result?.catch(() => {});
    // Queued behind A's since stop 77 (`queued_accusation_test.ts`), as if it came after it.
    assert.equal(second.awaitingAccusation, true, "the same claim about B was checked too");
    assert.equal(loads, 1, "the model was run for the same accusation twice at once");
    gate.resolve();
    await first.result;
    await second.result?.catch(() => {});
    await eventually(
      async () => (await ledgerReads(() => validator, clock).stats()).fraudProofsChecking === 0,
      "the checks to end",
    );
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// -------------------------------------------------------------------------------------------------
// A validator's "proof withheld" fault is written to its catch-up's folder (`<ledger
// dir>/catch-up-verdicts/`, `actors/_catch_up.ts`) ahead of its settlement, as a conviction is, not
// after it. Validator V decides that worker W withheld its proof data, alone (its gossip reaches
// nobody), and its ledger settles the fault (W slashed there); its process ends before the catch-up
// keeps the verdict (stood in for by the catch-up's `add` of a verdict doing nothing in V's first
// life: killed, or a catch-up write that failed). Before, the verdict's file was written by that
// `add`, after the settlement, so nothing of it was on disk: V's next process found the receipt
// settled and nothing to send, and ledger L, away meanwhile, that connected to it later never heard
// the claim and paid W — slashed in V's ledger. Who pays now: W, slashed in L as in V.
//
// The same for a fault a start applied from its kept ending (the ending is removed once applied,
// so the next start had nothing to send either), and for a fault whose settlement reached the log
// and whose history-index write failed: the actor crashed before the catch-up kept the verdict,
// and its restart found the receipt settled. Read back only where the ledger settled it: a fault
// recorded whose settlement a stop cut off (its ending lost too, so the start leaves the receipt
// unpaid, nobody slashed) is not sent — peers are never claimed at for a fault that moved nothing
// here.
//
// A new process is stood in for by V's ledger directory copied under another name while V is
// down (the catch-up is one per ledger directory in a process, `CatchUp.of`). Every ledger runs
// on the test's clock; asserted on L's ledger after the window.

const AHEAD_STAKE = 1_000_000;

/**
 * Run `life` with the catch-up's `add` of a verdict doing nothing (what a process killed right
 * after the fault's settlement leaves on disk); restored after it.
 */
async function withVerdictsNotAdded(life: () => Promise<void>): Promise<number> {
  const add = CatchUp.prototype.add;
  let skipped = 0;
  CatchUp.prototype.add = function (this: CatchUp, ...args: Parameters<CatchUp["add"]>) {
    if (args[0].kind !== "verdict") return add.apply(this, args);
    skipped++;
    return Promise.resolve();
  };
  try {
    await life();
  } finally {
    CatchUp.prototype.add = add;
  }
  return skipped;
}

Deno.test("a withheld fault whose process ended between its settlement and the catch-up's keeping it still reaches, after the restart, a ledger that was away: the worker is slashed there, not paid", () =>
  inLedgerSetting("s59-verdict-ahead", async (setting: LedgerSetting) => {
    const { dir, clock, system } = setting;
    const v = Identity.generate();
    const [worker, requester] = [Identity.generate(), Identity.generate()];
    const job = textJob(requester, crypto.randomUUID());
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    // L: away while V decides; it has the receipt through its requester.
    const nodeL = await spawnLedgerNode(system, dir, "l", {
      identity: Identity.generate(),
      models: HONEST_MODELS,
      clock,
      validator: { challengeProbability: 0, source: withholds },
    });
    for (const key of [worker, v]) {
      await nodeL.validator.ask({ type: "deposit", key: key.publicKey, amount: AHEAD_STAKE });
    }
    assert.equal((await announceAssigned(nodeL.validator, receipt, job, requester)).recorded, true);

    const spawnV = (on: ActorSystem, name: string) =>
      spawnLedgerNode(on, dir, name, {
        identity: v,
        models: HONEST_MODELS,
        clock,
        validator: { challengeProbability: 1, source: withholds },
      });
    // V's first life: it decides alone, its ledger settles the fault, and the process ends
    // before the catch-up keeps the verdict.
    const skipped = await withVerdictsNotAdded(async () => {
      const first = new ActorSystem({ name: "s59-verdict-ahead-first-life" });
      try {
        const nodeV = await spawnV(first, "v");
        await nodeV.validator.ask({ type: "deposit", key: worker.publicKey, amount: AHEAD_STAKE });
        const handled = await announceAssigned(nodeV.validator, receipt, job, requester);
        assert.equal(handled.challenged, true);
        await handled.result;
        const readsV = ledgerReads(() => nodeV.validator, clock);
        assert.equal((await readsV.record(id))?.status, "fraud", "V slashed the worker");
      } finally {
        await first.shutdown();
      }
    });
    assert.equal(skipped, 1, "the fault's verdict was the one not added");
    await copyDir(`${dir}/v`, `${dir}/v2`);
    const nodeV2 = await spawnV(system, "v2");

    const { readsL, record, before } = await latePeerCatchesUp(nodeL, nodeV2, clock, id, worker);
    assert.ok(record !== undefined && record.credit > 0, "L would pay the work");
    assert.equal(
      (await readsL.record(id))?.status,
      "fraud",
      `L paid the worker that withheld (its stake there: ${before.stake} of ${AHEAD_STAKE})`,
    );
    assert.deepEqual(
      await readsL.account(worker.publicKey),
      { balance: 0, stake: AHEAD_STAKE - record.locked, locked: 0 },
      "slashed in L as in V, not paid",
    );
    const files = await Array.fromAsync(Deno.readDir(`${dir}/v2/${CATCH_UP_VERDICTS_DIR}`));
    assert.equal(files.length, 1, "V's fault on disk, one file");
  }));

Deno.test("a fault a start applied from its kept ending, whose process ended before the catch-up kept its verdict, is in the catch-up of the next process", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const me = Identity.generate();
    const work = await keptFault(join(dir, "a"), me, { t: START });
    // The first start applies the ending (the worker slashed) and removes it; its process ends
    // before the catch-up keeps the verdict.
    const skipped = await withVerdictsNotAdded(async () => {
      await catchUpAtStart(join(dir, "a"), me);
    });
    assert.equal(skipped, 1);
    await copyDir(join(dir, "a"), join(dir, "b"));
    const { items } = await catchUpAtStart(join(dir, "b"), me);
    assert.deepEqual(
      items.map((item) => item.kind === "verdict" && item.verdict.subjectId),
      [work.id],
      "the fault lost between its settlement and the catch-up: a late ledger pays the worker",
    );
    const ledger = await Ledger.open(join(dir, "b"), me, { now: () => START });
    try {
      assert.equal(ledger.receipt(work.id)?.status, "fraud", "slashed here");
    } finally {
      await ledger.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a fault's verdict the ledger recorded but whose settlement a stop cut off (its ending lost) is not sent from the catch-up: the receipt is left unpaid here, nobody slashed, and its file removed", () =>
  inLedgerDir(async (ledgerDir) => {
    const me = Identity.generate();
    const work = await keptFault(ledgerDir, me, { t: START });
    // The ending's keep failed; the verdict was recorded, its file written ahead; the stop came
    // before the settlement.
    await ChallengeEndings.in(ledgerDir).remove(work.id);
    const verdict = withheldVerdict(work.id, work.worker.publicKey, START, me);
    const ledger = await Ledger.open(ledgerDir, me, { now: () => START });
    await ledger.recordVerdict(verdict);
    await ledger.close();
    const until = START + DEFAULT_ECONOMICS.challengeWindowMs;
    const item = {
      kind: "verdict" as const,
      verdict,
      evidence: { receipt: work.receipt, job: work.job },
    };
    await new CatchUp(ledgerDir).add(item, until); // a verdict's file, as written ahead
    assert.deepEqual(await verdictFilesIn(ledgerDir), [verdictId(verdict)]);

    const { items } = await catchUpAtStart(ledgerDir, me);
    assert.deepEqual(verdictIds(items), [], "a fault this ledger never settled was sent");
    assert.deepEqual(await verdictFilesIn(ledgerDir), []);
    const after = await Ledger.open(ledgerDir, me, { now: () => START });
    try {
      assert.equal(after.receipt(work.id)?.status, "unpaid", "left undecided at the start");
      assert.equal(after.account(work.worker.publicKey).stake, KEPT_STAKE, "nobody slashed");
    } finally {
      await after.close();
    }
  }));

Deno.test("a verdict written ahead of its settlement is not sent before it: kept by add, its file removed by discard, read back by a new process only if the ledger recorded it", () =>
  inLedgerDir(async (ledgerDir) => {
    const by = Identity.generate();
    const until = START + DEFAULT_ECONOMICS.challengeWindowMs;
    const faultOn = async (worker: Identity) => {
      const { receipt } = await proveOn(textJob(Identity.generate(), crypto.randomUUID()), worker);
      const verdict = withheldVerdict(receiptId(receipt), worker.publicKey, START, by);
      return { kind: "verdict" as const, verdict };
    };
    const [a, b, c] = [
      await faultOn(Identity.generate()),
      await faultOn(Identity.generate()),
      await faultOn(Identity.generate()),
    ];
    const catchUp = new CatchUp(ledgerDir);
    await catchUp.write(a, until);
    assert.deepEqual(catchUp.current(START), [], "not sent before its settlement");
    assert.deepEqual(await verdictFilesIn(ledgerDir), [verdictId(a.verdict)], "on disk before it");
    await catchUp.add(a, until);
    assert.deepEqual(verdictIds(catchUp.current(START)), [verdictId(a.verdict)]);
    // Refused by the ledger (settled otherwise): its file removed, never sent.
    await catchUp.write(b, until);
    catchUp.discard(verdictId(b.verdict));
    // Written ahead, and the process ended before its settlement or its add.
    await catchUp.write(c, until);
    assert.deepEqual(verdictIds(catchUp.current(START)), [verdictId(a.verdict)]);
    assert.deepEqual(
      await verdictFilesIn(ledgerDir),
      [verdictId(a.verdict), verdictId(c.verdict)].sort(),
    );
    const recordedC = await CatchUp.read(ledgerDir, {
      now: () => START,
      recorded: (verdict) => verdictId(verdict) === verdictId(c.verdict) ? until : undefined,
    });
    assert.deepEqual(verdictIds(recordedC.current(START)), [verdictId(c.verdict)]);
    assert.deepEqual(await verdictFilesIn(ledgerDir), [verdictId(c.verdict)]);
  }));

for (const fault of ["append", "index"] as const) {
  Deno.test(`a fault whose settlement write fails with a disk error (${fault}) is in the catch-up once the restart has it settled, once`, async () => {
    let items: CatchUpItem[] = [];
    const out = await endingWriteFails("withheld", "settleFault", fault, {
      beforeClose: async (validator) => {
        items = await validator.ask<CatchUpItem[]>({ type: "catch_up" });
      },
    });
    assert.equal(out.crashes, 1);
    assert.equal(out.status, "fraud");
    assert.equal(out.worker.stake, WRITE_FAULT_STAKE - out.slash, "slashed other than once");
    assert.equal(
      items.filter((item) => item.kind === "verdict").length,
      1,
      "the fault settled here is not in the catch-up: a ledger that connects later pays the worker",
    );
  });
}
