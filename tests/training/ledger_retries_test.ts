/**
 * The training validator in front of a ledger that does not answer (`training/_ledger_retries.ts`):
 * a peer's proof, claim or receipt, and this validator's own proof, are kept and taken again once
 * the ledger answers, never read as an answer; and a kept claim is charged once.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Account, Ledger } from "../../proof/ledger.ts";
import { eventually } from "../_helpers/wait.ts";
import { MAX_END_ATTEMPTS } from "../../training/_challenge_endings.ts";
import {
  downAfterHoldReleased,
  type LazyReceiptRun,
  ledgerDownSwitch,
  onLazyReceiptLedger,
  spawnLazyReceiptLedger,
} from "./_training_ledger.ts";
import type { ReceiptRecord } from "../../proof/ledger_state.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import type { Identity } from "../../protocols/identity.ts";
import { ClaimTakeovers } from "../../training/_claim_takeovers.ts";
import { retryWait } from "../../training/_ledger_retries.ts";
import { PLEDGE_RECHECK_MS } from "../../training/_pledge_held_training_proofs.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import {
  claim,
  type ClaimNode,
  claimNode,
  creditWithholdingTrainer,
  STAKE,
  TRAINER_STAKE,
  type trainerLink,
  type WithholdingTrainer,
} from "./_claim_node.ts";
import { assertWithholderSlashed, takeoverSettled } from "./_claim_conviction.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { LAZY_TRAINER_STAKE } from "./_loss_fraud.ts";
import { MAX_UNBACKED_CHECKS_PER_RECEIPT } from "../../actors/_unbacked_checks.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";

// ------------------------------------------------------------------------------------------------
// A peer's fraud proof whose intake asks a ledger that does not answer.
//
// The intake (`training/_training_proof_intake.ts`, `admit`) asks the ledger where the proof's
// receipt stands; an ask that went unanswered (the ValidatorActor crashed on a failed read and
// restarts) read as "receipt unknown here", and the proof was held for its receipt: released only
// when the ledger records that receipt again, which, recorded already, it never does. The lazy
// trainer, slashed in every other ledger, is paid in this one. The test reads the ledger outcome:
// the lazy receipt's status and the trainer's stake here.
// ------------------------------------------------------------------------------------------------

/**
 * A ledger and a training validator on a test clock (retries 5 ms, doubling), a lazy receipt
 * credited there (paid when final) and a staked accuser's confirmed proof against it
 * ({@link onLazyReceiptLedger}, its own proofs kept in memory only); `down(true)` makes the
 * ledger look stopped to the training validator (its lookup finds none, as after `system.stop`)
 * while the test still reads it. `send` hands the proof over as a peer's; `assert` reads the
 * ledger outcome after the window: the lazy trainer slashed here.
 */
async function withLazyReceipt(
  name: string,
  test: (
    context: Omit<LazyReceiptRun, "assertSlashed"> & {
      assertSlashed: (taken: unknown) => Promise<void>;
    },
  ) => Promise<void>,
): Promise<void> {
  await onLazyReceiptLedger(`s59-intake-${name}`, { resumeOwnProofs: false }, async (lazy) => {
    // The round's outcome credited the lazy receipt here: paid when its window closes.
    await lazy.credit();
    await test({
      ...lazy,
      assertSlashed: (taken) =>
        lazy.slashed(
          `the lazy trainer was paid here (the intake answered ${JSON.stringify(taken)})`,
        ),
    });
  });
}

Deno.test("a peer's confirmed fraud proof whose intake found the ledger restarting (a failed read of where its receipt stands) still slashes the lazy trainer here", () =>
  withLazyReceipt("restarting", async ({ id, send, assertSlashed }) => {
    const receipt = Ledger.prototype.receipt;
    let failures = 0;
    try {
      // The intake's read of where the receipt stands fails once, as a disk does: the
      // ValidatorActor crashes, and its supervisor restarts it.
      Ledger.prototype.receipt = function (receiptId: string) {
        if (receiptId === id) {
          Ledger.prototype.receipt = receipt;
          failures++;
          throw Object.assign(new Error("Input/output error (simulated)"), { code: "EIO" });
        }
        return receipt.call(this, receiptId);
      };
      const taken = await send();
      assert.equal(failures, 1, "the read failed once");
      await assertSlashed(taken);
    } finally {
      Ledger.prototype.receipt = receipt;
    }
  }));

Deno.test("a peer's confirmed fraud proof handed over while this node's ledger is stopped is taken again once the ledger is back: the lazy trainer is slashed here too", () =>
  withLazyReceipt("stopped", async ({ down, send, assertSlashed }) => {
    down(true);
    const taken = await send();
    down(false);
    await assertSlashed(taken);
  }));

Deno.test("a peer's fraud proof kept for a ledger that stays stopped is dropped after a bounded number of tries: the lazy trainer goes unslashed here (the written cost)", () =>
  withLazyReceipt("gives-up", async (c) => {
    c.down(true);
    await c.send();
    await eventually(
      () => c.log.some((l) => l.includes("dropped") && l.includes(`(${MAX_END_ATTEMPTS} tries)`)),
      "the tries to run out",
    );
    const kept = c.log.filter((l) => l.includes("kept, the ledger did not answer its intake"));
    assert.equal(kept.length, MAX_END_ATTEMPTS - 1, "kept after each try but the last");
    c.down(false);
    await c.closeWindow();
    const record = await c.record();
    assert.equal(record.status, "final", "never checked here: paid, as before the fix");
    assert.equal((await c.trainer()).balance, record.credit);
  }));

// ------------------------------------------------------------------------------------------------
// A peer's true `opening_missing` claim (the trainer refused to open its sampled steps to the
// claimant) whose takeover asks a ledger that does not answer.
//
// Whether a claim is taken over asks the ledger where the receipt stands and this validator's own
// stake (`training/_claim_takeovers.ts`, `#requestFor`). Both asks read "no answer" as an answer:
// the receipt "not pending", this validator "unstaked". A claim is passed on once, so it never came
// again, and the withholding trainer, convicted in every ledger that took the claim over, was paid
// in this one (receipt `final` instead of `fraud`). Now such a claim is kept and considered again
// once the ledger answers (bounded); an answer stays final. Each test reads the ledger outcome: the
// trainer's receipt status and stake here.
// ------------------------------------------------------------------------------------------------

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

Deno.test("a true opening_missing claim whose takeover found the ledger restarting (a failed read of this validator's stake) still convicts the withholding trainer here", () =>
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

Deno.test("a true opening_missing claim whose takeover found the ledger stopped (where its receipt stands, unanswered) is considered again once the ledger is back, and convicts the withholding trainer here", () =>
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

Deno.test("a claim whose takeover the ledger refused (it answered: this validator has no stake there) is not kept nor tried again: the trainer is not slashed here on the claimant's word", () =>
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

Deno.test("a claim kept for a ledger that stays stopped is dropped after a bounded number of tries: the trainer, not taken over, is paid here once the ledger is back (the written cost)", () => {
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

// ------------------------------------------------------------------------------------------------
// This validator's own proof (its takeover's `opening_missing`) whose intake read of where the
// receipt stands went unanswered (the ValidatorActor crashed and restarts). The intake refused it
// like a peer's proof (`receipt_unknown`), and `FraudProofChecks.take` ended its own challenge
// `undecided` at once: the withholding trainer was left unpaid here but not slashed, though the
// conviction was this validator's own. Now an own proof goes on to its settlement, which is asked
// again while the ledger does not answer (`training/_training_proof_intake.ts`). The test reads the
// ledger outcome: the trainer's receipt status and stake here.
// ------------------------------------------------------------------------------------------------

Deno.test("this validator's own opening_missing whose intake found the ledger restarting (a failed read of where its receipt stands) still convicts the withholding trainer here", async () => {
  let link: ReturnType<typeof trainerLink>["connection"] | undefined;
  const n = await claimNode("s59-own-proof-down", () => link);
  const receive = ValidatorActor.prototype.receive;
  try {
    const { receipt, record, claimant } = await creditWithholdingTrainer(n, (to) => link = to);
    let opened = false;
    let failed = 0;
    // Once the takeover held the receipt, the next read of where it stands (the own proof's
    // intake, after the trainer's deadline) fails as a disk does: the ValidatorActor crashes.
    ValidatorActor.prototype.receive = function (message, ctx) {
      if (message.type === "training_challenge" && message.step === "open") opened = true;
      if (
        opened && failed === 0 && message.type === "receipt_status" &&
        message.receiptId === record.receiptId && !("byTest" in message)
      ) {
        failed++;
        throw Object.assign(new Error("Input/output error (simulated)"), { code: "EIO" });
      }
      return receive.call(this, message, ctx);
    };
    // The test's own reads are marked: only the training validator's read fails.
    const status = async () =>
      (await n.ledger.ask<{ status: string }>({
        type: "receipt_status",
        receiptId: record.receiptId,
        byTest: true,
      } as { type: "receipt_status"; receiptId: string }))?.status;
    await n.claim(claim(receipt, claimant));
    await takeoverSettled(async () => (await status()) === "fraud");
    ValidatorActor.prototype.receive = receive;
    assert.equal(failed, 1, "the own proof's read failed once");
    await assertWithholderSlashed(
      n,
      record,
      receipt.trainer,
      "the withholding trainer was not slashed here",
    );
  } finally {
    ValidatorActor.prototype.receive = receive;
    await n.close();
  }
});

// ------------------------------------------------------------------------------------------------
// A peer's gossiped training receipt that reaches the training validator while its ledger (the
// ValidatorActor) does not answer.
//
// `ReceiptCredits.record` (`training/_receipt_credits.ts`) took "no answer" as "not recorded, not
// new": the receipt was neither recorded here nor passed on (gossip stopped at this node), and
// nothing asked again. A receipt is recorded uncredited so that a fraud proof can slash the stake
// it locks: a peer's proof about it then found its receipt unknown here, was held for a receipt
// that never came, and the lazy trainer every other ledger slashed kept its stake in this one (and
// in every node that hears of the receipt only through this one). The test reads the ledger
// outcome: the receipt's status and the trainer's stake here, and whether the receipt was passed
// on.
// ------------------------------------------------------------------------------------------------

/** The relaying peers (hex keys). */
const RELAY = "ee".repeat(32);
const ACCUSER_RELAY = "dd".repeat(32);

/**
 * A ledger and a training validator on a test clock (retries 5 ms, doubling); `restart` says
 * whether the training validator restarts while the receipt is kept. Returns nothing: asserts.
 */
async function receiptWhileLedgerDown(name: string, restart: boolean): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-s60-receipt-${name}-` });
  const system = new ActorSystem({ name: `s60-receipt-${name}` });
  const clock = 1_000_000;
  const told: NetworkMessage[] = [];
  try {
    const { down, model, ledger, training, restartTraining, proof, id } =
      await spawnLazyReceiptLedger(system, dir, { now: () => clock, told });
    const record = () =>
      ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id });
    // The receipt's gossip comes while the ledger does not answer.
    down(true);
    await training.ask({
      type: "receipt",
      body: {
        receipt: proof.receipt,
        terms: { round: 0, startModel: model.cid, steps: proof.receipt.steps },
      },
      origin: RELAY,
    });
    const now = restart ? await restartTraining() : training;
    down(false);
    // The accuser's proof comes once the ledger is back.
    await eventually(async () => (await record()) !== undefined, "the receipt recorded here", {
      timeoutMs: 5_000,
    }).catch(() => {});
    await now.ask({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: ACCUSER_RELAY,
    });
    await eventually(
      async () => (await record())?.status === "fraud",
      "the proof to settle",
      { timeoutMs: 10_000 },
    ).catch(() => {});
    assert.equal((await record())?.status, "fraud", "the lazy trainer is convicted here");
    const trainer = await ledger.ask<Account>({ type: "account", key: proof.receipt.trainer });
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "the lazy trainer's stake is cut here");
    assert.ok(
      told.some((m) => {
        const gossip = (m as { type: string; gossip?: { kind: string } }).gossip;
        return m.type === "publish_training" && gossip?.kind === "receipt";
      }),
      "the receipt was passed on",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a peer's training receipt gossiped while this node's ledger is stopped is recorded and passed on once the ledger is back: a later fraud proof slashes the lazy trainer here too", () =>
  receiptWhileLedgerDown("stopped", false));

Deno.test("a peer's training receipt kept for a stopped ledger outlives a restart of the training validator: a later fraud proof slashes the lazy trainer here too", () =>
  receiptWhileLedgerDown("restart", true));

// ------------------------------------------------------------------------------------------------
// A peer's `opening_missing` claim kept because the ledger did not answer its takeover
// (`training/_claim_takeovers.ts`, kept on disk) is read back at the next start and goes through
// the intake and its check again, as a peer's proof from its claimant.
//
// Who pays for the second pass. A claimant short of free stake here (pledged, its stake spent) has
// its claim checked unbacked, against its receipt's unbacked budget (`actors/_unbacked_checks.ts`:
// three checks per receipt, ever, kept across a restart). The claim's check was charged there
// before the stop; read back, the same proof was charged again, and again at each restart the
// ledger was down for its takeover: after a few, the receipt's budget was spent on one claim, the
// claim itself was refused (`unstaked_accuser`), nothing took it over, and the withholding trainer,
// convicted in every ledger that took the claim over, was paid in this one. The taken proofs kept
// on disk are not counted twice (`TakenTrainingProofs.lessKept`); the kept claims were.
//
// And what passing it on again costs the peers: a receiver that already took the claim takes it as
// a copy it has seen (no second check, no unbacked check, no takeover), and the ledger outcome
// there is the one the first copy made.
// ------------------------------------------------------------------------------------------------

/**
 * What a claimant short of stake pledged here: below a false accusation's penalty, its claims are
 * checked unbacked.
 */
const SHORT_STAKE = DEFAULT_ECONOMICS.falseAccusationPenalty / 2;
/**
 * Restarts, the claim kept at each but the last: charged once per pass before the fix, the claim's
 * own passes spent all its receipt's unbacked checks, and the last read-back was refused.
 */
const RESTARTS = MAX_UNBACKED_CHECKS_PER_RECEIPT;

Deno.test("a claim checked unbacked and kept because the ledger did not answer its takeover is not charged to its receipt's unbacked budget again at each restart: read back after three restarts it is still taken over and the withholding trainer is convicted here", async () => {
  let link: ReturnType<typeof trainerLink>["connection"] | undefined;
  const n = await claimNode("s61-kept-claim-charge", () => link);
  const consider = ClaimTakeovers.prototype.consider;
  let considered = 0;
  const ledgerDown = ledgerDownSwitch(n.system);
  let down = downAfterHoldReleased(ledgerDown);
  try {
    ClaimTakeovers.prototype.consider = function (body, ctx) {
      return consider.call(this, body, ctx).finally(() => considered++);
    };
    const { receipt, claimant } = await creditWithholdingTrainer(n, (to) => link = to, SHORT_STAKE);
    const id = trainingReceiptId(receipt);
    // Checked unbacked (one of the receipt's three), confirmed, then considered with the ledger
    // down: kept.
    await n.claim(claim(receipt, claimant));
    await eventually(() => considered >= 1, "the claim to be considered");
    assert.equal(down.armed(), false, "the ledger was down for the takeover");
    // Three restarts, the ledger back before each and down again for the takeover: the claim is
    // read back, checked again, considered and kept again each time.
    for (let restart = 1; restart <= RESTARTS; restart++) {
      down.restore();
      ledgerDown(false);
      down = downAfterHoldReleased(ledgerDown);
      await n.restartTraining();
      if (restart < RESTARTS) {
        await eventually(
          () => considered >= restart + 1,
          `the claim considered again (${restart})`,
        );
        assert.equal(down.armed(), false, "the ledger was down for the takeover again");
      }
    }
    // The last start: the ledger answers; the claim read back is taken over, the trainer refuses.
    down.restore();
    ledgerDown(false);
    await eventually(
      async () => (await n.record(id)).status === "fraud",
      "the takeover's own proof to settle",
      { timeoutMs: 10_000 },
    ).catch(() => {});
    await n.closeWindow();
    assert.equal((await n.record(id)).status, "fraud", "the withholding trainer was paid here");
    const trainer = await n.account(receipt.trainer);
    assert.equal(trainer.balance, 0, "nothing paid");
    assert.ok(trainer.stake < TRAINER_STAKE, "its stake is cut");
  } finally {
    ClaimTakeovers.prototype.consider = consider;
    down.restore();
    await n.close();
  }
});

Deno.test("a claim passed on again (a peer's restart read it back) costs the receiver nothing: no second check, no second unbacked check, no second takeover, and the ledger outcome stands", async () => {
  let link: ReturnType<typeof trainerLink>["connection"] | undefined;
  const n = await claimNode("s61-claim-again", () => link);
  const takeover = ClaimTakeovers.prototype.consider;
  let considered = 0;
  try {
    ClaimTakeovers.prototype.consider = function (body, ctx) {
      return takeover.call(this, body, ctx).finally(() => considered++);
    };
    const { receipt, claimant } = await creditWithholdingTrainer(n, (to) => link = to, SHORT_STAKE);
    const id = trainingReceiptId(receipt);
    const proof = claim(receipt, claimant);
    await n.claim(proof);
    await eventually(() => considered >= 1, "the claim to be considered");
    await eventually(
      async () => (await n.record(id)).status === "fraud",
      "the takeover's own proof to settle",
      { timeoutMs: 10_000 },
    );
    const before = await n.stats();
    const claimantBefore = await n.account(claimant.publicKey);
    // The same claim again, as a peer that read it back after a restart passes it on.
    const again = await n.claim(structuredClone(proof));
    assert.equal(again.queued, false, `taken as a copy already seen (${JSON.stringify(again)})`);
    const after = await n.stats();
    assert.equal(after.checked, before.checked, "not checked again");
    assert.equal(after.takeovers, before.takeovers, "not taken over again");
    assert.equal(considered, 1, "not considered again");
    assert.deepEqual(await n.account(claimant.publicKey), claimantBefore, "the claimant's stake");
    await n.closeWindow();
    assert.equal((await n.record(id)).status, "fraud");
    const trainer: Account = await n.account(receipt.trainer);
    assert.equal(trainer.balance, 0, "nothing paid");
    assert.equal(trainer.locked, 0);
    assert.ok(trainer.stake < TRAINER_STAKE, "its stake is cut");
  } finally {
    ClaimTakeovers.prototype.consider = takeover;
    await n.close();
  }
});
