/**
 * Review s59: the worker's side of a receipt whose `end` event a connection lost
 * (`UnsentReceipts`, `inference/serve_inference.ts`): kept only for the key that submitted the
 * job, a bounded number per key, for the challenge window. The ledger outcome is pinned in
 * `review_s59_late_receipt_end_test.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  MAX_UNSENT_RECEIPTS_PER_PEER,
  UNSENT_RECEIPT_KEEP_MS,
  UnsentReceipts,
} from "../../inference/serve_inference.ts";
import type { Receipt } from "../../protocols/receipt.ts";

Deno.test("review s59: a worker keeps a receipt whose end event it could not send only for the key that submitted the job, a bounded number per key, for the challenge window", () => {
  let now = 0;
  const kept = new UnsentReceipts(() => now);
  const receiptFor = (n: number) => ({ jobId: n.toString(16).padStart(64, "0") }) as Receipt;
  kept.keep("aa", receiptFor(1));
  assert.equal(kept.get("aa", receiptFor(1).jobId)?.jobId, receiptFor(1).jobId);
  assert.equal(kept.get("bb", receiptFor(1).jobId), undefined, "another key got it");
  for (let n = 2; n <= MAX_UNSENT_RECEIPTS_PER_PEER + 1; n++) kept.keep("aa", receiptFor(n));
  assert.equal(kept.size, MAX_UNSENT_RECEIPTS_PER_PEER, "one key's share is bounded");
  assert.equal(kept.get("aa", receiptFor(1).jobId), undefined, "the oldest goes first");
  kept.keep("bb", receiptFor(1_000));
  assert.equal(kept.size, MAX_UNSENT_RECEIPTS_PER_PEER + 1, "another key keeps its own");
  now += UNSENT_RECEIPT_KEEP_MS + 1;
  assert.equal(kept.get("bb", receiptFor(1_000).jobId), undefined, "kept past the window");
  assert.equal(kept.size, 0);
});
