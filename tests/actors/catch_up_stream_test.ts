/**
 * Stream convictions in the catch-up kept on disk (`actors/_catch_up.ts`): a confirmed stream
 * proof is kept for the peers that connect later, read back at a start only if the ledger
 * convicted the stream (`streamSettled`), until the end its file holds; one written ahead of a
 * settlement that never came is removed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { CatchUp } from "../../actors/_catch_up.ts";
import { idOf } from "../../actors/_catch_up_items.ts";
import type { CatchUpItem } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStreamProof } from "../../protocols/stream_proof.ts";
import { claimOf, honestIds, job } from "./_stream_claim_fixture.ts";
import { inLedgerDir, START } from "./_validator_fixture.ts";

const accuser = Identity.generate();
const UNTIL = START + 600_000;

/** A stream proof of `worker`'s stream of job `nonce`, as kept. */
async function streamConviction(nonce: string, worker: Identity) {
  const j = job(nonce);
  const proof = signStreamProof(claimOf(j, worker, await honestIds(j), 2), accuser, START);
  return { kind: "stream_proof" as const, proof };
}

const proofsOf = (items: CatchUpItem[]) =>
  items.flatMap((item) => item.kind === "stream_proof" ? [idOf(item)] : []);

Deno.test("stream convictions are read back from disk while the ledger holds them settled, until the end their file holds, and their accuser's pledge goes first", () =>
  inLedgerDir(async (ledgerDir) => {
    const [liar, other] = [Identity.generate(), Identity.generate()];
    const kept = new CatchUp(ledgerDir);
    const settled = await streamConviction("kept", liar);
    const unsettled = await streamConviction("unsettled", other);
    await kept.add(settled, UNTIL);
    // Written ahead of a settlement a crash cut off: the ledger never convicted that stream.
    await kept.write(unsettled, UNTIL);
    const streamSettled = (proof: typeof settled.proof) =>
      idOf({ kind: "stream_proof", proof }) === idOf(settled);
    const read = await CatchUp.read(ledgerDir, { now: () => START, streamSettled });
    assert.deepEqual(proofsOf(read.current(START)), [idOf(settled)]);
    assert.deepEqual(read.accusers(START), [accuser.publicKey]);
    // The unsettled one's file is gone: a later read without the ledger's word finds one.
    const again = await CatchUp.read(ledgerDir, { now: () => START });
    assert.deepEqual(proofsOf(again.current(START)), [idOf(settled)]);
    // Past its end: not read back.
    const later = await CatchUp.read(ledgerDir, { now: () => UNTIL + 1, streamSettled });
    assert.deepEqual(proofsOf(later.current(UNTIL + 1)), []);
  }));

Deno.test("one stream conviction is kept per job and worker: another accuser's proof of the same stream is not kept again", () =>
  inLedgerDir(async (ledgerDir) => {
    const liar = Identity.generate();
    const kept = new CatchUp(ledgerDir);
    const first = await streamConviction("once", liar);
    const second = {
      kind: "stream_proof" as const,
      proof: signStreamProof(first.proof.claim, Identity.generate(), START + 1),
    };
    assert.equal(idOf(first), idOf(second));
    await kept.add(first, UNTIL);
    await kept.add(second, UNTIL);
    const items = kept.current(START).filter((item) => item.kind === "stream_proof");
    assert.deepEqual(items, [first]);
  }));
