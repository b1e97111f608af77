/**
 * Review s46: fraud proofs against receipts a cheater shaped on purpose. Every field value the
 * receipt schema admits must end in a judgement: a receipt no proof could ever convict is
 * refused when recorded (so never paid), and a validly signed proof never makes the checker
 * throw (a throw settles nothing: the accused keeps its pay and the accuser its stake).
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { sha256, toHex } from "../../protocols/hash.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { inputHashOf, type Receipt, signReceipt } from "../../protocols/receipt.ts";
import { type FraudKind, signFraudProof } from "../../protocols/fraud_proof.ts";
import { checkFraudProof } from "../../proof/fraud_check.ts";
import { chunkLeaf, type ChunkOpening, commitmentRootFrom } from "../../proof/commitment.ts";
import { FINGERPRINT_BYTES, FINGERPRINT_SCHEME } from "../../proof/fingerprint.ts";
import { MerkleTree } from "../../proof/merkle.ts";
import { Ledger, LedgerRejectedError } from "../../proof/ledger.ts";
import { assigned, job as fixtureJob, withLedgerDir } from "./_ledger_fixtures.ts";
import { scriptedModel } from "./_scripted_model.ts";

const owner = Identity.generate();
const worker = Identity.generate();
const accuser = Identity.generate();

const MODEL = "bafkreimodel"; // the fixture jobs' model
const TOKENS = 4; // one chunk of the fewest positions a ledger records

/**
 * A worker's receipt for `job` whose commitment packs its tokens `tokenBytes` wide, with the
 * one opening of its one chunk (genuine: its path leads to the signed root). The output hash is
 * one no tokens decode to: an `output` fraud on its face.
 */
function shapedReceipt(
  job: TextJob,
  tokenBytes: number,
): { receipt: Receipt; opening: ChunkOpening } {
  const tokens = new Uint8Array(TOKENS * tokenBytes).fill(0x41);
  const fingerprints = new Uint8Array(TOKENS * FINGERPRINT_BYTES);
  const leaf = chunkLeaf(0, sha256(tokens), sha256(fingerprints));
  const tree = new MerkleTree([leaf]);
  const root = toHex(commitmentRootFrom(TOKENS, TOKENS, tokenBytes, tree.root()));
  const receipt = signReceipt({
    v: 1,
    kind: "text",
    jobId: jobId(job),
    model: MODEL,
    inputHash: inputHashOf(job),
    params: job.params,
    outputHash: "ab".repeat(32),
    commitment: { scheme: FINGERPRINT_SCHEME, root, chunkSize: TOKENS, tokenBytes },
    tokenCount: TOKENS,
    timings: { startedAt: 0, firstTokenMs: 1, totalMs: 2 },
  }, worker);
  return {
    receipt,
    opening: { index: 0, tokens, fingerprintsHash: sha256(fingerprints), path: tree.path(0) },
  };
}

function proofAgainst(
  job: TextJob,
  receipt: Receipt,
  opening: ChunkOpening,
  kind: FraudKind,
) {
  return signFraudProof({
    v: 1,
    kind,
    job,
    receipt,
    chunks: [opening],
    cited: [{ position: kind === "termination" ? TOKENS : 0 }],
    issuedAt: 1,
  }, accuser);
}

Deno.test("review s46: a text receipt signing a token width no proof data has (0, 1, 3) is refused when recorded, or its fraud proof convicts", async () => {
  for (const tokenBytes of [0, 1, 3]) {
    await withLedgerDir(async (dir, clock) => {
      const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
      await ledger.deposit(worker.publicKey, 1_000_000);
      await ledger.deposit(accuser.publicKey, 1_000_000);
      const job = fixtureJob(9_000 + tokenBytes);
      const { receipt, opening } = shapedReceipt(job, tokenBytes);
      const recorded = await ledger.recordReceipt(receipt, assigned(receipt)).then(
        (rec) => rec,
        (error) => {
          assert.ok(error instanceof LedgerRejectedError, String(error));
          assert.equal(error.code, "receipt_rejected");
          return undefined;
        },
      );
      if (recorded !== undefined) {
        // Recorded, so payable: the proof of the worker's own lie must settle it.
        const model = scriptedModel(MODEL);
        const proof = proofAgainst(job, receipt, opening, "output");
        const check = await checkFraudProof(proof, model);
        assert.equal(check.confirmed, true, `tokenBytes ${tokenBytes}: ${check.reason}`);
        await ledger.settleFraud({
          receiptId: recorded.receiptId,
          fraudProofHash: check.proofHash,
          validator: accuser.publicKey,
          confirmed: true,
          reason: check.reason,
        });
      }
      clock.t += ledger.economics.challengeWindowMs + 1;
      await ledger.finalizeDue();
      // Not paid either way: refused (no record), or slashed by the proof.
      assert.ok(ledger.account(worker.publicKey).balance <= 0, `tokenBytes ${tokenBytes}: paid`);
      assert.ok(ledger.account(worker.publicKey).stake <= 1_000_000);
      await ledger.close();
    });
  }
});

Deno.test("review s46: a signed proof against a receipt of an odd token width is judged, never thrown on", async () => {
  const model = scriptedModel(MODEL);
  for (const tokenBytes of [0, 1, 3]) {
    const job = fixtureJob(9_100 + tokenBytes);
    const { receipt, opening } = shapedReceipt(job, tokenBytes);
    for (const kind of ["output", "termination", "sampling", "fingerprint"] as const) {
      // Without the model too: the checker must answer, not throw.
      for (const m of [model, undefined]) {
        const check = await checkFraudProof(proofAgainst(job, receipt, opening, kind), m);
        assert.equal(typeof check.reason, "string", `${kind} / ${tokenBytes}`);
      }
    }
  }
});
