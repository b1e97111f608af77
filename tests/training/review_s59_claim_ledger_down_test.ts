/**
 * Review s59: a peer's true `opening_missing` claim (the trainer refused to open its sampled steps
 * to the claimant) whose takeover asks a ledger that does not answer.
 *
 * Whether a claim is taken over asks the ledger where the receipt stands and this validator's own
 * stake (`training/_claim_takeovers.ts`, `#requestFor`). Both asks read "no answer" as an answer:
 * the receipt "not pending", this validator "unstaked". A claim is passed on once, so it never came
 * again, and the withholding trainer, convicted in every ledger that took the claim over, was paid
 * in this one (receipt `final` instead of `fraud`). Now such a claim is kept and considered again
 * once the ledger answers (bounded); an answer stays final. Each test reads the ledger outcome:
 * the trainer's receipt status and stake here.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Ledger } from "../../proof/ledger.ts";
import type { ReceiptRecord } from "../../proof/ledger_state.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import type { Identity } from "../../protocols/identity.ts";
import { ClaimTakeovers } from "../../training/_claim_takeovers.ts";
import { MAX_END_ATTEMPTS } from "../../training/_challenge_endings.ts";
import { retryWait } from "../../training/_ledger_retries.ts";
import { PLEDGE_RECHECK_MS } from "../../training/_pledge_held_training_proofs.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  claim,
  type ClaimNode,
  claimNode,
  creditWithholdingTrainer,
  STAKE,
  type trainerLink,
  type WithholdingTrainer,
} from "./_claim_node.ts";
import { assertWithholderSlashed, takeoverSettled } from "./_claim_conviction.ts";
import { downAfterHoldReleased, ledgerDownSwitch } from "./_training_ledger.ts";

/**
 * Run `test` on a fresh {@link claimNode} whose trainer trained one receipt, credited here (paid
 * when final) and refuses every challenge (it withholds its openings); `claimant` is staked here.
 * `ledgerDown(true)` makes the ledger look stopped to the training validator (its lookup finds
 * none, as after `system.stop`) while the test still reads it; `tries()` counts the validator's
 * `claims_again` rounds. With `timers`, the validator's waits before a try again run on them (the
 * test fires them); otherwise on real time.
 */
async function withWithholdingTrainer(
  name: string,
  test: (context: {
    n: ClaimNode;
    receipt: WithholdingTrainer["receipt"];
    record: ReceiptRecord;
    claimant: Identity;
    ledgerDown: (down: boolean) => void;
    tries: () => number;
    onTry: (hook: (tries: number) => void) => void;
  }) => Promise<void>,
  timers?: FakeTimers,
): Promise<void> {
  let link: ReturnType<typeof trainerLink>["connection"] | undefined;
  const n = await claimNode(`s59-claim-${name}`, () => link, undefined, undefined, { timers });
  const again = ClaimTakeovers.prototype.again;
  let tries = 0;
  let hook: (tries: number) => void = () => {};
  try {
    const ledgerDown = ledgerDownSwitch(n.system);
    ClaimTakeovers.prototype.again = function (ctx) {
      hook(++tries);
      return again.call(this, ctx);
    };
    const { receipt, record, claimant } = await creditWithholdingTrainer(n, (to) => link = to);
    await test({
      n,
      receipt,
      record,
      claimant,
      ledgerDown,
      tries: () => tries,
      onTry: (next) => hook = next,
    });
  } finally {
    ClaimTakeovers.prototype.again = again;
    await n.close();
  }
}

/**
 * After the window: the withholding trainer convicted in this ledger — its receipt `fraud`, its
 * locked stake slashed, nothing paid — on this validator's own takeover, made once.
 */
async function assertConvicted(n: ClaimNode, record: ReceiptRecord, trainer: Uint8Array) {
  await takeoverSettled(async () => (await n.record(record.receiptId)).status === "fraud");
  await assertWithholderSlashed(n, record, trainer);
  const stats = await n.stats();
  assert.equal(stats.takeovers, 1, "taken over once, whatever the tries before");
  assert.equal(stats.faults, 1);
}

Deno.test("review s59: a true opening_missing claim whose takeover found the ledger restarting (a failed read of this validator's stake) still convicts the withholding trainer here", () =>
  withWithholdingTrainer("stake-read", async ({ n, receipt, record, claimant, tries }) => {
    const account = Ledger.prototype.account;
    let failures = 0;
    try {
      // This validator's own stake, read for the takeover, fails once as a disk does: the
      // ValidatorActor crashes, and its supervisor restarts it.
      Ledger.prototype.account = function (key: Uint8Array) {
        if (bytesEqual(key, n.identity.publicKey)) {
          Ledger.prototype.account = account;
          failures++;
          throw Object.assign(new Error("Input/output error (simulated)"), { code: "EIO" });
        }
        return account.call(this, key);
      };
      await n.claim(claim(receipt, claimant));
      await assertConvicted(n, record, receipt.trainer);
    } finally {
      Ledger.prototype.account = account;
    }
    assert.equal(failures, 1, "the stake read failed once");
    assert.ok(tries() >= 1, "considered again");
    assert.deepEqual(await n.account(claimant.publicKey), { balance: 0, stake: STAKE, locked: 0 });
  }));

Deno.test("review s59: a true opening_missing claim whose takeover found the ledger stopped (where its receipt stands, unanswered) is considered again once the ledger is back, and convicts the withholding trainer here", () =>
  withWithholdingTrainer("status-read", async (c) => {
    const { n, receipt, record } = c;
    // The ledger stops right after it released the claim's hold: the takeover's first ask
    // (where the receipt stands) finds none. It is back for the second try.
    const down = downAfterHoldReleased(c.ledgerDown);
    try {
      c.onTry((tries) => {
        if (tries >= 2) c.ledgerDown(false);
      });
      await n.claim(claim(receipt, c.claimant));
      await assertConvicted(n, record, receipt.trainer);
    } finally {
      down.restore();
    }
    assert.equal(down.armed(), false, "the ledger was down for the takeover");
    assert.ok(c.tries() >= 2, "considered again while the ledger stayed down");
  }));

Deno.test("review s59: a claim whose takeover the ledger refused (it answered: this validator has no stake there) is not kept nor tried again: the trainer is not slashed here on the claimant's word", () =>
  withWithholdingTrainer("answered", async ({ n, receipt, record, claimant, tries }) => {
    const account = Ledger.prototype.account;
    let answered = 0;
    try {
      // An answer: this validator's stake is 0 (as if it had withdrawn it).
      Ledger.prototype.account = function (key: Uint8Array) {
        if (bytesEqual(key, n.identity.publicKey)) {
          answered++;
          return { balance: 0, stake: 0, locked: 0 };
        }
        return account.call(this, key);
      };
      await n.claim(claim(receipt, claimant));
      await eventually(() => answered > 0, "the takeover's stake read");
      // The claim is considered in the validator's mailbox: once `stats` answers, it was.
      await n.stats();
    } finally {
      Ledger.prototype.account = account;
    }
    assert.equal(answered, 1, "asked once");
    assert.equal(tries(), 0, "an answer is not asked again");
    await n.closeWindow();
    assert.equal((await n.record(record.receiptId)).status, "final", "paid, as before");
    assert.equal((await n.stats()).takeovers, 0);
  }));

Deno.test("review s59: a claim kept for a ledger that stays stopped is dropped after a bounded number of tries: the trainer, not taken over, is paid here once the ledger is back (the written cost)", () => {
  // The validator's waits before a try again, fired here one by one: no wall-clock sleep races
  // them (a regression's extra try, later than the sleep, went unseen).
  const timers = new FakeTimers();
  // The claim's waits armed, ms. The intake's rechecks (`pledges_again`, every
  // PLEDGE_RECHECK_MS) wait on the same timers and are not what this test counts.
  const claimWaits = () =>
    [...timers.armed.values()].map(({ ms }) => ms).filter((ms) => ms !== PLEDGE_RECHECK_MS);
  return withWithholdingTrainer("gives-up", async (c) => {
    const { n, receipt, record } = c;
    const down = downAfterHoldReleased(c.ledgerDown);
    try {
      await n.claim(claim(receipt, c.claimant));
      // Each try is one `claims_again` but the first (made as the claim came); the last try's
      // round is the (MAX_END_ATTEMPTS - 1)th. Each round comes after exactly one wait,
      // `endRetryMs` (5 ms) doubling with the tries made.
      for (let round = 1; round <= MAX_END_ATTEMPTS - 1; round++) {
        await eventually(() => claimWaits().length > 0, `the wait before round ${round}`);
        await n.stats(); // the round that scheduled it has ended once `stats` answers
        assert.deepEqual(
          claimWaits(),
          [retryWait(5, round)],
          `one wait before round ${round}`,
        );
        assert.equal(c.tries(), round - 1);
        timers.fireAll();
        await eventually(() => c.tries() >= round, `round ${round}`);
      }
      await n.stats(); // the last round ran in the mailbox: it has ended once `stats` answers
      c.ledgerDown(false);
      // Nothing more is tried: no wait is scheduled after the last try, and none fires one.
      assert.deepEqual(claimWaits(), [], "bounded: no wait scheduled after the last try");
      timers.fireAll();
      await n.stats();
      assert.equal(c.tries(), MAX_END_ATTEMPTS - 1, "bounded: no try after the last");
    } finally {
      down.restore();
    }
    await n.closeWindow();
    assert.equal((await n.record(record.receiptId)).status, "final");
    assert.equal((await n.stats()).takeovers, 0, "never taken over: no budget spent");
  }, timers);
});
