/**
 * What the training validator keeps for a ledger that did not answer outlives a restart of the
 * validator, and a kept file damaged meanwhile costs only itself; a validator restarted while its
 * ledger does not answer still settles what a previous incarnation left.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Account } from "../../proof/ledger.ts";
import type { ReceiptRecord } from "../../proof/ledger_state.ts";
import { fromHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Connection } from "../../protocols/connection.ts";
import { ChallengeMismatchError, type SealedStepOpenings } from "../../training/step_opening.ts";
import type { InProcessTrainerEngine } from "../../training/trainer_engine.ts";
import {
  DEFAULT_OPENING_DEADLINE_MS,
  type TrainingChallenge,
  trainingChallengeId,
} from "../../training/training_challenge.ts";
import { checkTrainingFraudProof } from "../../training/training_fraud_proof.ts";
import type { TrainingGossip } from "../../protocols/training_messages.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import {
  TrainingValidator,
  type TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { TrainFunction } from "../../training/trainer_engine.ts";
import { shuffledDeltaTrainer } from "./_shuffled_delta.ts";
import { MAX_END_ATTEMPTS } from "../../training/_challenge_endings.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  assertPaid,
  claim,
  type ClaimNode,
  claimNode,
  creditWithholdingTrainer,
  STAKE,
  start,
  trainedEngine,
  TRAINER_STAKE,
  trainerLink,
} from "./_claim_node.ts";
import { ClaimTakeovers, KEPT_TRAINING_CLAIMS_DIR } from "../../training/_claim_takeovers.ts";
import { assertWithholderSlashed, takeoverSettled } from "./_claim_conviction.ts";
import {
  downAfterHoldReleased,
  ledgerDownSwitch,
  onLazyReceiptLedger,
  spawnTrainingLedger,
} from "./_training_ledger.ts";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { RoundModels } from "../../training/round_models.ts";
import { KEPT_OUTCOMES_DIR } from "../../training/_outcome_audits.ts";
import { KEPT_TRAINING_RECEIPTS_DIR } from "../../training/_receipt_credits.ts";
import { UNANSWERED_TRAINING_PROOFS_DIR } from "../../training/_unanswered_training_proofs.ts";

// ------------------------------------------------------------------------------------------------
// A training validator restarted alone (its supervisor restarts just it after a crash) while its
// ledger does not answer.
//
// At its start the training validator reads from the ledger what a previous incarnation left there:
// where each receipt stands whose own fraud proof was kept on disk (`receipt_status`), and which
// receipts are held `challenged` (`training_challenged`), to end those whose material was lost with
// the crash. Both reads took "no answer" as an answer: the kept proof was "left to the next start",
// the open challenges read as "none". The ValidatorActor leaves `challenged` a receipt whose own
// proof is kept (the training validator's to settle) and ends the others only at its own start, so
// with the ledger back the receipts stayed `challenged`, held by nobody, until the node's next
// start: the convicted lazy trainer was neither slashed nor paid here (its stake locked), while
// every other ledger slashed it; the trainer whose challenge the crash cut off had its stake locked
// and its receipt open past the window. Now an unanswered start read is asked again (the
// validator's `endRetryMs`, doubling, `MAX_END_ATTEMPTS` tries). Each test reads the ledger outcome
// after the window: the trainer's receipt status and account here.
// ------------------------------------------------------------------------------------------------

/** The ledger's registry name on a {@link claimNode}. */
const LEDGER = "node/validator";

/**
 * A {@link claimNode} whose ledger can be made to look stopped to the training validator
 * (`ledgerDown(true)`: its lookup finds none, as after `system.stop`) while the test still reads
 * it, or to leave unanswered only its reads of the challenges open there (`readsDown(true)`:
 * `training_challenged`, counted in `reads()`), and a trainer that trained one receipt, credited
 * here (paid when final), whose answer to a challenge is `answer`; a trainer has `windowMs` on the
 * wall clock to answer (a refusal is convicted when that deadline passes); undefined: the default
 * window, grown by the steps the challenge asks (`openingWindowMs`, 75 s for a receipt of H = 3).
 */
async function withTrainer(
  name: string,
  windowMs: number | undefined,
  answer: (context: {
    ledgerDown: (down: boolean) => void;
    challenge: TrainingChallenge;
    engine: InProcessTrainerEngine;
    asks: number;
  }) => Promise<SealedStepOpenings>,
  test: (context: {
    n: ClaimNode;
    record: ReceiptRecord;
    challenge: () => Promise<unknown>;
    ledgerDown: (down: boolean) => void;
    readsDown: (down: boolean) => void;
    reads: () => number;
    /** What the training validator asked the ledger, in order. */
    sent: { type: string; step?: unknown }[];
    /** The training validator's log lines, in order. */
    logs: string[];
  }) => Promise<void>,
  train?: TrainFunction,
): Promise<void> {
  let link: Connection | undefined;
  const logs: string[] = [];
  const n = await claimNode(`s59-restart-${name}`, () => link, windowMs, undefined, {
    log: (line) => logs.push(line),
    // No fixed window: each challenge's grows with its steps (`openingWindowMs`).
    ...(windowMs === undefined ? { openingDeadlineMs: undefined } : {}),
  });
  let down = false;
  let readsDown = false;
  let reads = 0;
  const sent: { type: string; step?: unknown }[] = [];
  const ledgerDown = (value: boolean) => down = value;
  try {
    const lookup = n.system.lookup.bind(n.system);
    n.system.lookup = ((registered: string) => {
      const ref = lookup(registered);
      if (registered !== LEDGER || ref === undefined) return ref;
      if (down) return undefined;
      // The same ledger, whose answers to `training_challenged` are counted (or left out).
      const counted = Object.create(ref);
      counted.tell = ref.tell.bind(ref);
      counted.ask = (message: { type: string; step?: unknown }, options?: unknown) => {
        sent.push({ type: message.type, step: message.step });
        if (message.type === "training_challenged" && reads++ >= 0 && readsDown) {
          return Promise.reject(new Error("the ledger did not answer (simulated)"));
        }
        return (ref.ask as (m: unknown, o?: unknown) => Promise<unknown>)(message, options);
      };
      return counted;
    }) as typeof n.system.lookup;
    const t = await trainedEngine(n.model.cid, 1, { train });
    let asks = 0;
    link = trainerLink(
      t.identity,
      (challenge) => answer({ ledgerDown, challenge, engine: t.engine, asks: ++asks }),
    ).connection;
    const { receipt, delta } = t.receipts[0];
    const record = await n.credited(receipt, Identity.generate());
    await test({
      n,
      record,
      challenge: async () => (await n.deltaComes(receipt, delta, link!)).result,
      ledgerDown,
      readsDown: (value) => readsDown = value,
      reads: () => reads,
      sent,
      logs,
    });
  } finally {
    await n.close();
  }
}

/**
 * A trainer whose first answer is cut off by the validator's restart (it is about to answer, as
 * {@link silent}), and that answers when asked again: honestly, from its engine (a lazy one's
 * trace is honest, its delta is not).
 */
function answersWhenAskedAgain(
  { challenge, engine, asks }: {
    challenge: TrainingChallenge;
    engine: InProcessTrainerEngine;
    asks: number;
  },
): Promise<SealedStepOpenings> {
  return asks === 1 ? silent() : engine.open(challenge);
}

/** Challenges the silent trainer ({@link silent}) was asked, all tests together. */
let silentAsked = 0;

/** A trainer about to answer its challenge: it never does within a test. */
function silent(): Promise<SealedStepOpenings> {
  silentAsked++;
  return new Promise(() => {});
}

/**
 * Wait for the silent trainer to be asked (more than `before` times) its challenge of `record`'s
 * receipt: held `challenged`
 * here, and the challenge's mark kept on disk (written before the challenge goes out).
 */
async function asked(n: ClaimNode, record: ReceiptRecord, before: number): Promise<void> {
  await eventually(() => silentAsked > before, "the trainer asked its challenge");
  assert.equal((await n.record(record.receiptId)).status, "challenged", "the challenge's hold");
}

/** Wait (bounded) for `record`'s receipt to stand `status` here; then close its window. */
async function settledAs(n: ClaimNode, record: ReceiptRecord, status: string): Promise<void> {
  await eventually(
    async () => (await n.record(record.receiptId)).status === status,
    `the receipt to end ${status}`,
    { timeoutMs: 10_000 },
  ).catch(() => {});
  await n.closeWindow();
}

Deno.test("a training validator restarted alone while its ledger does not answer still settles its kept own proof once the ledger is back: the lazy trainer is slashed here, not left challenged", () =>
  withTrainer(
    "kept-proof",
    400,
    ({ ledgerDown }) => {
      // The ledger stops as the lazy trainer refuses to open its steps: the conviction that
      // follows is kept on disk, and its settlement goes unanswered.
      ledgerDown(true);
      throw new ChallengeMismatchError("refused");
    },
    async ({ n, record, challenge, ledgerDown }) => {
      const outcome = await challenge() as { ok?: boolean; reason?: string };
      assert.equal(outcome.ok, false);
      assert.equal(outcome.reason, "opening_missing");
      // The training validator crashes and its supervisor restarts it, the ledger still down.
      await n.restartTraining();
      ledgerDown(false);
      await settledAs(n, record, "fraud");
      assert.equal(
        (await n.record(record.receiptId)).status,
        "fraud",
        "the lazy trainer was not slashed here",
      );
      assert.deepEqual(
        await n.account(fromHex(record.worker)),
        { balance: 0, stake: TRAINER_STAKE - record.locked, locked: 0 } satisfies Account,
      );
    },
  ));

// Review s80: the challenge a restart cut off was kept nowhere, and ended undecided at the start:
// the honest trainer went unpaid here (while a ledger that had not restarted paid it), and a lazy
// one escaped its slash. Now it is kept on disk while open (`_open_challenge_record.ts`) and the
// restarted validator asks the trainer the same signed challenge again.

Deno.test("a training validator restarted alone while its ledger does not answer asks the challenge the crash cut off again once the ledger is back: the honest trainer is paid, not left unpaid", () =>
  withTrainer(
    "open-challenge",
    // A deadline of a minute on the wall clock: the challenge does not end on it in the test.
    60_000,
    // The trainer is about to answer when the crash comes; asked again, it answers.
    answersWhenAskedAgain,
    async ({ n, record, challenge, ledgerDown }) => {
      const before = silentAsked;
      void challenge();
      await asked(n, record, before);
      // The training validator crashes and its supervisor restarts it, the ledger down.
      ledgerDown(true);
      await n.restartTraining();
      ledgerDown(false);
      await settledAs(n, record, "pending");
      await assertPaid(n, record);
    },
  ));

Deno.test("a training validator restarted alone whose ledger answered at its start asks the challenge the crash cut off again at once: the honest trainer is paid", () =>
  withTrainer(
    "answered",
    60_000,
    answersWhenAskedAgain,
    async ({ n, record, challenge, reads }) => {
      const before = silentAsked;
      void challenge();
      await asked(n, record, before);
      const first = reads();
      await n.restartTraining();
      await settledAs(n, record, "pending");
      await n.stats();
      assert.equal(reads() - first, 1, "read once");
      await assertPaid(n, record);
    },
  ));

Deno.test("a training validator restarted alone asks a lazy trainer the challenge the crash cut off again: its answer convicts it, the locked stake slashed, nothing paid", () =>
  withTrainer(
    "lazy",
    60_000,
    answersWhenAskedAgain,
    async ({ n, record, challenge }) => {
      const before = silentAsked;
      void challenge();
      await asked(n, record, before);
      await n.restartTraining();
      await settledAs(n, record, "fraud");
      await assertWithholderSlashed(
        n,
        record,
        fromHex(record.worker),
        "the lazy trainer was not slashed here",
      );
    },
    shuffledDeltaTrainer,
  ));

// Review s80 vtrn F1: silence after the re-ask ended undecided (`validator_restarted`: unpaid, the
// stake released) however much of the window the re-ask left, where silence on a first ask is an
// `opening_missing` proof: a lazy trainer kept its stake by staying silent whenever the validator
// restarted inside its window. Now a re-ask that left the trainer at least the shortest window a
// checker takes (60 s by default) convicts on silence as a first ask does; with less left it still
// ends undecided. These use the default windows (75 s for a receipt of H = 3); `Date.now`, the
// clock deadlines are on, is moved by hand (`wallClock`), never waited for.

/**
 * `Date.now` moved forward by `shift()` ms, restored by `restore()`: the wall clock challenges'
 * deadlines are on, for a test that must pass one without waiting.
 */
function wallClock(): { forward: (ms: number) => void; restore: () => void } {
  const real = Date.now;
  let shift = 0;
  Date.now = () => real() + shift;
  return { forward: (ms) => shift += ms, restore: () => Date.now = real };
}

/**
 * A lazy trainer silent to its challenge, which a restart cuts off; `restart()` restarts the
 * validator (moving the wall clock as it needs). The re-ask gets no answer: the test moves the
 * wall clock past the signed deadline and its request fails then, as a real connection's timeout
 * would (the test link has none). `test` reads the outcome.
 */
function silentThroughRestart(
  name: string,
  restart: (n: ClaimNode, clock: ReturnType<typeof wallClock>) => Promise<void>,
  test: (context: {
    n: ClaimNode;
    record: ReceiptRecord;
    challenge: TrainingChallenge;
    logs: string[];
  }) => Promise<void>,
): Promise<void> {
  const clock = wallClock();
  const reasked = Promise.withResolvers<TrainingChallenge>();
  const timedOut = Promise.withResolvers<never>();
  timedOut.promise.catch(() => {});
  return withTrainer(
    name,
    undefined,
    ({ challenge, asks }) => {
      if (asks === 1) return silent();
      reasked.resolve(challenge);
      return timedOut.promise;
    },
    async ({ n, record, challenge, logs }) => {
      const before = silentAsked;
      void challenge();
      await asked(n, record, before);
      await restart(n, clock);
      const asked2 = await reasked.promise;
      // Silent till the signed deadline: the request fails once it has passed.
      clock.forward(asked2.deadline - Date.now() + 1_000);
      timedOut.reject(new Error("request timed out (simulated)"));
      await eventually(
        async () => (await n.record(record.receiptId)).status !== "challenged",
        "the re-asked challenge to end",
      );
      await test({ n, record, challenge: asked2, logs });
    },
    shuffledDeltaTrainer,
  ).finally(clock.restore);
}

Deno.test("a lazy trainer silent to the challenge a restart cut off, re-asked with most of its window left, is slashed as on a first ask: fraud, its locked stake cut and burned, the accuser not charged, the proof confirmed by a checker that did not restart", () =>
  silentThroughRestart(
    "silent-reask",
    (n) => n.restartTraining().then(() => {}),
    async ({ n, record, challenge, logs }) => {
      assert.ok(
        challenge.deadline - challenge.issuedAt > DEFAULT_OPENING_DEADLINE_MS,
        "a window longer than the shortest a checker takes",
      );
      await assertWithholderSlashed(
        n,
        record,
        fromHex(record.worker),
        "the lazy trainer silent through a restart was not slashed",
      );
      // The proof the restarted validator made and passed on, as any other ledger checks it (the
      // default shortest window, the wall clock).
      const proofs = n.published
        .filter((g) => (g as TrainingGossip).kind === "fraud_proof")
        .map((g) => (g as Extract<TrainingGossip, { kind: "fraud_proof" }>).body.proof);
      assert.equal(proofs.length, 1, "one proof passed on");
      assert.equal(proofs[0].reason, "opening_missing");
      assert.equal(trainingChallengeId(proofs[0].challenge), trainingChallengeId(challenge));
      const elsewhere = await checkTrainingFraudProof(structuredClone(proofs[0]), {
        arch: TEST_ARCH,
        startWeights: start,
        now: Date.now,
      });
      assert.equal(elsewhere.reason, "confirmed");
      // The accuser keeps its whole stake (no false-accusation charge) and earns nothing: an
      // `opening_missing` rests on its word, so its slash is burned (`wordOnly`), as on a first ask.
      assert.deepEqual(
        await n.account(n.identity.publicKey),
        { balance: 0, stake: STAKE, locked: 0 } satisfies Account,
        "the accuser charged, or rewarded for its word",
      );
      assert.ok(
        logs.some((line) => line.includes("no answer convicts, as on a first ask")),
        JSON.stringify(logs),
      );
    },
  ));

Deno.test("a trainer silent to the challenge a restart cut off, re-asked with less than the shortest window a checker takes left (a late restart), is not convicted: undecided, unpaid, its stake whole", () =>
  silentThroughRestart(
    "late-reask",
    // The restart takes 20 s of the 75 s window: under 60 s left when the trainer is asked again.
    (n, clock) => n.restartTraining(() => clock.forward(20_000)).then(() => {}),
    async ({ n, record, logs }) => {
      assert.equal(
        n.published.filter((g) => (g as TrainingGossip).kind === "fraud_proof").length,
        0,
        "no proof passed on",
      );
      await n.closeWindow();
      assert.equal((await n.record(record.receiptId)).status, "unpaid");
      assert.deepEqual(
        await n.account(fromHex(record.worker)),
        { balance: 0, stake: TRAINER_STAKE, locked: 0 } satisfies Account,
      );
      assert.equal((await n.account(n.identity.publicKey)).balance, 0, "nobody paid");
      assert.ok(
        logs.some((line) => line.includes("no answer ends undecided")),
        JSON.stringify(logs),
      );
    },
  ));

/**
 * A restarted training validator whose start read of the open challenges went unanswered
 * challenges the honest trainer before the read comes back; with `race`, the read's answer
 * (listing that challenge) reaches the validator while the challenge's own ending (passed) is
 * being asked, so the challenge is not held there at that moment. Either way the read must leave
 * the challenge to this incarnation: the honest trainer is paid.
 */
function ownChallenge(name: string, race: boolean): Promise<void> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  return withTrainer(
    name,
    60_000,
    async ({ challenge, engine }) => {
      await released;
      return await engine.open(challenge);
    },
    async ({ n, record, challenge, readsDown, reads, sent }) => {
      // The start's reads again wait (each `resume_again` told again later, not run) until
      // `gated` is false: the challenge below opens before the read that comes back, however
      // long it takes on a loaded machine.
      const receive = TrainingValidator.prototype.receive;
      const ledgerReceive = ValidatorActor.prototype.receive;
      let gated = true;
      TrainingValidator.prototype.receive = function (message, ctx) {
        if (gated && message.type === "resume_again") {
          setTimeout(() => ctx.self.tell(message).catch(() => {}), 10);
          return Promise.resolve();
        }
        return receive.call(this, message, ctx);
      };
      if (race) {
        // The ledger lists the open challenges, then, before its answer goes back, the trainer
        // answers and the challenge's passed ending is asked (it waits behind this answer).
        ValidatorActor.prototype.receive = async function (message, ctx) {
          const answer = await ledgerReceive.call(this, message, ctx);
          if (message.type === "training_challenged" && !gated) {
            assert.deepEqual(answer, [record.receiptId]);
            release();
            await eventually(
              () => sent.some((m) => m.type === "training_challenge" && m.step === "passed"),
              "the challenge's passed ending asked",
            );
          }
          return answer;
        };
      }
      try {
        // Restarted alone, its read of the open challenges unanswered: read again later.
        readsDown(true);
        const before = reads();
        await n.restartTraining();
        assert.equal(reads(), before + 1, "read at the start, unanswered");
        // Meanwhile this incarnation challenges the honest trainer: held `challenged`.
        const result = challenge();
        await eventually(
          async () => (await n.record(record.receiptId)).status === "challenged",
          "the challenge's hold",
        );
        // The read is answered now, listing the challenge: this incarnation's own, left alone.
        readsDown(false);
        gated = false;
        await eventually(() => reads() > before + 1, "the read again");
        await n.stats(); // the read's round ran in the mailbox: it has ended once `stats` answers
        if (!race) {
          assert.equal((await n.record(record.receiptId)).status, "challenged", "ended as lost");
          release();
        }
        assert.deepEqual(await result, { challenged: true, ok: true });
      } finally {
        TrainingValidator.prototype.receive = receive;
        ValidatorActor.prototype.receive = ledgerReceive;
      }
      await assertPaid(n, record);
      assert.equal(
        sent.filter((m) => m.type === "training_challenge" && m.step === "undecided").length,
        0,
        "this incarnation's challenge was ended as a lost one",
      );
    },
  );
}

Deno.test("a challenge the restarted training validator opened while its start read went unanswered is its own: the read that comes back does not end it, and the honest trainer is paid", () =>
  ownChallenge("own-challenge", false));

Deno.test("a challenge the restarted training validator opened while its start read went unanswered, whose passed ending is being asked as the read comes back, is not ended as lost: the honest trainer is paid", () =>
  ownChallenge("own-ending", true));

Deno.test("a start read the ledger never answers is asked a bounded number of times: the challenge the crash cut off stays challenged, as before the fix (the written cost)", () =>
  withTrainer(
    "gives-up",
    60_000,
    silent,
    async ({ n, record, challenge, readsDown, reads, logs }) => {
      const before = silentAsked;
      void challenge();
      await asked(n, record, before);
      readsDown(true);
      const first = reads();
      const logged = logs.length;
      await n.restartTraining();
      await eventually(() => reads() - first >= MAX_END_ATTEMPTS, "the tries to run out");
      await n.stats(); // the last read's round ran in the mailbox: it has ended once `stats` answers
      // Nothing more is read: each read again is scheduled with one `read again` line, in the
      // round of the read before it, and the last read's round leaves them to the next start
      // instead. Read from the log, not by sleeping past the next wait on the wall clock (an extra
      // read, later than the sleep, went unseen).
      const resume = logs.slice(logged).filter((line) =>
        line.includes("the challenges left open before this start")
      );
      assert.equal(
        resume.filter((line) => line.includes("not read, read again")).length,
        MAX_END_ATTEMPTS - 1,
        "a read again scheduled after each read but the last",
      );
      assert.match(
        resume.at(-1) ?? "",
        /left to the next start/,
        "bounded: no read after the last",
      );
      assert.equal(reads() - first, MAX_END_ATTEMPTS, "bounded: no read after the last");
      readsDown(false);
      await n.closeWindow();
      assert.equal((await n.record(record.receiptId)).status, "challenged");
    },
  ));

// ------------------------------------------------------------------------------------------------
// What a training validator keeps for a ledger that did not answer outlives a restart of the
// training validator.
//
// The training validator keeps, and takes again, a peer's fraud proof whose intake the ledger (the
// ValidatorActor) did not answer (`training/_unanswered_training_proofs.ts`) and a peer's true
// `opening_missing` claim whose takeover's ledger asks went unanswered
// (`training/_claim_takeovers.ts`). Both were kept in memory only: a stop or a restart of the
// training validator while one was kept lost it, nothing brought it back, and the lazy (or
// withholding) trainer every other ledger slashed was paid in this one. Each test restarts the
// training validator on the same ledger directory while the item is kept and reads the ledger
// outcome after the window: the trainer's receipt status and stake here.
// ------------------------------------------------------------------------------------------------

/**
 * A peer's proof kept because the ledger did not answer its intake, the training validator then
 * restarted (`killed`: its `postStop` does not run, as when the process is killed) and the ledger
 * back: the lazy trainer slashed here after the window.
 */
async function keptProofAcrossRestart(name: string, killed: boolean): Promise<void> {
  await onLazyReceiptLedger(`s60-kept-proof-${name}`, {}, async (lazy) => {
    const postStop = TrainingValidator.prototype.postStop;
    try {
      // The round's outcome credited the lazy receipt here: paid when its window closes.
      await lazy.credit();
      // The ledger is stopped when a peer's proof comes: kept, to take again.
      lazy.down(true);
      const taken = await lazy.send();
      assert.ok(
        lazy.log.some((l) => l.includes("kept, the ledger did not answer its intake")),
        `kept (${JSON.stringify(taken)})`,
      );
      // The training validator restarts (its supervisor, or the node) while the proof is kept;
      // the ledger comes back after.
      if (killed) TrainingValidator.prototype.postStop = () => Promise.resolve();
      await lazy.restartTraining();
      TrainingValidator.prototype.postStop = postStop;
      lazy.down(false);
      await lazy.slashed("the lazy trainer was paid here");
    } finally {
      TrainingValidator.prototype.postStop = postStop;
    }
  });
}

Deno.test("a peer's confirmed fraud proof kept because the ledger did not answer its intake outlives a restart of the training validator: the lazy trainer is slashed here", () =>
  keptProofAcrossRestart("stopped", false));

Deno.test("a peer's confirmed fraud proof kept because the ledger did not answer its intake is on disk before it counts as kept: a training validator killed (no stop hook) and started again still slashes the lazy trainer here", () =>
  keptProofAcrossRestart("killed", true));

Deno.test("a true opening_missing claim kept because the ledger did not answer its takeover outlives a restart of the training validator: the withholding trainer is convicted here", async () => {
  let link: ReturnType<typeof trainerLink>["connection"] | undefined;
  const n = await claimNode("s60-kept-claim", () => link);
  const consider = ClaimTakeovers.prototype.consider;
  let considered = 0;
  const ledgerDown = ledgerDownSwitch(n.system);
  const down = downAfterHoldReleased(ledgerDown);
  try {
    ClaimTakeovers.prototype.consider = function (body, ctx) {
      return consider.call(this, body, ctx).finally(() => considered++);
    };
    const { receipt, record, claimant } = await creditWithholdingTrainer(n, (to) => link = to);
    await n.claim(claim(receipt, claimant));
    // Checked (confirmed: a claim), then considered with the ledger down: kept.
    await eventually(() => considered >= 1, "the claim to be considered");
    assert.equal(down.armed(), false, "the ledger was down for the takeover");
    // The training validator restarts while the claim is kept; the ledger comes back after.
    await n.restartTraining();
    ledgerDown(false);
    await takeoverSettled(async () => (await n.record(record.receiptId)).status === "fraud");
    await assertWithholderSlashed(n, record, receipt.trainer);
  } finally {
    ClaimTakeovers.prototype.consider = consider;
    down.restore();
    await n.close();
  }
});

// ------------------------------------------------------------------------------------------------
// What a training validator kept on disk for a ledger that did not answer (the claims, the peers'
// receipts, the round outcomes and credits, `training/_ledger_retries.ts`; the peers' proofs whose
// intake went unanswered, `training/_unanswered_training_proofs.ts`) is read back at the next
// start, untrusted. A file damaged meanwhile (cut short, not CBOR, CBOR of the wrong shape) must
// cost only itself: the validator starts, drops it (a line in the log for one that decodes, `a
// damaged kept … dropped`), and the folder no longer holds it once the owner writes it again (the
// claims' at this very start).
// ------------------------------------------------------------------------------------------------

/** The folders of what is kept for a ledger that did not answer, under the ledger's directory. */
const FOLDERS = [
  KEPT_TRAINING_CLAIMS_DIR,
  KEPT_OUTCOMES_DIR,
  KEPT_TRAINING_RECEIPTS_DIR,
  UNANSWERED_TRAINING_PROOFS_DIR,
];

/** Damaged files, by name (a proof hash, as the kept files are named). */
function damagedFiles(): Map<string, Uint8Array> {
  const whole = encodeCanonical({ body: { proof: { reason: "opening_missing" } }, origin: "ee" });
  return new Map([
    // Cut short (a disk that lost the file's tail).
    [`${"a1".repeat(32)}.cbor`, whole.subarray(0, Math.floor(whole.length / 2))],
    // Not CBOR at all.
    [`${"b2".repeat(32)}.cbor`, new TextEncoder().encode("\xff\xfe not cbor \x00\x01")],
    // CBOR of the wrong shape: an entry, but not of anything kept.
    [`${"c3".repeat(32)}.cbor`, encodeCanonical({ body: { x: 1 }, origin: 7, since: "then" })],
    // CBOR, not an entry.
    [`${"d4".repeat(32)}.cbor`, encodeCanonical([1, 2, 3])],
  ]);
}

Deno.test("damaged files among what the training validator kept for a ledger that did not answer (cut short, not CBOR, the wrong shape) do not stop its start: dropped, logged when they decode, the claims' folder cleared at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s61-damaged-kept-" });
  const system = new ActorSystem({ name: "s61-damaged-kept" });
  const log: string[] = [];
  try {
    const ledgerDir = join(dir, "ledger");
    for (const folder of FOLDERS) {
      await Deno.mkdir(join(ledgerDir, folder), { recursive: true });
      for (const [name, bytes] of damagedFiles()) {
        await Deno.writeFile(join(ledgerDir, folder, name), bytes);
      }
    }
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const { training } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now: () => 1_000_000,
      models,
      challenge: { log: (line) => log.push(line), endRetryMs: 5 },
      resumeOwnProofs: true,
    });
    // Started, and answering.
    const stats = await training.ask<TrainingValidatorStats>({ type: "stats" });
    assert.equal(stats.checked, 0);
    for (const what of ["claim", "outcome", "receipt"]) {
      assert.ok(
        log.some((line) => line.includes(`a damaged kept ${what} dropped`)),
        `a damaged kept ${what} logged: ${JSON.stringify(log)}`,
      );
    }
    assert.ok(!log.some((line) => line.includes("not read back")), JSON.stringify(log));
    // The claims' folder is written at the start (`ClaimTakeovers.keepOnDisk`): nothing damaged left.
    const left = await Array.fromAsync(Deno.readDir(join(ledgerDir, KEPT_TRAINING_CLAIMS_DIR)));
    assert.deepEqual(left.map((entry) => entry.name), []);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
