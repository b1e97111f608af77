/**
 * The page's receipt check against the number of tokens it received (review s82 dash F4): it
 * compared the receipt's `tokenCount` with the job's `maxTokens` only, so a receipt billing 3
 * tokens for the 1 the page got, over the same text (a token may decode to none), was "verified".
 * Given the tokens the page received, a count that differs fails `tokens received`, and `detail`
 * says both numbers.
 */
import { assert, assertEquals } from "./_assert.ts";
import { JOB, OUTPUT, receiptWith } from "./_page_receipt.ts";
import { checkReceipt } from "../../server/dashboard/receipt_check.js";

Deno.test("the page's receipt check fails a receipt that counts more tokens than the page received, saying both counts, though its text matches", async () => {
  const receipt = receiptWith(() => {}); // tokenCount 3 over "abc"
  const result = await checkReceipt(receipt, { job: JOB, output: OUTPUT, tokens: 1 });
  assertEquals(result.ok, false);
  assertEquals(result.reason, "tokens received");
  assertEquals(result.detail, "the receipt claims 3 tokens, this page received 1");
  const output = result.checks.find((c: { name: string }) => c.name === "output");
  assert(output?.ok, "the text matches: the count alone differs");
});

Deno.test("the page's receipt check verifies a receipt that counts the tokens the page received, and fails one that counts fewer", async () => {
  const receipt = receiptWith(() => {});
  const same = await checkReceipt(receipt, { job: JOB, output: OUTPUT, tokens: 3 });
  assertEquals(same.ok, true, JSON.stringify(same));
  assertEquals(same.detail, undefined);
  assert(same.checks.some((c: { name: string }) => c.name === "tokens received"));
  const fewer = await checkReceipt(receipt, { job: JOB, output: OUTPUT, tokens: 4 });
  assertEquals(fewer.detail, "the receipt claims 3 tokens, this page received 4");
  // Without the count (a caller that does not know it), the rest is checked as before.
  assertEquals((await checkReceipt(receipt, { job: JOB, output: OUTPUT })).ok, true);
});
