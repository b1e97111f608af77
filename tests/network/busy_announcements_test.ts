/**
 * Evidence and receipt announcements refused `busy` by the receiving connection are asked again
 * (`announceReceipt`, `network/_accusations.ts`), so the ledger outcome does not depend on a burst.
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
import {
  announceAssigned,
  ledgerReads,
  proveOn,
  START,
  textJob,
  withheldVerdict,
} from "../actors/_validator_fixture.ts";
import { connectedPair, ManualTimers, Note, settle } from "../protocols/_helpers.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { busySetting } from "./_busy_connection.ts";
import {
  type CaughtCheat,
  caughtCheat,
  inLedgerSetting,
  servesProof,
  withholds,
} from "./_ledger_node.ts";
import type { FraudProofHandled } from "../../actors/validator_messages.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { slowReaderPair } from "../protocols/_slow_reader_pair.ts";

// ---- receipt busy retry ---------------------------------------------------------------------------
// How a `validation.receipt` announcement refused `busy` is asked again (`announceReceipt`,
// `network/_accusations.ts`): after a doubling backoff on the connection's clock, a few times at
// most, only for `busy`, within a bound on what one connection keeps waiting, and not past the
// connection's close. The ledger outcome it fixes is pinned in the next section.
//
// Each test runs a plain connection pair on the test's clock: the server handles one peer message
// at once, and its receipt handler waits for `release`, so a held announcement fills it.

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

Deno.test("a receipt announcement refused busy is asked again after a backoff, and the peer's answer is what it resolves with", async () => {
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

Deno.test("a peer that stays busy is asked 1 + MAX_BUSY_RETRIES times, each after twice the wait, then the announcement fails busy", async () => {
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

Deno.test("a receipt refused with a reason, or failed for anything but busy, is not asked again", async () => {
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

Deno.test("a connection keeps at most MAX_BUSY_RECEIPTS announcements and MAX_BUSY_RECEIPT_BYTES of jobs waiting out a busy backoff; past that one fails at once", async () => {
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

Deno.test("a receipt announcement waiting out a busy backoff fails once its connection closes, its timer cleared", async () => {
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

// ---- receipt busy ledger --------------------------------------------------------------------------
// A `validation.receipt` announcement refused `busy` by the receiving connection.
//
// A receipt announcement is a request. The receiving connection refuses it `busy` at admission when
// it already handles `maxInboundRequests` of the peer's messages (`_connection_responder.ts`): a
// burst of the same peer's announcements, in flight while the validator works. The request failed
// with `RemoteError busy`, which the NetworkActor only logged, and nothing announced the receipt to
// that peer again (a peer's catch-up carries convictions and verdicts, not receipts). So the honest
// worker's receipt was never recorded in that ledger, and it was paid there less than in the
// others; and a "proof withheld" claim whose receipt went ahead of it (`sendClaimEvidence`) went
// out without it, and was held there for good: the worker that withheld was not slashed there.
//
// The set-up (`_busy_connection.ts`): B — C in memory. C's connection handles `MAX_INBOUND` peer messages at once;
// its validator is held (a gate in front of it) while a burst of `MAX_INBOUND` receipt
// announcements from B's side of the connection is in flight there. B's connection, and the
// NetworkActor's backoff with it, runs on the test's clock (`ConnectionOptions.timers`), which the
// test moves past any backoff once C's burst is over. Every ledger runs on the test's ledger clock.

const STAKE = 1_000_000;

Deno.test("a receipt announcement refused busy by a peer's connection is asked again after a backoff: the honest worker is paid in that ledger as in the announcer's", () =>
  inLedgerSetting("s59-receipt-busy", async ({ dir, clock, system }) => {
    const [worker, requester] = [Identity.generate(), Identity.generate()];
    const setting = await busySetting(system, dir, clock, [worker], STAKE);
    const { nodeB, nodeC, refusedByC } = setting;
    const readsB = ledgerReads(() => nodeB.validator, clock);
    const readsC = ledgerReads(() => nodeC.validator, clock);

    // An honest worker's receipt, assigned by its requester, reaches B (from another peer) while
    // C's connection is full: B's validator records it and its NetworkActor passes it on.
    const job = textJob(requester, "s59-receipt-busy-honest");
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    await setting.fill();
    assert.equal((await announceAssigned(nodeB.validator, receipt, job, requester)).recorded, true);
    await eventually(
      () => refusedByC.includes("busy validation.receipt"),
      "C to refuse B's announcement busy",
    );
    await setting.release();
    await setting.pastBackoff();
    await eventually(
      async () => (await readsC.record(id)) !== undefined,
      "C to record the receipt",
      { timeoutMs: 3_000 },
    ).catch(() => {}); // lost: the window closes below, and the ledger tells

    await readsC.closeWindow();
    await nodeB.validator.ask({ type: "finalize" });
    assert.equal((await readsB.record(id))?.status, "final");
    assert.equal((await readsC.record(id))?.status, "final", "C never recorded the receipt");
    const paidB = (await readsB.account(worker.publicKey)).balance;
    assert.ok(paidB > 0);
    assert.equal(
      (await readsC.account(worker.publicKey)).balance,
      paidB,
      "the honest worker was paid less in C than in B",
    );
  }));

Deno.test("a claim's receipt refused busy is asked again before the claim goes: the worker that withholds is slashed in a ledger that never had the receipt, not left unslashed", () =>
  inLedgerSetting("s59-claim-receipt-busy", async ({ dir, clock, system }) => {
    const [worker, requester, claimant] = Array.from({ length: 3 }, Identity.generate);
    const job = textJob(requester, "s59-claim-receipt-busy");
    const proved = await proveOn(job, worker);
    const id = receiptId(proved.receipt);
    // The worker serves B (B's takeover clears it) and withholds from C.
    const serves = servesProof(id, proved.proof, worker);
    // The receipt is recorded in B before B and C meet: C never had it.
    const setting = await busySetting(system, dir, clock, [worker, claimant], STAKE, {
      sources: { b: serves, c: withholds },
      beforeJoin: async (nodeB) =>
        assert.equal(
          (await announceAssigned(nodeB.validator, proved.receipt, job, requester)).recorded,
          true,
        ),
    });
    const { nodeB, nodeC, refusedByC } = setting;
    const readsB = ledgerReads(() => nodeB.validator, clock);
    const readsC = ledgerReads(() => nodeC.validator, clock);

    // The claimant's claim reaches B while C's connection is full; B passes it on with its
    // receipt ahead.
    await setting.fill();
    const recorded = await nodeB.validator.ask<string | undefined>({
      type: "verdict",
      verdict: withheldVerdict(id, worker.publicKey, clock.t, claimant),
      origin: toHex(claimant.publicKey),
    });
    assert.ok(recorded, "B records the claim");
    await eventually(
      () => refusedByC.includes("busy validation.receipt"),
      "C to refuse the claim's receipt busy",
    );
    await setting.release();
    await setting.pastBackoff();
    await readsB.drained();
    await eventually(
      async () => (await readsC.record(id))?.status === "fraud",
      "C to take the claim over and slash the worker",
      { timeoutMs: 3_000 },
    ).catch(() => {}); // held without its receipt: the window closes below, and the ledger tells

    await readsC.closeWindow();
    await nodeB.validator.ask({ type: "finalize" });
    assert.equal((await readsB.record(id))?.status, "final", "the worker served B: paid there");
    assert.equal((await readsC.record(id))?.status, "fraud", "C never recorded the receipt");
    assert.ok(
      (await readsC.account(worker.publicKey)).stake < STAKE,
      "the worker that withheld from C was not slashed in C",
    );
  }));

// ---- busy evidence --------------------------------------------------------------------------------
// One-way evidence refused `busy` by the receiving connection.
//
// A peer's `validation.fraud_proof` is a one-way notify, passed on once per connection. The
// receiving connection refuses it `busy` when it already handles `maxInboundRequests` of the
// peer's messages (`protocols/_connection_responder.ts`): a burst of `validation.receipt`
// requests from the same peer, in flight while the validator works. The refusal goes back as an
// `error` frame `about` the envelope, which nobody on the sender acted on: the proof was lost on
// that connection, the receipt's window closed there without it, and the cheat every other ledger
// slashed was paid in this one.
//
// The set-up (`_busy_connection.ts`): B — C in memory, the cheat's receipt in both ledgers, the accuser's stake in both.
// C's connection handles `MAX_INBOUND` peer messages at once; its validator is held (a
// gate in front of it) while B's burst of `MAX_INBOUND` receipt announcements is in flight,
// and B passes its confirmed proof on then. B's connection runs on the test's clock, which the
// test moves past the sender's backoff once C's burst is over.

Deno.test("a fraud proof refused busy by a peer's connection (a burst of its receipt announcements in flight) is sent again after a backoff: the cheat is slashed there too, not paid", () =>
  inLedgerSetting("s59-busy-evidence", async ({ dir, clock, system }) => {
    const [b, c, accuser, worker, requester] = Array.from({ length: 5 }, Identity.generate);
    // C's validator is held while B's burst of receipt announcements (the cheat's receipt) is in
    // flight there.
    let cheat!: CaughtCheat;
    const setting = await busySetting(system, dir, clock, [], STAKE, {
      keys: { b, c },
      pledged: true,
      beforeJoin: async (nodeB, nodeC) => {
        cheat = await caughtCheat(
          [nodeB, nodeC],
          { worker, requester, accuser, tag: "s59-busy-evidence" },
          [worker, accuser],
          STAKE,
        );
      },
    });
    const { nodeB, nodeC, toC, refusedByC } = setting;
    const { id, fraudProof, job, proved } = cheat;

    const readsB = ledgerReads(() => nodeB.validator, clock);
    await setting.fill({ receipt: proved.receipt, job });
    // Inside the receipt's window, A's proof reaches B, which confirms it and passes it on
    // while C's connection is full.
    clock.t += 60_000;
    assert.ok(clock.t < START + DEFAULT_ECONOMICS.challengeWindowMs / 2);
    const handled = await nodeB.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "dd".repeat(32),
    });
    assert.equal(handled.queued, true);
    await handled.result;
    assert.equal((await readsB.record(id))?.status, "fraud");
    await eventually(
      () => refusedByC.includes("busy validation.fraud_proof"),
      "C to refuse B's proof busy",
    );
    await setting.release();
    assert.equal(toC.stats().resentOneWay, 0, "nothing is sent again before its backoff");
    // B's connection clock moves on: past any backoff the sender keeps.
    await setting.pastBackoff();
    const readsC = ledgerReads(() => nodeC.validator, clock);
    await eventually(
      async () => (await readsC.record(id))?.status === "fraud",
      "C to settle the proof",
      { timeoutMs: 3_000 },
    ).catch(() => {}); // lost: the window closes below

    await readsC.closeWindow();
    assert.equal((await readsC.record(id))?.status, "fraud", "C paid the cheat B slashed");
    const account = await readsC.account(worker.publicKey);
    assert.equal(account.balance, 0, "the cheat was paid in C");
    assert.equal(account.stake, (await readsB.account(worker.publicKey)).stake);
    assert.ok(account.stake < STAKE, "the cheat was not slashed in C");
  }));

// ---- busy receipt ---------------------------------------------------------------------------------
// A receipt announcement (`announceReceipt`, `network/_accusations.ts`) that the peer refuses
// `busy` because we are not reading its frames (its write budget to us is full) is asked again once
// we read, and reaches the peer's handler. Before, that refusal's `error` frame was offered to the
// full budget and always dropped: the announcement waited out its 30 s request timeout and was
// final, and the honest worker went unpaid in that ledger. The connection-level cases are
// `tests/protocols/connection_busy_test.ts`; filed here beside them because the fix is there
// (`protocols/_connection_responder.ts`).

const announcedBusyReceipt: ReceiptAnnouncementBody = await (async () => {
  const job = textJob(Identity.generate(), "s60-busy-receipt");
  const { receipt } = await proveOn(job, Identity.generate());
  return { receipt, job };
})();

Deno.test("a receipt announcement refused busy while the peer's write budget to us is full is asked again once we read, and reaches the peer's validator", async () => {
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
    const answer = announceReceipt(sender, announcedBusyReceipt, timers).then(
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
    assert.deepEqual(
      taken,
      [announcedBusyReceipt.receipt.jobId],
      "the peer's handler took it, once",
    );
  } finally {
    await close();
  }
});
