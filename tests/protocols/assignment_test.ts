import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { DEFAULT_GENERATION_PARAMS, jobId, type TextJob } from "../../protocols/job.ts";
import { signAssignment, verifyAssignment } from "../../protocols/assignment.ts";

const requester = Identity.generate();
const worker = Identity.generate().publicKey;
const job: TextJob = {
  kind: "text",
  model: "bafkreimodel",
  prompt: "hi",
  params: { ...DEFAULT_GENERATION_PARAMS },
  nonce: "1",
  requester: toHex(requester.publicKey),
};

Deno.test("signAssignment refuses what no ledger would verify, instead of signing it silently", () => {
  // The good case verifies.
  const good = signAssignment({ job, worker, issuedAt: 5 }, requester);
  assert.equal(verifyAssignment(good, { jobId: jobId(job), worker }), true);
  // A job naming another requester, a time that is not one, a key that is not one.
  assert.throws(
    () => signAssignment({ job: { ...job, requester: undefined }, worker, issuedAt: 5 }, requester),
    TypeError,
  );
  for (const issuedAt of [NaN, -1, Infinity]) {
    assert.throws(
      () => signAssignment({ job, worker, issuedAt }, requester),
      TypeError,
      `${issuedAt}`,
    );
  }
  assert.throws(
    () => signAssignment({ job, worker: new Uint8Array(31), issuedAt: 5 }, requester),
    TypeError,
  );
});
