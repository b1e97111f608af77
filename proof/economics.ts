/**
 * The economics of optimistic verification: the parameters the ledger applies and the formula
 * that says cheating does not pay.
 *
 * A worker is paid `R` (output tokens × the model's price, plus the prompt tokens it signs ×
 * {@link promptTokenPrice}) for a job whose honest computation costs it
 * `C ≤ R`. A cheat skips some or all of the work, saving up to `C`. Each receipt is challenged
 * with probability `p`, and a challenged cheat is caught with probability `d` (1 for every cheat
 * in the adversarial suite); call `q = p·d`. A caught cheat is not paid and loses the slash
 * `S = m·R`. So, against honest work,
 *
 * ```
 * E[cheat] − E[honest] = (1 − q)·R − q·S − (R − C) = C − q·(R + S) = C − q·R·(1 + m)
 * ```
 *
 * which is negative for every `C ≤ R` exactly when `q·(1 + m) > 1`. The defaults
 * (`p = 0.1`, `m = 20`) give `q·(1 + m) = 2.1` for `d = 1`, and stay safe down to `d ≈ 0.48`.
 *
 * Training receipts follow the same formula with `R` the receipt's work priced by
 * {@link trainingReward} (steps never more than the round's H): the same `m` locks the same
 * multiple of the reward, so the same `q·(1 + m) > 1` makes lazy training lose.
 *
 * @module
 */
import { roundCredits } from "./ledger_state.ts";

/** Parameters of the ledger's economics. */
export interface EconomicParams {
  /** Probability that a validator challenges a receipt (default 0.1). */
  challengeProbability: number;
  /** Probability that a challenge catches a cheat (default 1, the suite's measured rate). */
  detectionRate: number;
  /** Slash as a multiple of the job's reward; a worker must have this much stake free (default 20). */
  slashMultiplier: number;
  /** Share of a slash paid to the validator who proved the fraud (default 0.5; the rest is burned). */
  validatorRewardShare: number;
  /** Stake a validator loses for a fraud proof that does not check (default 100 credits). */
  falseAccusationPenalty: number;
  /** Credits per output token when a model has no price of its own (default 1). */
  defaultTokenPrice: number;
  /**
   * Price of a prompt token as a share of the model's price per output token (default
   * {@link DEFAULT_PROMPT_TOKEN_SHARE}): each model's input price follows its output price
   * ({@link promptTokenPrice}). 0 pays the prefill nothing, as before prompts were counted.
   */
  promptTokenShare: number;
  /** How long a receipt stays pending before it is final, in ms (default 10 minutes). */
  challengeWindowMs: number;
  /**
   * Credits per local step of the reference configuration (default 100): a receipt earns this
   * × its steps × the work of its step relative to the reference step's
   * ({@link trainingReward}), and may claim at most the round's H steps.
   */
  trainingCreditPerStep: number;
}

/**
 * A prompt token's default price, as a share of an output token's. A worker reads the prompt in
 * one parallel prefill pass and generates output one token at a time, so a prompt token costs it
 * less than an output token, but not nothing: review s77 F2 measured 678 ms of model time for a
 * 500-token prompt against 18 ms for a 5-token one, both paid one credit at `maxTokens: 1`, which
 * let a requester push heavy prefill onto workers for nearly nothing. The share follows the
 * measured cost (review s78 vprompt F3, `prefill_price_bench.ts`, CPU, one thread, medians of 7):
 * at ¼, a prefill-heavy job earned 3.0–3.3× the credits per second of model time of a decode-heavy
 * one on `tiny`, 4.6–5.1× on `brown` (the node's default) and 4.0–5.4× on `small` (about 1.3–1.8 ms
 * per prompt token against 22–39 ms per output token), so the fair share is about 1/12 (tiny) to
 * 1/20 (brown, small). A sixteenth sits in that range, a power of two so prompt prices are exact
 * in binary as the quarter was (not measured on a GPU, where batched prefill is expected to be
 * cheaper still next to decode: the share errs toward paying prompts less). It is one value for the whole
 * network, not an operator's setting: every ledger must pay the same signed receipt the same.
 */
export const DEFAULT_PROMPT_TOKEN_SHARE = 1 / 16;

/** The parameters a node uses unless configured otherwise. */
export const DEFAULT_ECONOMICS: Readonly<EconomicParams> = Object.freeze({
  challengeProbability: 0.1,
  detectionRate: 1,
  slashMultiplier: 20,
  validatorRewardShare: 0.5,
  falseAccusationPenalty: 100,
  defaultTokenPrice: 1,
  promptTokenShare: DEFAULT_PROMPT_TOKEN_SHARE,
  challengeWindowMs: 10 * 60 * 1000,
  // A step of the reference configuration (`tiny`, 8 samples × 64 predicted bytes, forward and
  // backward; {@link TRAINING_REFERENCE_STEP_WORK}) costs
  // far more than one inference token, but every credit in flight must be backed by
  // `slashMultiplier` times as much free stake: at 100 a node's default self-stake (1,000,000)
  // backs 500 reference steps in flight, a few rounds of a few hundred steps each; a larger
  // model's steps lock more, and a coordinator whose rounds a trainer staked as it is cannot back
  // is refused at start (`training/training_stake.ts`, review s71 F1).
  trainingCreditPerStep: 100,
});

/**
 * The ledger's credit quantum per credit (`ledger_state.ts` rounds every amount to it): a
 * training reward is computed in these integer units.
 */
const CREDIT_QUANTA = 1_000_000;

/**
 * Work units of one training step of the reference configuration — the default training model
 * (`tiny`: its int8 delta is 157,096 bytes, `training/delta_bytes.ts`), at the default batch of 8
 * samples of 65 bytes (64 predicted) — that {@link EconomicParams.trainingCreditPerStep} prices:
 * 157,096 × 8 × 64. A test checks it against the model and the defaults.
 */
export const TRAINING_REFERENCE_STEP_WORK = 157_096 * 8 * 64;

/** The signed fields of a training receipt its reward is computed from. */
export interface TrainingWork {
  /** Local steps. */
  steps: number;
  /** Bytes of the int8 delta: a byte a parameter (plus a scale a row), the model's size. */
  deltaBytes: number;
  /** The batch of each step. */
  hyper: { batchSize: number; sampleBytes: number };
}

/**
 * Work units of one step of `work`: parameters × samples × predicted bytes a sample, the three
 * factors a step's forward and backward passes scale with, as the receipt signs them (the delta's
 * size stands for the parameters: every ledger reads it, and an audit refuses a receipt whose
 * size is not that of the round's model, `round_audit.ts`).
 */
export function trainingStepWork(work: TrainingWork): bigint {
  const { deltaBytes, hyper } = work;
  return BigInt(deltaBytes) * BigInt(hyper.batchSize) * BigInt(Math.max(0, hyper.sampleBytes - 1));
}

/**
 * What a training receipt earns: `trainingCreditPerStep × steps × stepWork / reference`, so credit
 * follows the work and a step of the reference configuration pays `trainingCreditPerStep` (review
 * s71 F2: a 1-wide model on batches of one 2-byte sample was paid as much per step as `tiny` at
 * the defaults, for ~35× less compute and 3·10⁴× less work). Computed from signed fields only, in
 * integers (credit quanta, rounded down), so every ledger computes the same amount.
 *
 * @example
 * ```ts
 * import { DEFAULT_ECONOMICS, trainingReward } from "./economics.ts";
 * const hyper = { batchSize: 8, sampleBytes: 65 };
 * trainingReward(DEFAULT_ECONOMICS, { steps: 3, deltaBytes: 157_096, hyper }); // 300
 * ```
 */
export function trainingReward(params: Readonly<EconomicParams>, work: TrainingWork): number {
  const perStep = BigInt(Math.round(params.trainingCreditPerStep * CREDIT_QUANTA));
  const quanta = BigInt(work.steps) * trainingStepWork(work) * perStep /
    BigInt(TRAINING_REFERENCE_STEP_WORK);
  return Number(quanta) / CREDIT_QUANTA;
}

/**
 * The stake a ledger locks when it records a training receipt of `work`: `slashMultiplier ×` its
 * {@link trainingReward}, each to the ledger's quantum: the one rule `proof/_ledger_training.ts`
 * locks by.
 * A trainer whose free stake is less is refused (`insufficient_stake`): it is what a node's
 * training configuration must back (`training/training_stake.ts`).
 *
 * @example
 * ```ts
 * import { DEFAULT_ECONOMICS, trainingLock } from "./economics.ts";
 * const hyper = { batchSize: 8, sampleBytes: 65 };
 * trainingLock(DEFAULT_ECONOMICS, { steps: 50, deltaBytes: 157_096, hyper }); // 100000
 * ```
 */
export function trainingLock(params: Readonly<EconomicParams>, work: TrainingWork): number {
  return roundCredits(roundCredits(trainingReward(params, work)) * params.slashMultiplier);
}

/**
 * Credits per prompt token of a model whose output token costs `outputPrice`:
 * `promptTokenShare ×` it. A text receipt that signs its prompt tokens earns them at this price
 * beside its output tokens (`_ledger_amounts.ts`).
 *
 * @example
 * ```ts
 * import { DEFAULT_ECONOMICS, promptTokenPrice } from "./economics.ts";
 * promptTokenPrice(DEFAULT_ECONOMICS, 1); // 0.0625
 * ```
 */
export function promptTokenPrice(params: Readonly<EconomicParams>, outputPrice: number): number {
  return outputPrice * params.promptTokenShare;
}

/**
 * Expected profit of cheating minus that of honest work, for one job paying `reward` where
 * cheating saves `costSaved` (`C − q·R·(1 + m)`; negative means cheating loses).
 *
 * @example
 * ```ts
 * import { cheatingAdvantage, DEFAULT_ECONOMICS } from "./economics.ts";
 * cheatingAdvantage(DEFAULT_ECONOMICS, { reward: 100, costSaved: 100 }) < 0; // true
 * ```
 */
export function cheatingAdvantage(
  params: Readonly<EconomicParams>,
  job: { reward: number; costSaved: number },
): number {
  const q = params.challengeProbability * params.detectionRate;
  return job.costSaved - q * job.reward * (1 + params.slashMultiplier);
}

/**
 * True when cheating loses in expectation for every job, even one whose whole reward is
 * saved cost (`q·(1 + m) > 1`).
 */
export function cheatingNeverPays(params: Readonly<EconomicParams>): boolean {
  return params.challengeProbability * params.detectionRate * (1 + params.slashMultiplier) > 1;
}

/** The smallest slash multiplier that makes cheating lose for challenge probability `p`. */
export function minimumSlashMultiplier(p: number, detectionRate = 1): number {
  return 1 / (p * detectionRate) - 1;
}

/**
 * What an operator must be told about challenging receipts with probability `p` under `params`
 * (`validator.challengeProbability`, `training.challengeProbability`): undefined when cheating
 * never pays at `p` ({@link cheatingNeverPays}); else one line saying what a cheat gains on this
 * validator's own coin and the probability from which it stops paying. Other validators' coins
 * add to it (their verdicts and fraud proofs reach every ledger), so this is the worst case.
 *
 * @example
 * ```ts
 * import { challengeProbabilityWarning, DEFAULT_ECONOMICS } from "./economics.ts";
 * challengeProbabilityWarning(DEFAULT_ECONOMICS.challengeProbability); // undefined
 * challengeProbabilityWarning(0.01); // "… a worker that skips the work gains 0.79 …"
 * ```
 */
export function challengeProbabilityWarning(
  p: number,
  params: Readonly<EconomicParams> = DEFAULT_ECONOMICS,
): string | undefined {
  const at = { ...params, challengeProbability: p };
  if (cheatingNeverPays(at)) return undefined;
  const safeFrom = 1 / (params.detectionRate * (1 + params.slashMultiplier));
  if (p === 0) {
    return `challenge probability 0: this validator never challenges, so on its own coin no ` +
      `cheat is caught (cheating stops paying above p = ${safeFrom.toFixed(3)})`;
  }
  const gain = cheatingAdvantage(at, { reward: 1, costSaved: 1 });
  return `challenge probability ${p}: on this validator's own coin a worker that skips the work ` +
    `gains ${gain.toFixed(2)} per unit of reward (slash ${params.slashMultiplier}× the reward; ` +
    `cheating stops paying above p = ${safeFrom.toFixed(3)})`;
}
