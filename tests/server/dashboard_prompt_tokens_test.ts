/**
 * The dashboard's in-page receipt check (`server/dashboard/receipt_check.js`) takes a receipt that
 * signs its prompt tokens (batching review F2 of stop 77: every receipt from the node's path now
 * does) as the node's `verifyReceipt` does, and still refuses what the node refuses: a count that
 * is not a count, or one on a tensor receipt.
 *
 * @module
 */
import { assert, assertEquals } from "./_assert.ts";
import { checkReceipt } from "../../server/dashboard/receipt_check.js";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import {
  inputHashOf,
  receiptSigningBytes,
  textOutputHash,
  verifyReceipt,
} from "../../protocols/receipt.ts";

const JOB = {
  kind: "text",
  model: "bafkmodel",
  prompt: "hello",
  params: { maxTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
  nonce: "00112233445566778899aabbccddeeff",
} as unknown as TextJob;
const OUTPUT = "abc";

/** A receipt for JOB and OUTPUT signing `promptTokens`, as the node sends it to the page. */
function receiptSigning(promptTokens: unknown, kind = "text"): Record<string, unknown> {
  const identity = Identity.generate();
  const body: Record<string, unknown> = {
    v: 1,
    kind,
    jobId: jobId(JOB),
    model: JOB.model,
    inputHash: inputHashOf(JOB),
    params: JOB.params,
    outputHash: textOutputHash(OUTPUT),
    commitment: { scheme: "vf-fp1", root: "ab".repeat(32), chunkSize: 16, tokenBytes: 4 },
    tokenCount: 3,
    promptTokens,
    worker: identity.publicKey,
    timings: { startedAt: 1, firstTokenMs: 2, totalMs: 3 },
  };
  // deno-lint-ignore no-explicit-any
  const sig = identity.sign(receiptSigningBytes(body as any));
  return { ...body, worker: toHex(identity.publicKey), sig: toHex(sig) };
}

Deno.test("F2: the page's receipt check says verified for a receipt signing its prompt tokens, as the node does", async () => {
  const receipt = receiptSigning(5);
  assert(verifyReceipt(receipt, { job: JOB, output: OUTPUT }).ok, "the node accepts it");
  const result = await checkReceipt(receipt, { job: JOB, output: OUTPUT });
  assertEquals(result.ok, true, JSON.stringify(result));
});

Deno.test("F2: the page's receipt check does not say verified for a prompt count the node refuses (negative, fractional, on a tensor receipt)", async () => {
  const cases: [string, Record<string, unknown>][] = [
    ["a negative count", receiptSigning(-1)],
    ["a fractional count", receiptSigning(2.5)],
    ["a count on a tensor receipt", receiptSigning(5, "tensor")],
  ];
  const wrong: string[] = [];
  for (const [name, receipt] of cases) {
    assert(!verifyReceipt(receipt).ok, `the node refuses ${name}`);
    if ((await checkReceipt(receipt)).ok) wrong.push(name);
  }
  assertEquals(wrong, [], "receipts the page called verified");
});
