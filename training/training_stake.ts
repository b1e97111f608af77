/**
 * The stake a trainer needs to be paid for every round a coordinator runs: what the node's
 * configuration check (`node/_config_schema.ts`) refuses a coordinating node to start without.
 *
 * Every ledger records a trainer's receipt by locking `slashMultiplier ×` its credit
 * ({@link trainingLock}, the ledger's own amount) of the trainer's free stake until the receipt's
 * challenge window ends, and a receipt its trainer's free stake cannot back is refused
 * (`insufficient_stake`): the trainer trained and is not paid. The lock must cover the reward
 * (`p × slash > gain`, docs/PROOF.md), so it is not capped; instead the rounds must fit the stake.
 * Rounds follow one another, each lasting at most its deadline, so while the first receipt of a
 * window is locked `ceil(window / deadline) + 1` rounds' receipts are (review s71 F1: at the
 * default stake, a 4 × 128 model, which the config accepts, had round 1 recorded and rounds 2–5
 * refused).
 *
 * Rounds that end before their deadline (every trainer reported) would keep more open: `tiny`'s
 * rounds of H = 50 end in ~12.5 s, and rounds every 15 s kept 41 locked at once, 4,100,000 at the
 * default stake of 1,000,000, so from the 11th round every honest trainer was refused (review
 * s71). So a coordinator paces its rounds ({@link roundPaceMs}, waited for in `_round_loop.ts`):
 * a round starts no earlier than `ceil(window / (backed − 1))` after the one before it started,
 * where `backed` is the rounds' locks the stake its trainers are assumed to hold backs (the node's
 * `selfStake`, as the start check assumes), at least the counted `roundsOpen`. Why this spacing:
 * a round's receipt is recorded between its start and the next round's, so receipts `k` rounds
 * apart are at least `(k − 1)` paces apart, and `backed + 1` of them fit in one window only when
 * `(backed − 1) × pace < window`: never at this pace, whatever each round lasts. A pace of
 * `window / backed` lets one more in (a round recorded at its end, the next at its start). Paced
 * to the stake rather than to `roundsOpen` alone, a coordinator whose rounds lock little (a test
 * model, a small H) is not held to a deadline's pace for nothing. A trainer declining a round its
 * own free stake cannot back is not built: its service is given its ledger's stake
 * (`TrainerServiceOptions.stakeOf`), not its free stake, and the ledgers that refuse it are its
 * coordinator's and the auditing nodes', not its own.
 *
 * @example
 * ```ts
 * import { trainingStakeNeeded } from "./training_stake.ts";
 * const arch = { numLayers: 2, hiddenSize: 64, numHeads: 4, contextLength: 256 };
 * trainingStakeNeeded({ arch, steps: 50, roundMs: 120_000 }).stake; // 600000
 * ```
 *
 * @module
 */
import type { GptArchitecture } from "../inference/model_builder.ts";
import {
  DEFAULT_ECONOMICS,
  type EconomicParams,
  trainingLock,
  trainingReward,
} from "../proof/economics.ts";
import { gptDeltaBytes } from "./delta_bytes.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS, type LocalHyperParams } from "./hyper_params.ts";

/** The terms of a coordinator's rounds that set what each locks and how many are open at once. */
export interface TrainingRoundTermsOf {
  /** The trained model's architecture (its delta's size is a step's parameters). */
  arch: GptArchitecture;
  /** Local steps a round (H). */
  steps: number;
  /** The longest a round lasts (the coordinator's deadline), in ms. */
  roundMs: number;
  /** The trainers' batch; default the defaults (a trainer refuses rounds on another). */
  batch?: Pick<LocalHyperParams, "batchSize" | "sampleBytes">;
}

/** What a trainer's stake must back for {@link TrainingRoundTermsOf}. */
export interface TrainingStakeNeed {
  /** The delta's size in bytes, as each receipt signs it. */
  deltaBytes: number;
  /** What one round's receipt earns (before it is final). */
  credit: number;
  /** What one round's receipt locks. */
  lock: number;
  /** Rounds whose receipts are locked at once: `ceil(window / roundMs) + 1`. */
  roundsOpen: number;
  /** The stake that backs them: `roundsOpen × lock`, rounded up to a whole credit. */
  stake: number;
}

/**
 * What a trainer must stake for every round of `terms` to be recorded, under `params` (default the
 * economics a node's ledger runs with).
 */
export function trainingStakeNeeded(
  terms: TrainingRoundTermsOf,
  params: Readonly<EconomicParams> = DEFAULT_ECONOMICS,
): TrainingStakeNeed {
  const { batchSize, sampleBytes } = terms.batch ?? DEFAULT_LOCAL_HYPER_PARAMS;
  const deltaBytes = gptDeltaBytes(terms.arch);
  const work = { steps: terms.steps, deltaBytes, hyper: { batchSize, sampleBytes } };
  const lock = trainingLock(params, work);
  const roundsOpen = Math.ceil(params.challengeWindowMs / terms.roundMs) + 1;
  return {
    deltaBytes,
    credit: trainingReward(params, work),
    lock,
    roundsOpen,
    stake: Math.ceil(roundsOpen * lock),
  };
}

/**
 * The least time, in ms, from one round's start to the next's for rounds of `terms` whose trainers
 * hold `stake` (each): at this pace no challenge window holds more rounds' receipts than `stake`
 * backs (see the module doc for why `ceil(window / (backed − 1))`), and never fewer than the
 * `roundsOpen` the start check counts ({@link trainingStakeNeeded}, the one rule both read).
 *
 * @example
 * ```ts
 * import { roundPaceMs } from "./training_stake.ts";
 * const arch = { numLayers: 2, hiddenSize: 64, numHeads: 4, contextLength: 256 };
 * // Each round locks 100,000: 10 backed, a round at most every 600 s / 9.
 * roundPaceMs({ arch, steps: 50, roundMs: 120_000 }, 1_000_000); // 66667
 * ```
 */
export function roundPaceMs(
  terms: TrainingRoundTermsOf,
  stake: number,
  params: Readonly<EconomicParams> = DEFAULT_ECONOMICS,
): number {
  const need = trainingStakeNeeded(terms, params);
  // Nothing locked, or locked for no time: no round waits for another.
  if (need.lock <= 0 || params.challengeWindowMs <= 0) return 0;
  // A stake below the count (a configuration the start check refuses) is paced to the count, the
  // rounds' own pace when each lasts its deadline.
  const backed = Math.max(need.roundsOpen, Math.floor(stake / need.lock));
  return Math.ceil(params.challengeWindowMs / (backed - 1));
}

/**
 * Why a node staking `selfStake` cannot back the rounds of `terms` it coordinates, as one line of
 * the configuration refusal (on the key `selfStake`), naming the stake it needs and the keys that
 * set it; undefined when it can. A trainer staked as this node is paid every round.
 */
export function trainingStakeRefusal(
  terms: TrainingRoundTermsOf,
  selfStake: number,
  params: Readonly<EconomicParams> = DEFAULT_ECONOMICS,
): string | undefined {
  const need = trainingStakeNeeded(terms, params);
  if (selfStake >= need.stake) return undefined;
  const { numLayers, hiddenSize } = terms.arch;
  const windowMinutes = params.challengeWindowMs / 60_000;
  return `${selfStake} cannot back this node's training rounds: a trainer's receipt of a round ` +
    `of training.arch ${numLayers}×${hiddenSize} (a ${need.deltaBytes}-byte delta) at ` +
    `H = ${terms.steps} (training.coordinator.steps) locks ${need.lock} of its stake ` +
    `(${params.slashMultiplier} × its credit ${need.credit}) for a ${windowMinutes}-minute ` +
    `challenge window, and rounds of at most ${terms.roundMs} ms ` +
    `(training.coordinator.deadlineMs) keep ${need.roundsOpen} locked at once; a trainer with ` +
    `less is refused (insufficient_stake) and not paid: set selfStake to at least ${need.stake} ` +
    `(every trainer of these rounds needs as much), or lower training.coordinator.steps or ` +
    `training.arch`;
}
