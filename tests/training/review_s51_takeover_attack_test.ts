/**
 * Stop 51 review: attacks on the takeover of a peer's `opening_missing` claim
 * (`training/_claim_takeovers.ts`, `TrainingChallengeRun.takeover`). Each test drives a ledger and
 * a training validator on one test clock (as `review_s51_claim_takeover_test.ts`, whose node
 * stand-in is copied here) and asserts who ends up paid or slashed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Actor } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import type { Connection } from "../../protocols/connection.ts";
import { sha256Hex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { ChallengeMessage, OpeningPartMessage } from "../../protocols/training_messages.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/local_trainer.ts";
import { RoundModels } from "../../training/round_models.ts";
import { ChallengeMismatchError, openChallengedSteps } from "../../training/step_opening.ts";
import {
  DEFAULT_OPENING_DEADLINE_MS,
  drawTrainingChallenge,
  type TrainingChallenge,
  trainingChallengeId,
} from "../../training/training_challenge.ts";
import {
  signTrainingFraudProof,
  TRAINING_FRAUD_PROOF_VERSION,
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import { type TrainingReceipt, trainingReceiptId } from "../../training/training_receipt.ts";
import type {
  TrainingValidatorMessage,
  TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { randomDeltaTrainer } from "./_pot_lazy_trainers.ts";
import { toHex } from "../../protocols/hash.ts";
import { InProcessTrainerEngine } from "../../training/trainer_engine.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
const STAKE = 10 * PENALTY;
const TRAINER_STAKE = 10_000_000;
/** The ledger clock's start (ms): a fixed clock, never the wall's. */
const START = 1_000_000;
/** The validator's own answer window. */
const WINDOW_MS = 400;
const H = 3;
const PEER = "ee".repeat(32);

const split = await testSplit();
const start = seededGptWeights(TEST_ARCH, 0);

/**
 * A lazy trainer: it signs a receipt over states it never trained (a random delta, states
 * interpolated to it: `randomDeltaTrainer`), keeps those states, and answers every challenge
 * consistently with what it committed — its openings are signed, openable and open the receipt's
 * commitments; only a re-run of a step shows they are not training.
 */
function lazyTrainer(startModel: string) {
  const identity = Identity.generate();
  const { report, trace } = randomDeltaTrainer({
    arch: TEST_ARCH,
    startModel,
    start,
    shard: split.shards[0],
    steps: H,
    dataSeed: 11,
    hyper: TEST_HYPER,
    identity,
  });
  const challenges: TrainingChallenge[] = [];
  const answers = new Map<string, Uint8Array>();
  const connection = {
    peerKey: identity.publicKey,
    closed: new Promise(() => {}),
    request: async (definition: unknown, body: Record<string, unknown>) => {
      if (definition === ChallengeMessage) {
        const challenge = body.challenge as TrainingChallenge;
        challenges.push(challenge);
        const bytes = encodeCanonical(await openChallengedSteps(trace, challenge));
        answers.set(trainingChallengeId(challenge), bytes);
        return { size: bytes.length, parts: 1, sha256: sha256Hex(bytes) };
      }
      if (definition === OpeningPartMessage) {
        return { bytes: answers.get(body.challengeId as string)! };
      }
      throw new Error("unexpected request");
    },
  } as unknown as Connection;
  return { identity, receipt: report.receipt, connection, challenges };
}

/**
 * An honest trainer that trained one receipt and, as `trainer_service.ts` does, answers one
 * challenge per validator and receipt and refuses a second.
 */
async function honestTrainer(startModel: string) {
  const identity = Identity.generate();
  const engine = new InProcessTrainerEngine(identity, split.shards[0]);
  const { receipt, delta } = await engine.train({
    arch: TEST_ARCH,
    round: 0,
    startModel,
    start,
    steps: H,
    dataSeed: 11,
    hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
  });
  const challenges: TrainingChallenge[] = [];
  const answered = new Set<string>();
  const answers = new Map<string, Uint8Array>();
  const connection = {
    peerKey: identity.publicKey,
    closed: new Promise(() => {}),
    request: async (definition: unknown, body: Record<string, unknown>) => {
      if (definition === ChallengeMessage) {
        const challenge = body.challenge as TrainingChallenge;
        challenges.push(challenge);
        const key = `${toHex(challenge.validator)}/${challenge.receiptId}`;
        if (answered.has(key)) {
          throw new ChallengeMismatchError("this validator has challenged this receipt already");
        }
        answered.add(key);
        const bytes = encodeCanonical(await engine.open(challenge));
        answers.set(trainingChallengeId(challenge), bytes);
        return { size: bytes.length, parts: 1, sha256: sha256Hex(bytes) };
      }
      if (definition === OpeningPartMessage) {
        return { bytes: answers.get(body.challengeId as string)! };
      }
      throw new Error("unexpected request");
    },
  } as unknown as Connection;
  return { identity, receipt, delta, connection, challenges };
}

/** A trainer with `rounds` receipts (one per round) that refuses every challenge: it withholds. */
async function withholdingTrainer(startModel: string, rounds: number) {
  const identity = Identity.generate();
  const engine = new InProcessTrainerEngine(identity, split.shards[0]);
  const receipts: TrainingReceipt[] = [];
  for (let round = 0; round < rounds; round++) {
    receipts.push(
      (await engine.train({
        arch: TEST_ARCH,
        round,
        startModel,
        start,
        steps: 1,
        dataSeed: 11 + round,
        hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
      })).receipt,
    );
  }
  const challenges: TrainingChallenge[] = [];
  const connection = {
    peerKey: identity.publicKey,
    closed: new Promise(() => {}),
    request: (definition: unknown, body: Record<string, unknown>) => {
      if (definition === ChallengeMessage) challenges.push(body.challenge as TrainingChallenge);
      return Promise.reject(new ChallengeMismatchError("withheld"));
    },
  } as unknown as Connection;
  return { identity, receipts, connection, challenges };
}

/** The NetworkActor as the training validator sees it: a connection to the trainer, or none. */
class TrainerNetwork implements Actor<{ type: string }> {
  constructor(readonly connection: () => Connection | undefined, readonly published: unknown[]) {}
  receive(message: { type: string; gossip?: unknown }): unknown {
    if (message.type === "connection_to") return this.connection();
    if (message.type === "publish_training") this.published.push(message.gossip);
    return undefined;
  }
}

/** A ledger and training validator on a test clock, with `link` as its way to the trainer. */
async function node(name: string, link: () => Connection | undefined) {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-s51-attack-${name}-` });
  const system = new ActorSystem({ name });
  let clock = START;
  const now = () => clock;
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const model = await models.publish(TEST_ARCH, start);
  const published: unknown[] = [];
  await system.spawn({ name: "node/network", factory: () => new TrainerNetwork(link, published) });
  const identity = Identity.generate();
  const { ledger } = await spawnTrainingLedger(system, {
    identity,
    dir,
    now,
    models,
    challenge: {
      challengeProbability: 1,
      random: () => 0,
      openingDeadlineMs: WINDOW_MS,
      network: "node/network",
      endRetryMs: 5,
      now,
    },
    resumeOwnProofs: true,
  });
  await ledger.ask({ type: "deposit", key: identity.publicKey, amount: STAKE });
  const training = () => system.lookup<TrainingValidatorMessage>("node/training-validator")!;
  return {
    identity,
    ledger: ledger as ActorRef<ValidatorMessage>,
    training,
    model,
    stats: () => training().ask<TrainingValidatorStats>({ type: "stats" }),
    account: (key: Uint8Array) => ledger.ask<Account>({ type: "account", key }),
    record: async (id: string) =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))!,
    pledge: (key: Identity) =>
      ledger.ask({ type: "pledge", pledge: signStakePledge(key, STAKE, 1), origin: PEER }),
    credit: async (receipt: TrainingReceipt) => {
      await ledger.ask({ type: "deposit", key: receipt.trainer, amount: TRAINER_STAKE });
      await training().ask({
        type: "credit",
        receipts: [receipt],
        terms: { round: receipt.round, startModel: receipt.startModel, steps: receipt.steps },
      });
    },
    claim: (proof: TrainingFraudProof) =>
      training().ask<Record<string, unknown>>({
        type: "fraud_proof",
        body: { proof, arch: TEST_ARCH },
        origin: PEER,
      }),
    advance: (ms: number) => clock += ms,
    closeWindow: async () => {
      clock += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      await ledger.ask({ type: "finalize" });
    },
    close: async () => {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** `claimant`'s `opening_missing` claim about `receipt`, as every checker confirms it. */
function claim(receipt: TrainingReceipt, claimant: Identity): TrainingFraudProof {
  return signTrainingFraudProof({
    v: TRAINING_FRAUD_PROOF_VERSION,
    reason: "opening_missing",
    receipt,
    challenge: drawTrainingChallenge(receipt, claimant, {
      now: () => START - DEFAULT_OPENING_DEADLINE_MS - 1,
    }),
    issuedAt: START,
  }, claimant);
}

Deno.test("review s51 attack: a lazy trainer that withheld from its challenger cannot serve a takeover openings that only open its commitments — the takeover re-runs them, and the trainer is slashed here instead of paid", async () => {
  let link: Connection | undefined;
  const n = await node("lazy", () => link);
  try {
    const t = lazyTrainer(n.model.cid);
    link = t.connection;
    // The honest claimant: the lazy trainer refused its challenge (a re-run would have convicted
    // it everywhere; a refusal, since stop 51, slashes it in that claimant's ledger only).
    const claimant = Identity.generate();
    await n.pledge(claimant);
    await n.credit(t.receipt);
    const record = await n.record(trainingReceiptId(t.receipt));
    assert.ok(record.credit > 0 && record.locked > 0, "credited and locked: paid when final");
    assert.deepEqual(await n.claim(claim(t.receipt, claimant)), { queued: true });
    // The takeover ends: the trainer served this ledger openings that open its commitments.
    await eventually(async () => {
      const s = await n.stats();
      return s.falseClaims + s.frauds > 0;
    }, "the takeover to end");
    assert.equal(t.challenges.length, 1, "this validator asked the trainer once");
    await eventually(
      async () =>
        (await n.stats()).falseClaims > 0 ||
        (await n.record(record.receiptId)).status === "fraud",
      "the takeover's verdict to settle",
    );
    await n.closeWindow();
    assert.equal(
      (await n.record(record.receiptId)).status,
      "fraud",
      "the trainer's fake steps convict it here",
    );
    const stats = await n.stats();
    assert.equal(stats.falseClaims, 0, "the honest claimant's claim is not held against it");
    const trainer = await n.account(t.identity.publicKey);
    assert.equal(trainer.balance, 0, "not paid for steps it never trained");
    assert.ok(trainer.stake < TRAINER_STAKE, "slashed");
    assert.deepEqual(await n.account(claimant.publicKey), { balance: 0, stake: STAKE, locked: 0 });
  } finally {
    await n.close();
  }
});

Deno.test("review s51 attack: a receipt this validator challenged before it was recorded here is remembered for its whole window here: a claim near that window's end opens no second challenge, and the honest trainer is paid", async () => {
  let link: Connection | undefined;
  const n = await node("late-record", () => link);
  try {
    const t = await honestTrainer(n.model.cid);
    link = t.connection;
    // This node's coin challenges the receipt (an audited outcome's `afterRound`) before the
    // receipt is recorded in its ledger (its gossip is late, or its stake came after): passed.
    const { result } = await n.training().ask<{ result: Promise<{ ok?: boolean }> }>({
      type: "challenge",
      report: { receipt: t.receipt, delta: t.delta },
      connection: t.connection,
      terms: { round: t.receipt.round, startModel: t.receipt.startModel, steps: t.receipt.steps },
      arch: TEST_ARCH,
      shardSize: t.receipt.shardSize,
      shardRoot: t.receipt.shardRoot,
    });
    assert.equal((await result).ok, true);
    // Recorded and credited here two minutes later: its window here runs two minutes longer
    // than a window from the challenge.
    n.advance(2 * 60_000);
    const claimant = Identity.generate();
    await n.pledge(claimant);
    await n.credit(t.receipt);
    const record = await n.record(trainingReceiptId(t.receipt));
    assert.ok(record.credit > 0 && record.locked > 0);
    // A minute before the window closes here, a staked key claims the trainer withheld.
    n.advance(DEFAULT_ECONOMICS.challengeWindowMs - 60_000);
    assert.deepEqual(await n.claim(claim(t.receipt, claimant)), { queued: true });
    await eventually(async () => (await n.stats()).confirmed >= 1, "the claim's check");
    // The claim was considered in the validator's mailbox before `confirmed` counted it; a
    // takeover would have asked the ledger to hold the receipt before that (asks are posted at
    // once), so the ledger shows it `challenged` until the takeover ends.
    await eventually(
      async () => (await n.record(record.receiptId)).status !== "challenged",
      "a takeover, if one opened, to end",
    );
    await n.closeWindow();
    assert.equal((await n.record(record.receiptId)).status, "final");
    assert.deepEqual(await n.account(t.identity.publicKey), {
      balance: record.credit,
      stake: TRAINER_STAKE,
      locked: 0,
    });
    assert.equal(t.challenges.length, 1, "the trainer is challenged once by this validator");
  } finally {
    await n.close();
  }
});

Deno.test("review s51 attack: claims about receipts whose window closed here (not finalized yet) cost the ledger no takeover budget, so a true claim after them is still taken over and the withholding trainer slashed", async () => {
  let link: Connection | undefined;
  const n = await node("drain", () => link);
  try {
    const t = await withholdingTrainer(n.model.cid, 9);
    link = t.connection;
    const drainers = [Identity.generate(), Identity.generate()];
    const honest = Identity.generate();
    for (const key of [...drainers, honest]) await n.pledge(key);
    // Eight receipts whose window here has closed, the ledger not finalized yet (its tick is
    // every 10 s in a node: a receipt stays `pending` that long past its window).
    const stale = t.receipts.slice(0, 8);
    for (const receipt of stale) await n.credit(receipt);
    n.advance(DEFAULT_ECONOMICS.challengeWindowMs + 1);
    // The ninth, fresh: the trainer withheld its openings from the honest claimant.
    const withheld = t.receipts[8];
    await n.credit(withheld);
    const record = await n.record(trainingReceiptId(withheld));
    assert.ok(record.credit > 0 && record.locked > 0);
    // Two keys (four open takeovers each) claim the stale receipts: a takeover of one cannot
    // hold it (its window closed) and is cleared without asking the trainer, and is nobody's
    // false claim.
    for (const [i, receipt] of stale.entries()) {
      assert.deepEqual(await n.claim(claim(receipt, drainers[i % 2])), { queued: true });
    }
    await eventually(async () => (await n.stats()).confirmed === 8, "the stale claims' checks");
    assert.equal(t.challenges.length, 0, "no stale receipt's trainer was asked");
    // The honest claim about the withheld receipt.
    await n.claim(claim(withheld, honest));
    await eventually(async () => (await n.stats()).confirmed === 9, "the true claim's check");
    await eventually(
      async () => (await n.record(record.receiptId)).status !== "challenged",
      "a takeover, if one opened, to end",
    );
    await n.closeWindow();
    assert.equal(
      (await n.record(record.receiptId)).status,
      "fraud",
      "the withholding trainer convicted here on this ledger's own takeover",
    );
    let staleCredit = 0;
    for (const receipt of stale) {
      const r = await n.record(trainingReceiptId(receipt));
      assert.equal(r.status, "final");
      staleCredit += r.credit;
    }
    assert.deepEqual(await n.account(t.identity.publicKey), {
      balance: staleCredit, // the stale receipts only: not paid for the one it withheld
      stake: t.receipts.length * TRAINER_STAKE - record.locked, // deposited with each; slashed
      locked: 0,
    });
    assert.equal(t.challenges.length, 1, "this ledger asked the trainer itself");
  } finally {
    await n.close();
  }
});
