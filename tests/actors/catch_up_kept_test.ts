/**
 * The catch-up's convictions are kept on disk (`actors/_catch_up.ts`, `<ledger dir>/catch-up/`)
 * and read back under the same bounds: 64 proofs, 8 MiB, one per receipt, the worker holding the
 * most giving room back first; what is past its window is not read back; a damaged entry or an
 * unreadable folder does not stop the validator's start. (That a restarted node sends what it
 * read back: `tests/network/catch_up_restart_test.ts`.)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CATCH_UP_DIR,
  CatchUp,
  MAX_CATCH_UP_FRAUD_PROOF_BYTES,
  MAX_CATCH_UP_FRAUD_PROOFS,
} from "../../actors/_catch_up.ts";
import type { CatchUpItem } from "../../actors/validator_messages.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  catchUpAtStart,
  falseProof,
  inLedgerDir,
  ledgerHolding,
  proveOn,
  START,
  textJob,
  withheldVerdict,
} from "./_validator_fixture.ts";
import { TEST_ARCH } from "../training/_fixtures.ts";
import { lossFraud } from "../training/_loss_fraud.ts";

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
    // Verdicts are kept on disk too, in a folder of their own (review s59:
    // `review_s59_catch_up_verdicts_test.ts`).
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
