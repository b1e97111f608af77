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
import { verifyReceipt } from "../../protocols/receipt.ts";
import { JOB, OUTPUT, receiptWith } from "./_page_receipt.ts";

/** A receipt for JOB and OUTPUT signing `promptTokens`, as the node sends it to the page. */
function receiptSigning(promptTokens: unknown, kind = "text"): Record<string, unknown> {
  return receiptWith((body) => {
    body.kind = kind;
    body.promptTokens = promptTokens;
  });
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
