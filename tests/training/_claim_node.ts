/**
 * The set-up of the tests of claims and takeovers (`claim_takeover_test.ts`,
 * `takeover_kept_step_test.ts`, `ledger_retries_test.ts`, `ledger_retries_restart_test.ts`): a
 * ledger and a training validator on one test clock whose network stand-in gives a connection to a
 * trainer stand-in, the trainers' engines, and a peer's `opening_missing` claim as every checker
 * confirms it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Actor, ActorContext } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import type { Connection } from "../../protocols/connection.ts";
import { fromHex, sha256Hex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { ChallengeMessage, OpeningPartMessage } from "../../protocols/training_messages.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { RoundModels } from "../../training/round_models.ts";
import { ChallengeEndings } from "../../training/_challenge_endings.ts";
import { ChallengedReceipts } from "../../training/_challenged_receipts.ts";
import {
  TrainingChallengeRun,
  type TrainingChallengeRunOptions,
} from "../../training/_training_challenge_run.ts";
import { checkStepOpenings } from "../../training/step_check.ts";
import { ChallengeMismatchError, type SealedStepOpenings } from "../../training/step_opening.ts";
import { InProcessTrainerEngine, type TrainFunction } from "../../training/trainer_engine.ts";
import {
  DEFAULT_OPENING_DEADLINE_MS,
  drawTrainingChallenge,
  type TrainingChallenge,
  trainingChallengeId,
} from "../../training/training_challenge.ts";
import {
  checkTrainingFraudProof,
  signTrainingFraudProof,
  TRAINING_FRAUD_PROOF_VERSION,
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import { type TrainingReceipt, trainingReceiptId } from "../../training/training_receipt.ts";
import type {
  TrainingValidatorMessage,
  TrainingValidatorOptions,
  TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

/** A ledger's penalty for a false accusation. */
export const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
/** What a claimant pledges and the validator deposits. */
export const STAKE = 10 * PENALTY;
/** What a trainer deposits with each receipt credited. */
export const TRAINER_STAKE = 10_000_000;
/** The ledger clock's start (ms): a fixed clock, never the wall's. */
export const START = 1_000_000;
/** Where gossip comes from. */
export const PEER = "ee".repeat(32);
/** Local steps of a test receipt. */
export const H = 3;

/** The test shards. */
export const split = await testSplit();
/** The start model's weights. */
export const start = seededGptWeights(TEST_ARCH, 0);

/** A `challenge` message's outcome (`ChallengeOutcome`), read loosely. */
export type Outcome = {
  challenged: boolean;
  ok?: boolean;
  reason?: string;
  proof?: TrainingFraudProof;
};

/**
 * A connection to the trainer `identity`, as the validator sees it: a challenge is answered with
 * `answer(challenge)` (throw to refuse it), its bytes served as one part; every challenge asked
 * is in `challenges`.
 */
export function trainerLink(
  identity: Identity,
  answer: (challenge: TrainingChallenge) => Promise<SealedStepOpenings>,
): { connection: Connection; challenges: TrainingChallenge[] } {
  const challenges: TrainingChallenge[] = [];
  const answers = new Map<string, Uint8Array>();
  const connection = {
    peerKey: identity.publicKey,
    closed: new Promise(() => {}),
    request: async (definition: unknown, body: Record<string, unknown>) => {
      if (definition === ChallengeMessage) {
        const challenge = body.challenge as TrainingChallenge;
        challenges.push(challenge);
        const bytes = encodeCanonical(await answer(challenge));
        answers.set(trainingChallengeId(challenge), bytes);
        return { size: bytes.length, parts: 1, sha256: sha256Hex(bytes) };
      }
      if (definition === OpeningPartMessage) {
        return { bytes: answers.get(body.challengeId as string)! };
      }
      throw new Error("unexpected request");
    },
  } as unknown as Connection;
  return { connection, challenges };
}

/** A trainer's engine that trained `rounds` receipts of `steps` steps each (by `train`). */
export async function trainedEngine(
  startModel: string,
  rounds: number,
  options: { train?: TrainFunction; steps?: number } = {},
) {
  const identity = Identity.generate();
  const engine = new InProcessTrainerEngine(identity, split.shards[0], options.train);
  const receipts: { receipt: TrainingReceipt; delta: Uint8Array }[] = [];
  for (let round = 0; round < rounds; round++) {
    receipts.push(
      await engine.train({
        arch: TEST_ARCH,
        round,
        startModel,
        start,
        steps: options.steps ?? H,
        dataSeed: 11 + round,
        hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
      }),
    );
  }
  return { identity, engine, receipts };
}

/** A `reach` or `release_reach` the validator sent the network stand-in. */
export type DialMessage = { type: "reach" | "release_reach"; key: Uint8Array; holder?: string };

/**
 * The NetworkActor as the training validator sees it: a connection to the trainer, or none; a
 * dial by key (`reach`) answered `reach(message)` (default `false`: no swarm), every dial message
 * kept in `dials`; its live peers (`peers`) are `peers()`.
 */
class TrainerNetwork implements Actor<{ type: string }> {
  constructor(
    readonly connection: () => Connection | undefined,
    readonly published: unknown[],
    readonly dials: DialMessage[],
    readonly reach: (message: DialMessage) => boolean | "full",
    readonly peers: () => unknown[],
  ) {}
  receive(message: { type: string; gossip?: unknown }): unknown {
    if (message.type === "connection_to") return this.connection();
    if (message.type === "peers") return this.peers();
    if (message.type === "publish_training") this.published.push(message.gossip);
    if (message.type === "reach" || message.type === "release_reach") {
      this.dials.push(message as DialMessage);
      if (message.type === "reach") return this.reach(message as DialMessage);
    }
    return undefined;
  }
}

/**
 * A ledger and training validator on a test clock (challenge probability 1, its own answer
 * window `windowMs`), staked, with `link` as its way to the trainer and `reach` as its network's
 * answer to a dial by key (default: no swarm); `validator` adds to the training validator's
 * options (`timers` a test fires by hand for its waits before a try again, `log`, and
 * `openingDeadlineMs: undefined` for the default windows, grown by the steps a challenge asks);
 * `network.peers` is its network's live peers (default: one, the peer its gossip comes from, so
 * its network works; `() => []`: this node's own network is down).
 */
export async function claimNode(
  name: string,
  link: () => Connection | undefined,
  windowMs = 400,
  reach: (message: DialMessage) => boolean | "full" = () => false,
  validator: Pick<TrainingValidatorOptions, "timers" | "log" | "openingDeadlineMs"> = {},
  network: { peers?: () => unknown[] } = {},
) {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-s51-${name}-` });
  const system = new ActorSystem({ name });
  let clock = START;
  const now = () => clock;
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const model = await models.publish(TEST_ARCH, start);
  const published: unknown[] = [];
  const dials: DialMessage[] = [];
  await system.spawn({
    name: "node/network",
    factory: () =>
      new TrainerNetwork(link, published, dials, reach, network.peers ?? (() => [{ key: PEER }])),
  });
  const identity = Identity.generate();
  const { ledger, restartTraining } = await spawnTrainingLedger(system, {
    identity,
    dir,
    now,
    models,
    challenge: {
      challengeProbability: 1,
      random: () => 0,
      openingDeadlineMs: windowMs,
      network: "node/network",
      endRetryMs: 5,
      now,
      ...validator,
    },
    resumeOwnProofs: true,
  });
  // This validator's own stake: a trainer opens its steps only to a staked key.
  await ledger.ask({ type: "deposit", key: identity.publicKey, amount: STAKE });
  const training = () => system.lookup<TrainingValidatorMessage>("node/training-validator")!;
  const record = async (id: string) =>
    (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))!;
  /** `key` pledges `stake` (default {@link STAKE}) here (as a peer's pledge). */
  const pledge = (key: Identity, stake = STAKE) =>
    ledger.ask({ type: "pledge", pledge: signStakePledge(key, stake, 1), origin: PEER });
  /** Record and credit `receipt` (paid when final), its trainer staked. */
  const credit = async (receipt: TrainingReceipt) => {
    await ledger.ask({ type: "deposit", key: receipt.trainer, amount: TRAINER_STAKE });
    await training().ask({
      type: "credit",
      receipts: [receipt],
      terms: { round: receipt.round, startModel: receipt.startModel, steps: receipt.steps },
    });
  };
  return {
    identity,
    system,
    ledger: ledger as ActorRef<ValidatorMessage>,
    training,
    restartTraining,
    model,
    published,
    /** Every `reach` and `release_reach` the validator sent its network. */
    dials,
    stats: () => training().ask<TrainingValidatorStats>({ type: "stats" }),
    account: (key: Uint8Array) => ledger.ask<Account>({ type: "account", key }),
    record,
    pledge,
    credit,
    /**
     * Pledge `claimant` (`stake`, default {@link STAKE}); record and credit `receipt` (paid when
     * final), its trainer staked.
     */
    credited: async (
      receipt: TrainingReceipt,
      claimant: Identity,
      stake = STAKE,
    ): Promise<ReceiptRecord> => {
      await pledge(claimant, stake);
      await credit(receipt);
      const recorded = await record(trainingReceiptId(receipt));
      assert.ok(recorded.credit > 0 && recorded.locked > 0, "credited and locked: paid when final");
      return recorded;
    },
    claim: (proof: TrainingFraudProof) =>
      training().ask<Record<string, unknown>>({
        type: "fraud_proof",
        body: { proof, arch: TEST_ARCH },
        origin: PEER,
      }),
    /**
     * The delta comes with the coordinator's report (`challenge`); a round's outcome
     * (`afterRound`) takes the same way for a receipt whose step is not kept: its coin.
     */
    deltaComes: (receipt: TrainingReceipt, delta: Uint8Array, connection: Connection) =>
      training().ask<{ result: Promise<Outcome> }>({
        type: "challenge",
        report: { receipt, delta },
        connection,
        terms: { round: receipt.round, startModel: receipt.startModel, steps: receipt.steps },
        arch: TEST_ARCH,
        shardSize: receipt.shardSize,
        shardRoot: receipt.shardRoot,
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

/** A {@link claimNode}. */
export type ClaimNode = Awaited<ReturnType<typeof claimNode>>;

/**
 * `claimant`'s `opening_missing` claim about `receipt`: a challenge with the full 60 s window,
 * issued a window before START, and the proof signed at START — what every checker confirms.
 */
export function claim(receipt: TrainingReceipt, claimant: Identity): TrainingFraudProof {
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

/** What a bare challenge run (`bareChallengeRun`) told the validator. */
export type Told = { type: string; body?: { proof: TrainingFraudProof } };

/**
 * A TrainingChallengeRun outside any validator, on the ledger clock START: its ledger holds each
 * receipt `challenged` when asked and ends it; its coin draws `random()` against `probability`;
 * `connectionTo` and `reach` are its ways to the trainer. What it tells the validator lands in
 * `told`; `ctx` is the context to pass to its calls.
 */
export function bareChallengeRun(options: {
  models: RoundModels;
  openingDeadlineMs: number;
  connectionTo: TrainingChallengeRunOptions["connectionTo"];
  reach: TrainingChallengeRunOptions["reach"];
  probability?: number;
  random?: () => number;
  /** Where it keeps takeovers' last steps (`TrainingChallengeRunOptions.lastStepsDir`). */
  lastStepsDir?: string;
}) {
  const told: Told[] = [];
  const ctx = {
    signal: new AbortController().signal,
    self: { tell: (message: Told) => (told.push(message), Promise.resolve()) },
  } as unknown as ActorContext<TrainingValidatorMessage>;
  const now = () => START;
  const run = new TrainingChallengeRun({
    identity: Identity.generate(),
    models: options.models,
    challengeProbability: options.probability ?? 1,
    random: options.random ?? (() => 0),
    openingDeadlineMs: options.openingDeadlineMs,
    check: checkStepOpenings,
    endings: new ChallengeEndings({
      askEnd: () => Promise.resolve(true),
      settleInLedger: () => Promise.resolve({ settled: true }),
      log: () => {},
    }),
    challenged: new ChallengedReceipts(undefined, now),
    now,
    // The ledger holds the receipt `challenged` for the challenge, and ends it when asked.
    ask: <R>(_ctx: unknown, message: { type: string }) =>
      Promise.resolve((message.type === "training_challenge" ? true : undefined) as R),
    hasLedger: () => true,
    connectionTo: options.connectionTo,
    reach: options.reach,
    lastStepsDir: options.lastStepsDir,
    log: () => {},
  });
  return { run, ctx, told };
}

/** The fraud proofs a {@link bareChallengeRun} told its validator. */
export function toldProofs(told: Told[]): TrainingFraudProof[] {
  return told.filter((m) => m.type === "fraud_proof").map((m) => m.body!.proof);
}

/** A withholding trainer's receipt credited on a {@link claimNode} (see {@link creditWithholdingTrainer}). */
export interface WithholdingTrainer {
  receipt: TrainingReceipt;
  /** The receipt's record on the node once credited (paid when final). */
  record: ReceiptRecord;
  /** Who the receipt was credited for (a fresh key). */
  claimant: Identity;
}

/**
 * A trainer that trained one receipt on `n`'s model and refuses every challenge (it withholds its
 * openings): `connect` is handed its {@link trainerLink} (what `n`'s `link` should answer), then
 * the receipt is credited on `n` for a fresh claimant, pledged `stake` (default {@link STAKE}).
 */
export async function creditWithholdingTrainer(
  n: ClaimNode,
  connect: (link: Connection) => void,
  stake = STAKE,
): Promise<WithholdingTrainer> {
  const t = await trainedEngine(n.model.cid, 1);
  connect(
    trainerLink(t.identity, () => {
      throw new ChallengeMismatchError("refused");
    }).connection,
  );
  const { receipt } = t.receipts[0];
  const claimant = Identity.generate();
  const record = await n.credited(receipt, claimant, stake);
  return { receipt, record, claimant };
}

/** After the window: `record`'s trainer paid in full on `n`, its stake whole. */
export async function assertPaid(n: ClaimNode, record: ReceiptRecord): Promise<void> {
  await n.closeWindow();
  assert.equal((await n.record(record.receiptId)).status, "final");
  assert.deepEqual(await n.account(fromHex(record.worker)), {
    balance: record.credit,
    stake: TRAINER_STAKE,
    locked: 0,
  });
}

/**
 * As any other ledger checks it: `proof` a `delta_mismatch` proof, confirmed, with the start
 * weights loaded by its receipt's CID.
 */
export async function assertConfirmedElsewhere(
  proof: TrainingFraudProof | undefined,
): Promise<void> {
  assert.ok(proof !== undefined, "a delta proof");
  assert.equal(proof.reason, "delta_mismatch");
  const check = await checkTrainingFraudProof(structuredClone(proof), {
    arch: TEST_ARCH,
    startWeights: (cid) => {
      assert.equal(cid, proof.receipt.startModel);
      return Promise.resolve(seededGptWeights(TEST_ARCH, 0));
    },
    now: Date.now,
  });
  assert.equal(check.reason, "confirmed");
}
