/**
 * What a program is told when a receipt, verdict or fraud proof is refused: one line naming the
 * field at fault (`commitment.root: …`), as `parseNodeConfig` names a configuration key, not zod's
 * multi-line list of issues; and a receipt signed by another worker than the one expected is
 * `wrong_worker`, kept apart from a signature that does not verify (`bad_signature`).
 */
import { SAMPLE_JOB, SAMPLE_OUTPUT, sampleReceipt } from "./_sample_receipt.ts";
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import {
  MalformedReceiptError,
  parseReceipt,
  type Receipt,
  verifyReceipt,
} from "../../protocols/receipt.ts";
import { MalformedVerdictError, parseVerdict, signVerdict } from "../../protocols/verdict.ts";
import {
  FRAUD_PROOF_VERSION,
  MalformedFraudProofError,
  parseFraudProof,
  signFraudProof,
} from "../../protocols/fraud_proof.ts";
import { toHex } from "../../protocols/hash.ts";

const worker = Identity.generate();
const job = SAMPLE_JOB;
const output = SAMPLE_OUTPUT;
const receipt: Receipt = sampleReceipt(worker);

/** `verifyReceipt`'s reason and message for `value` (which must fail). */
function refusal(value: unknown, options = {}): { reason: string; message: string } {
  const check = verifyReceipt(value, { job, output, ...options });
  assert.ok(!check.ok, "refused");
  return { reason: check.reason, message: check.message };
}

/** The message `parse` throws `type` with for `value`. */
function thrown(
  parse: (value: unknown) => unknown,
  value: unknown,
  type: new (message: string) => Error,
): string {
  try {
    parse(value);
  } catch (error) {
    assert.ok(error instanceof type, String(error));
    return error.message;
  }
  assert.fail("accepted");
}

Deno.test("a malformed receipt is refused in one line naming the field", () => {
  const cases: [unknown, RegExp][] = [
    [{ ...receipt, worker: "zz" }, /^worker: /],
    [{ ...receipt, commitment: { ...receipt.commitment, root: "x" } }, /^commitment\.root: /],
    [{ ...receipt, worker: toHex(receipt.worker).slice(2) }, /^worker: expected 32 bytes$/],
    [undefined, /^\(root\): .*expected object/],
    ["x", /^\(root\): /],
  ];
  for (const [value, expected] of cases) {
    const { reason, message } = refusal(value);
    assert.equal(reason, "malformed");
    assert.doesNotMatch(message, /\n/);
    assert.match(message, expected);
    const parsed = thrown(parseReceipt, value, MalformedReceiptError);
    assert.equal(parsed, message);
  }
  // Every field at fault is named, still on one line.
  const { message } = refusal({ ...receipt, v: 2, tokenCount: -1 });
  assert.doesNotMatch(message, /\n/);
  assert.match(message, /^v: .*; tokenCount: /);
});

Deno.test("a receipt from another worker than the expected one is wrong_worker; a bad signature stays bad_signature", () => {
  const other = Identity.generate().publicKey;
  assert.deepEqual(refusal(receipt, { worker: other }), {
    reason: "wrong_worker",
    message: `receipt is signed by worker ${toHex(worker.publicKey)}, not the expected ${
      toHex(other)
    }`,
  });
  assert.equal(refusal({ ...receipt, tokenCount: 6 }).reason, "bad_signature");
  assert.equal(
    refusal({ ...receipt, tokenCount: 6 }, { worker: worker.publicKey }).reason,
    "bad_signature",
  );
  assert.ok(verifyReceipt(receipt, { job, output, worker: worker.publicKey }).ok);
});

Deno.test("a malformed verdict or fraud proof is refused in one line naming the field", () => {
  const verdict = signVerdict({
    v: 1,
    subject: "inference",
    subjectId: "ab".repeat(32),
    target: new Uint8Array(32),
    outcome: "valid",
    reason: "ok",
    details: {},
    issuedAt: 10,
  }, Identity.generate());
  const verdictMessage = thrown(
    parseVerdict,
    { ...verdict, outcome: "maybe" },
    MalformedVerdictError,
  );
  assert.doesNotMatch(verdictMessage, /\n/);
  assert.match(verdictMessage, /^outcome: /);

  const proof = signFraudProof({
    v: FRAUD_PROOF_VERSION,
    kind: "output",
    job,
    receipt,
    chunks: [],
    cited: [],
    issuedAt: 10,
  }, Identity.generate());
  const proofMessage = thrown(
    parseFraudProof,
    { ...proof, receipt: { ...receipt, worker: new Uint8Array(3) } },
    MalformedFraudProofError,
  );
  assert.equal(proofMessage, "receipt.worker: expected 32 bytes");
});
