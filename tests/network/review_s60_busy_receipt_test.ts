/**
 * Review s60 (busy): a receipt announcement (`announceReceipt`, `network/_accusations.ts`) that the
 * peer refuses `busy` because we are not reading its frames (its write budget to us is full) is
 * asked again once we read, and reaches the peer's handler. Before, that refusal's `error` frame was
 * offered to the full budget and always dropped: the announcement waited out its 30 s request
 * timeout and was final, and the honest worker went unpaid in that ledger. The connection-level
 * cases are `review_s60_busy_refusal_test.ts`; filed here beside them because the fix is there
 * (`protocols/_connection_responder.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { announceReceipt } from "../../network/_accusations.ts";
import { BUSY_RETRY_BACKOFF_MS } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  type ReceiptAnnouncementBody,
  ReceiptAnnouncementMessage,
} from "../../protocols/inference_messages.ts";
import { proveOn, textJob } from "../actors/_validator_fixture.ts";
import { ManualTimers, Note, settle } from "../protocols/_helpers.ts";
import { slowReaderPair } from "../protocols/_slow_reader_pair.ts";

const announced: ReceiptAnnouncementBody = await (async () => {
  const job = textJob(Identity.generate(), "s60-busy-receipt");
  const { receipt } = await proveOn(job, Identity.generate());
  return { receipt, job };
})();

Deno.test("review s60: a receipt announcement refused busy while the peer's write budget to us is full is asked again once we read, and reaches the peer's validator", async () => {
  const timers = new ManualTimers();
  // Nothing else is due on this clock: no keepalive, no idle timeout; the request timeout is the
  // default 30 s a lost refusal ran into. We read nothing from the peer until `open()` (a
  // congested link, a large transfer from it).
  const { client: sender, server: peer, open, close } = slowReaderPair(timers, {
    requestTimeoutMs: 30_000,
    maxQueuedBytes: 16 * 1024,
  });
  const taken: string[] = [];
  peer.handle(ReceiptAnnouncementMessage, ({ receipt }) => {
    taken.push(receipt.jobId);
    return { recorded: true };
  });
  try {
    // The peer owes us more than its whole budget.
    const owed = Promise.all(
      Array.from({ length: 8 }, () => peer.notify(Note, { text: "x".repeat(8 * 1024) })),
    );
    await settle();
    const answer = announceReceipt(sender, announced, timers).then(
      (ack) => ({ ack }),
      (error: unknown) => ({ error }),
    );
    await settle();
    assert.equal(peer.stats().refused, 1, "refused busy: we are not reading the peer");
    open();
    await owed;
    await timers.advance(BUSY_RETRY_BACKOFF_MS); // the one backoff of a busy refusal
    const outcome = await Promise.race([answer, settle().then(() => "still waiting" as const)]);
    assert.deepEqual(
      outcome,
      { ack: { recorded: true } },
      "the refusal was dropped: the announcement waits out its request timeout",
    );
    assert.deepEqual(taken, [announced.receipt.jobId], "the peer's handler took it, once");
  } finally {
    await close();
  }
});
