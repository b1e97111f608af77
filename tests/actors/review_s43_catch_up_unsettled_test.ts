/**
 * Review s43: what a validator's start reads back from `<ledger>/catch-up/` is what its ledger
 * settled. The catch-up writes a conviction's file ahead of its settlement (so a process that
 * dies right after the settlement keeps it: `tests/network/review_s43_catch_up_died_test.ts`),
 * and a process or actor that dies before the ledger settled it leaves a file the ledger never
 * took; a file's window is written beside it, unsigned. Before, both were read back as they
 * were: a connecting peer was sent a conviction this ledger had not settled (taking one of the
 * 64 places), and one past the receipt's window as long as the file said.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CATCH_UP_DIR, CatchUp } from "../../actors/_catch_up.ts";
import type { CatchUpItem } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  catchUpAtStart,
  falseProof,
  inLedgerDir,
  ledgerHolding,
  proveOn,
  START,
  textJob,
} from "./_validator_fixture.ts";

const [cheat, accuser, requester] = Array.from({ length: 3 }, Identity.generate);
const job = textJob(requester, "unsettled");
const { receipt } = await proveOn(job, cheat);
const id = receiptId(receipt);
// Only its receipt and accuser matter here: the ledger is told it was confirmed.
const proof = falseProof(receipt, accuser);
const window = DEFAULT_ECONOMICS.challengeWindowMs;

/** A ledger in `ledgerDir` (signed by `me`) with the cheat's receipt; settled as fraud if told. */
const ledgerWith = (ledgerDir: string, me: Identity, fraud: boolean) =>
  ledgerHolding(ledgerDir, me, proof, { job, requester, fraud });

/** What a validator (`me`) started on `ledgerDir` at ledger time `t` sends a connecting peer. */
const sentAt = async (ledgerDir: string, me: Identity, t: number): Promise<CatchUpItem[]> =>
  (await catchUpAtStart(ledgerDir, me, t)).items;

const fileOf = (ledgerDir: string) => join(ledgerDir, CATCH_UP_DIR, `${id}.cbor`);

Deno.test("review s43: a conviction file for a receipt the ledger did not settle as fraud is not sent to a connecting peer, and is removed", () =>
  inLedgerDir(async (ledgerDir) => {
    const me = Identity.generate();
    await ledgerWith(ledgerDir, me, false);
    // Written ahead of a settlement the process died before.
    await new CatchUp(ledgerDir).add({ kind: "fraud_proof", proof }, START + window);
    const sent = await sentAt(ledgerDir, me, START);
    assert.deepEqual(sent, [], "a peer was sent a conviction this ledger never settled");
    await assert.rejects(Deno.stat(fileOf(ledgerDir)), Deno.errors.NotFound);
  }));

Deno.test("review s43: a conviction read back is sent until its receipt's window in the ledger closes, whatever its file says", () =>
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
