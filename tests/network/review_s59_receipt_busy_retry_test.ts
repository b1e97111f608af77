/**
 * Review s59: how a `validation.receipt` announcement refused `busy` is asked again
 * (`announceReceipt`, `network/_accusations.ts`): after a doubling backoff on the connection's
 * clock, a few times at most, only for `busy`, within a bound on what one connection keeps waiting,
 * and not past the connection's close. The ledger outcome it fixes is
 * `review_s59_receipt_busy_ledger_test.ts`'s.
 *
 * Each test runs a plain connection pair on the test's clock: the server handles one peer message
 * at once, and its receipt handler waits for `release`, so a held announcement fills it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { announceReceipt, sendClaimEvidence } from "../../network/_accusations.ts";
import { MAX_BUSY_RECEIPT_BYTES, MAX_BUSY_RECEIPTS } from "../../network/network_actor.ts";
import { BUSY_RETRY_BACKOFF_MS, MAX_BUSY_RETRIES } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  type ReceiptAckBody,
  type ReceiptAnnouncementBody,
  ReceiptAnnouncementMessage,
} from "../../protocols/inference_messages.ts";
import { jobBytes } from "../../protocols/job.ts";
import { RemoteError } from "../../protocols/protocol_errors.ts";
import { proveOn, textJob } from "../actors/_validator_fixture.ts";
import { connectedPair, ManualTimers, settle } from "../protocols/_helpers.ts";

/** Well past any backoff of a few tries. */
const PAST_BACKOFF_MS = 60_000;

const requester = Identity.generate();
const announced: ReceiptAnnouncementBody = await (async () => {
  const job = textJob(requester, "s59-receipt-busy-retry");
  const { receipt } = await proveOn(job, Identity.generate());
  return { receipt, job };
})();

/**
 * A client on the test's clock and a server that handles one peer message at once: the first
 * announcement it takes is held until `release`; it answers each with `answer`. `taken` counts the
 * announcements its handler took, `refused` the server's refusals (`code`).
 */
function busyPair(answer: () => ReceiptAckBody = () => ({ recorded: true })) {
  const timers = new ManualTimers();
  // Nothing else is due on this clock: no keepalive, no idle timeout, no request timeout.
  const quiet = { timers, keepaliveMs: 0, idleTimeoutMs: 0, requestTimeoutMs: 1e9 };
  const refused: string[] = [];
  const { client, server, close } = connectedPair(quiet, {
    ...quiet,
    maxInboundRequests: 1,
    onProtocolError: (error) => refused.push(error.code),
  });
  let release!: () => void;
  const held = new Promise<void>((resolve) => release = resolve);
  let taken = 0;
  server.handle(ReceiptAnnouncementMessage, async () => {
    if (taken++ === 0) await held;
    return answer();
  });
  /**
   * Fill the server's one slot with a held announcement; resolves once it is taken, with the
   * announcement's answer (wrapped: awaiting it waits for `release`).
   */
  const fill = async (): Promise<{ holding: Promise<ReceiptAckBody> }> => {
    const holding = client.request(ReceiptAnnouncementMessage, announced);
    holding.catch(() => {}); // a failed assertion closes the connection under it
    await settle();
    assert.equal(server.stats().inboundRequests, 1, "the held announcement fills the server");
    return { holding };
  };
  return {
    timers,
    client,
    server,
    close,
    release,
    fill,
    refused,
    get taken() {
      return taken;
    },
  };
}

Deno.test("review s59: a receipt announcement refused busy is asked again after a backoff, and the peer's answer is what it resolves with", async () => {
  const pair = busyPair();
  try {
    const { holding } = await pair.fill();
    const answered = announceReceipt(pair.client, announced, pair.timers);
    await settle();
    assert.deepEqual(pair.refused, ["busy"]);
    pair.release();
    await holding;
    await pair.timers.advance(BUSY_RETRY_BACKOFF_MS - 1);
    assert.equal(pair.taken, 1, "not asked again before its backoff");
    await pair.timers.advance(1);
    assert.deepEqual(await answered, { recorded: true });
    assert.equal(pair.taken, 2, "asked again once");
  } finally {
    await pair.close();
  }
});

Deno.test("review s59: a peer that stays busy is asked 1 + MAX_BUSY_RETRIES times, each after twice the wait, then the announcement fails busy", async () => {
  const pair = busyPair();
  try {
    const { holding } = await pair.fill();
    let outcome: unknown;
    announceReceipt(pair.client, announced, pair.timers).then(
      (ack) => outcome = ack,
      (error) => outcome = error,
    );
    await settle();
    for (let retry = 0; retry < MAX_BUSY_RETRIES; retry++) {
      const backoff = BUSY_RETRY_BACKOFF_MS * 2 ** retry;
      await pair.timers.advance(backoff - 1);
      assert.equal(pair.refused.length, retry + 1, `retry ${retry + 1} not before its wait`);
      await pair.timers.advance(1);
      assert.equal(pair.refused.length, retry + 2, `retry ${retry + 1} after its wait`);
    }
    await pair.timers.advance(PAST_BACKOFF_MS);
    assert.equal(pair.refused.length, 1 + MAX_BUSY_RETRIES, "asked no more times");
    assert.ok(outcome instanceof RemoteError && outcome.code === "busy", String(outcome));
    pair.release();
    await holding;
    assert.equal(pair.timers.pending, 0, "no backoff left armed");
  } finally {
    pair.release();
    await pair.close();
  }
});

Deno.test("review s59: a receipt refused with a reason, or failed for anything but busy, is not asked again", async () => {
  // A refusal with a reason: the peer's validator decided.
  const refusing = busyPair(() => ({ recorded: false, refusal: "insufficient_stake" }));
  refusing.release(); // nothing held
  try {
    assert.deepEqual(
      await announceReceipt(refusing.client, announced, refusing.timers),
      { recorded: false, refusal: "insufficient_stake" },
    );
    await refusing.timers.advance(PAST_BACKOFF_MS);
    assert.equal(refusing.taken, 1);
  } finally {
    refusing.release();
    await refusing.close();
  }
  // Another error: the peer's handler failed.
  const timers = new ManualTimers();
  const quiet = { timers, keepaliveMs: 0, idleTimeoutMs: 0, requestTimeoutMs: 1e9 };
  const { client, server, close } = connectedPair(quiet, quiet);
  let taken = 0;
  server.handle(ReceiptAnnouncementMessage, () => {
    taken++;
    throw new Error("the validator failed");
  });
  try {
    await assert.rejects(
      announceReceipt(client, announced, timers),
      (error) => error instanceof RemoteError && error.code === "handler_error",
    );
    await timers.advance(PAST_BACKOFF_MS);
    assert.equal(taken, 1, "asked once");
    assert.equal(timers.pending, 0);
    // The claim's evidence: never rejects, whatever the ending.
    assert.equal(await sendClaimEvidence(client, announced, timers), undefined);
    assert.equal(taken, 2);
  } finally {
    await close();
  }
});

Deno.test("review s59: a connection keeps at most MAX_BUSY_RECEIPTS announcements and MAX_BUSY_RECEIPT_BYTES of jobs waiting out a busy backoff; past that one fails at once", async () => {
  // The count.
  const counted = busyPair();
  try {
    await counted.fill();
    const armed = counted.timers.pending; // the held announcement's own timeout
    const outcomes: unknown[] = [];
    for (let i = 0; i <= MAX_BUSY_RECEIPTS; i++) {
      announceReceipt(counted.client, announced, counted.timers).catch((e) => outcomes.push(e));
    }
    await settle();
    await settle();
    assert.equal(counted.refused.length, MAX_BUSY_RECEIPTS + 1, "all refused busy");
    assert.equal(outcomes.length, 1, "only the one past the bound fails at once");
    assert.equal(counted.timers.pending - armed, MAX_BUSY_RECEIPTS, "a backoff each for the rest");
  } finally {
    counted.release();
    await counted.close();
  }
  // The bytes: announcements of large jobs (their receipt need not match them here).
  const sized = busyPair();
  try {
    await sized.fill();
    const armed = sized.timers.pending;
    const big: ReceiptAnnouncementBody = {
      receipt: announced.receipt,
      job: { ...announced.job, prompt: "x".repeat(400 * 1024) },
    };
    const fits = Math.floor(MAX_BUSY_RECEIPT_BYTES / jobBytes(big.job));
    assert.ok(fits >= 1 && fits < MAX_BUSY_RECEIPTS);
    const outcomes: unknown[] = [];
    for (let i = 0; i <= fits; i++) {
      announceReceipt(sized.client, big, sized.timers).catch((e) => outcomes.push(e));
    }
    await settle();
    await settle();
    assert.equal(sized.refused.length, fits + 1, "all refused busy");
    assert.equal(outcomes.length, 1, "only the one past the byte bound fails at once");
    assert.equal(sized.timers.pending - armed, fits);
  } finally {
    sized.release();
    await sized.close();
  }
});

Deno.test("review s59: a receipt announcement waiting out a busy backoff fails once its connection closes, its timer cleared", async () => {
  const pair = busyPair();
  await pair.fill();
  const armed = pair.timers.pending;
  const answered = announceReceipt(pair.client, announced, pair.timers);
  answered.catch(() => {});
  await settle();
  assert.deepEqual(pair.refused, ["busy"]);
  assert.equal(pair.timers.pending - armed, 1, "its backoff");
  pair.release();
  await pair.close();
  await assert.rejects(answered, (error) => error instanceof RemoteError && error.code === "busy");
  assert.equal(pair.timers.pending, 0, "the backoff was cleared");
  assert.equal(pair.taken, 1, "not asked again on a closed connection");
});
