/**
 * Stop 51: a peer's `opening_missing` is a claim, not a proof. What a checker can see of it is a
 * signed challenge whose window passed before the proof was signed; whether the trainer answered
 * rests on the accuser's word, and any staked key can sign a challenge it never sent. Until stop 51
 * every ledger slashed the trainer on that word: any staked key slashed an honest trainer in every
 * ledger, for free (the slash is burned, so nobody gained — nor paid).
 *
 * Now a ledger takes such a claim over (within its takeover budget, as inference's "proof
 * withheld" claims): it challenges the trainer itself, and only its own finding settles. Each test
 * drives a ledger and a training validator on one test clock, with a trainer whose engine really
 * trained the receipt and answers challenges over a connection stand-in, and asserts the accounts.
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
import {
  CHALLENGED_RECEIPTS_FILE,
  ChallengedReceipts,
} from "../../training/_challenged_receipts.ts";
import { ChallengeMismatchError } from "../../training/step_opening.ts";
import { InProcessTrainerEngine, type TrainFunction } from "../../training/trainer_engine.ts";
import { shuffledDeltaTrainer } from "./_shuffled_delta.ts";
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
import { spawnTrainingLedger } from "./_training_ledger.ts";

const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
const STAKE = 10 * PENALTY;
const TRAINER_STAKE = 10_000_000;
/** The ledger clock's start (ms): a fixed clock, never the wall's. */
const START = 1_000_000;
/** The validator's own answer window (the takeover waits for it on a silent trainer). */
const WINDOW_MS = 400;
const H = 3;
const PEER = "ee".repeat(32);

const split = await testSplit();
const start = seededGptWeights(TEST_ARCH, 0);

/** How the trainer stand-in answers a challenge. */
type Behaviour = "answer" | "refuse";

/** A trainer whose engine trained `rounds` receipts, answering challenges as `behaviour` says. */
async function trainer(startModel: string, rounds: number, train?: TrainFunction) {
  const identity = Identity.generate();
  const engine = new InProcessTrainerEngine(identity, split.shards[0], train);
  const receipts: { receipt: TrainingReceipt; delta: Uint8Array }[] = [];
  for (let round = 0; round < rounds; round++) {
    receipts.push(
      await engine.train({
        arch: TEST_ARCH,
        round,
        startModel,
        start,
        steps: H,
        dataSeed: 11 + round,
        hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
      }),
    );
  }
  const challenges: TrainingChallenge[] = [];
  const answers = new Map<string, Uint8Array>();
  let behaviour: Behaviour = "answer";
  const connection = {
    peerKey: identity.publicKey,
    closed: new Promise(() => {}),
    request: async (definition: unknown, body: Record<string, unknown>) => {
      if (definition === ChallengeMessage) {
        const challenge = body.challenge as TrainingChallenge;
        challenges.push(challenge);
        if (behaviour === "refuse") throw new ChallengeMismatchError("refused");
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
  return {
    identity,
    receipts,
    connection,
    challenges,
    behave: (next: Behaviour) => behaviour = next,
  };
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
  const dir = await Deno.makeTempDir({ prefix: `veriflow-s51-${name}-` });
  const system = new ActorSystem({ name });
  let clock = START;
  const now = () => clock;
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const model = await models.publish(TEST_ARCH, start);
  const published: unknown[] = [];
  await system.spawn({ name: "node/network", factory: () => new TrainerNetwork(link, published) });
  const identity = Identity.generate();
  const { ledger, restartTraining } = await spawnTrainingLedger(system, {
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
  // This validator's own stake: a trainer opens its steps only to a staked key.
  await ledger.ask({ type: "deposit", key: identity.publicKey, amount: STAKE });
  const training = () => system.lookup<TrainingValidatorMessage>("node/training-validator")!;
  return {
    identity,
    system,
    ledger: ledger as ActorRef<ValidatorMessage>,
    training,
    restartTraining,
    model,
    published,
    stats: () => training().ask<TrainingValidatorStats>({ type: "stats" }),
    account: (key: Uint8Array) => ledger.ask<Account>({ type: "account", key }),
    record: async (id: string) =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))!,
    pledge: (key: Identity) =>
      ledger.ask({ type: "pledge", pledge: signStakePledge(key, STAKE, 1), origin: PEER }),
    /** Record and credit `receipt` (paid when its window closes), the trainer staked. */
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

/**
 * `claimant`'s `opening_missing` claim about `receipt`: a challenge with the full 60 s window,
 * issued a window before START, and the proof signed at START — what every checker confirms.
 */
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

/**
 * Run `test` on a fresh {@link node} whose trainer trained `rounds` receipts; `linked` false: the
 * node has no connection to the trainer.
 */
async function withNode(
  name: string,
  rounds: number,
  test: (
    n: Awaited<ReturnType<typeof node>>,
    t: Awaited<ReturnType<typeof trainer>>,
  ) => Promise<void>,
  linked = true,
  train?: TrainFunction,
): Promise<void> {
  let link: Connection | undefined;
  const n = await node(name, () => link);
  try {
    const t = await trainer(n.model.cid, rounds, train);
    if (linked) link = t.connection;
    await test(n, t);
  } finally {
    await n.close();
  }
}

/** Record and credit `receipt`, pledge `claimant`; the receipt's record. */
async function credited(
  n: Awaited<ReturnType<typeof node>>,
  receipt: TrainingReceipt,
  claimant: Identity,
): Promise<ReceiptRecord> {
  await n.pledge(claimant);
  await n.credit(receipt);
  const record = await n.record(trainingReceiptId(receipt));
  assert.ok(record.credit > 0 && record.locked > 0, "credited and locked: paid when final");
  return record;
}

/** After the window: `record`'s trainer paid in full, its stake whole. */
async function paid(n: Awaited<ReturnType<typeof node>>, record: ReceiptRecord): Promise<void> {
  await n.closeWindow();
  assert.equal((await n.record(record.receiptId)).status, "final");
  assert.deepEqual(await n.account(fromHexKey(record.worker)), {
    balance: record.credit,
    stake: TRAINER_STAKE,
    locked: 0,
  });
}

/** A hex key as bytes. */
function fromHexKey(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!.map((b) => parseInt(b, 16)));
}

Deno.test("review s51: a staked key's false opening_missing claim about an honest trainer does not slash it: the ledger asks the trainer itself, it answers, and it is paid", () =>
  withNode("false-claim", 1, async (n, t) => {
    const { receipt } = t.receipts[0];
    const claimant = Identity.generate();
    const record = await credited(n, receipt, claimant);
    assert.deepEqual(await n.claim(claim(receipt, claimant)), { queued: true });
    await eventually(async () => (await n.stats()).falseClaims === 1, "the takeover to end");
    assert.equal(t.challenges.length, 1, "this validator asked the trainer once");
    assert.deepEqual(t.challenges[0].validator, n.identity.publicKey);
    assert.equal(
      n.published.filter((g) => (g as { kind: string }).kind === "fraud_proof").length,
      1,
      "the claim is passed on: other ledgers judge it on their own takeover",
    );
    await paid(n, record);
    assert.deepEqual(await n.account(claimant.publicKey), { balance: 0, stake: STAKE, locked: 0 });
  }));

Deno.test("review s51: a true claim — the trainer refuses this ledger's takeover too — convicts it here on the ledger's own opening_missing: slashed, burned, nobody rewarded", () =>
  withNode("true-claim", 1, async (n, t) => {
    const { receipt } = t.receipts[0];
    const claimant = Identity.generate();
    const record = await credited(n, receipt, claimant);
    t.behave("refuse");
    await n.claim(claim(receipt, claimant));
    await eventually(
      async () => (await n.record(record.receiptId)).status === "fraud",
      "the takeover's own proof to settle",
    );
    await n.closeWindow();
    assert.equal((await n.record(record.receiptId)).status, "fraud");
    assert.deepEqual(await n.account(receipt.trainer), {
      balance: 0,
      stake: TRAINER_STAKE - record.locked,
      locked: 0,
    });
    assert.deepEqual(await n.account(claimant.publicKey), { balance: 0, stake: STAKE, locked: 0 });
    assert.deepEqual(
      await n.account(n.identity.publicKey),
      { balance: 0, stake: STAKE, locked: 0 },
      "word only: this validator earns nothing either",
    );
    const stats = await n.stats();
    assert.equal(stats.takeovers, 1);
    assert.equal(stats.faults, 1);
  }));

Deno.test("review s51: a claim this ledger cannot take over (no connection to the trainer) leaves the trainer paid here", () =>
  withNode("no-link", 1, async (n, t) => {
    const { receipt } = t.receipts[0];
    const claimant = Identity.generate();
    const record = await credited(n, receipt, claimant);
    await n.claim(claim(receipt, claimant));
    await eventually(async () => (await n.stats()).confirmed === 1, "the claim's check");
    await paid(n, record);
    assert.equal((await n.stats()).takeovers, 0);
  }, false));

Deno.test("review s51: a claimant found false twice is benched: its third claim opens no takeover, and the trainer (silent this time) is not slashed on its word", () =>
  withNode("benched", 3, async (n, t) => {
    const claimant = Identity.generate();
    const records: ReceiptRecord[] = [];
    for (const { receipt } of t.receipts) records.push(await credited(n, receipt, claimant));
    for (const [i, { receipt }] of t.receipts.slice(0, 2).entries()) {
      await n.claim(claim(receipt, claimant));
      await eventually(async () => (await n.stats()).falseClaims === i + 1, "a takeover");
    }
    t.behave("refuse");
    await n.claim(claim(t.receipts[2].receipt, claimant));
    await eventually(async () => (await n.stats()).confirmed === 3, "the third claim's check");
    assert.equal((await n.stats()).takeovers, 2, "no third takeover");
    assert.equal(t.challenges.length, 2);
    await n.closeWindow();
    for (const record of records) {
      assert.equal((await n.record(record.receiptId)).status, "final");
    }
    assert.deepEqual(await n.account(t.identity.publicKey), {
      balance: records.reduce((sum, r) => sum + r.credit, 0),
      stake: records.length * TRAINER_STAKE, // deposited with each receipt
      locked: 0,
    });
  }));

Deno.test("review s51: a receipt this validator challenged already (its coin, passed) is not challenged again on a claim — the trainer refuses a second challenge, which would convict it — even after a restart", () =>
  withNode("challenged-here", 1, async (n, t) => {
    const { receipt, delta } = t.receipts[0];
    const claimant = Identity.generate();
    const record = await credited(n, receipt, claimant);
    const { result } = await n.training().ask<{ result: Promise<{ ok?: boolean }> }>({
      type: "challenge",
      report: { receipt, delta },
      connection: t.connection,
      terms: { round: receipt.round, startModel: receipt.startModel, steps: receipt.steps },
      arch: TEST_ARCH,
      shardSize: receipt.shardSize,
      shardRoot: receipt.shardRoot,
    });
    assert.equal((await result).ok, true);
    await n.restartTraining();
    // The trainer would now refuse a second challenge from this key.
    t.behave("refuse");
    await n.claim(claim(receipt, claimant));
    await eventually(async () => (await n.stats()).confirmed === 1, "the claim's check");
    await paid(n, record);
    assert.equal((await n.stats()).takeovers, 0);
    assert.equal(t.challenges.length, 1, "asked once, by the coin");
  }));

Deno.test("review s51: a takeover checks no delta, but keeps the last opened step: when the delta comes (the coordinator's report, a round's outcome) a delta that is not the trained end state is convicted on the takeover's challenge", () =>
  withNode(
    "takeover-delta",
    1,
    async (n, t) => {
      const { receipt, delta } = t.receipts[0];
      const claimant = Identity.generate(); // the lazy trainer's own second key, say
      const record = await credited(n, receipt, claimant);
      await n.claim(claim(receipt, claimant));
      await eventually(async () => (await n.stats()).falseClaims === 1, "the takeover");
      // Its steps re-ran: the takeover passed. Then the delta comes with the report.
      const { result } = await n.training().ask<{ result: Promise<{ reason?: string }> }>({
        type: "challenge",
        report: { receipt, delta },
        connection: t.connection,
        terms: { round: receipt.round, startModel: receipt.startModel, steps: receipt.steps },
        arch: TEST_ARCH,
        shardSize: receipt.shardSize,
        shardRoot: receipt.shardRoot,
      });
      assert.equal((await result).reason, "delta_mismatch");
      assert.equal(t.challenges.length, 1, "no second challenge: the kept step is enough");
      await eventually(
        async () => (await n.record(record.receiptId)).status === "fraud",
        "the delta proof to settle",
      );
      await n.closeWindow();
      assert.equal((await n.record(record.receiptId)).status, "fraud");
      const trainerAccount = await n.account(receipt.trainer);
      assert.equal(trainerAccount.balance, 0);
      assert.equal(trainerAccount.stake, TRAINER_STAKE - record.locked);
      const own = await n.account(n.identity.publicKey);
      assert.ok(own.balance > 0, "a delta proof is a proof: its validator is rewarded");
    },
    true,
    shuffledDeltaTrainer,
  ));

Deno.test("review s51: the challenged receipts read back from disk are untrusted: junk is skipped, a receipt past its window is forgotten, the rest remembered", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s51-challenged-" });
  try {
    let clock = START;
    const first = new ChallengedReceipts(dir, () => clock);
    await first.mark("a".repeat(64), START + 1_000);
    await first.mark("b".repeat(64), START + 5_000);
    clock = START + 2_000;
    const again = new ChallengedReceipts(dir, () => clock);
    await again.readBack();
    assert.equal(again.has("a".repeat(64)), false, "past its window");
    assert.equal(again.has("b".repeat(64)), true);
    await Deno.writeFile(
      join(dir, CHALLENGED_RECEIPTS_FILE),
      encodeCanonical([["c".repeat(64), START + 9_000], [1, 2], "x", ["d".repeat(64), "later"]]),
    );
    const junk = new ChallengedReceipts(dir, () => clock);
    await junk.readBack();
    assert.equal(junk.has("c".repeat(64)), true);
    assert.equal(junk.has("d".repeat(64)), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
