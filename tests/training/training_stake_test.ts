/**
 * A coordinator's rounds lock slashMultiplier × each receipt's work-priced credit of its trainer's
 * stake until the receipt's challenge window ends (`proof/economics.ts`, `trainingReward`), so the
 * node refuses at start a training configuration whose open locks its stake cannot back (review
 * s71 F1: at the default stake, an honest trainer of a 4 × 128 model, which the config accepts,
 * had round 1 recorded and rounds 2–5 refused `insufficient_stake`: it trained and was not paid).
 */
import assert from "node:assert/strict";
import { ConfigError, parseNodeConfig } from "../../node/config.ts";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { gptDeltaBytes } from "../../training/delta_bytes.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { trainingStakeNeeded } from "../../training/training_stake.ts";
import { withLedgerDir } from "../proof/_ledger_fixtures.ts";
import { START, trainingReceipt } from "../proof/_training_receipt.ts";

/** A model the config accepts (its delta, 912,000 bytes, fits a report) that out-locks `tiny`. */
const WIDER_ARCH = { numLayers: 4, hiddenSize: 128, numHeads: 4, contextLength: 256 };

/**
 * Rounds recorded in a row by the honest trainer below: more than open at once within one
 * challenge window at the default deadline (6), so locks freed by finalized rounds are reused.
 */
const ROUNDS = 10;

/** The stake the refusal names as needed: the number after "set selfStake to at least". */
function neededStake(message: string): number {
  const match = /set selfStake to at least (\d+)/.exec(message);
  assert.ok(match, `the refusal names the stake it needs: ${message}`);
  return Number(match[1]);
}

/**
 * Record `ROUNDS` receipts of an honest trainer staked `stake`, one every `roundMs` (each before the
 * earlier ones' windows end, the ledger finalizing what is due as a node does), at the defaults but
 * the model; returns the refusal codes, one per round (undefined: recorded).
 */
async function honestRounds(
  stake: number,
  arch: typeof WIDER_ARCH,
  roundMs: number,
  steps: number,
): Promise<(string | undefined)[]> {
  const { batchSize, sampleBytes } = DEFAULT_LOCAL_HYPER_PARAMS;
  const work = { deltaBytes: gptDeltaBytes(arch), batchSize, sampleBytes };
  const codes: (string | undefined)[] = [];
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, Identity.generate(), { now: () => clock.t });
    const trainer = Identity.generate();
    await ledger.deposit(trainer.publicKey, stake);
    for (let round = 1; round <= ROUNDS; round++) {
      await ledger.finalizeDue();
      // A delta hash of its own each round (two hex digits, repeated to a hash's length).
      const delta = round.toString(16).padStart(2, "0");
      const receipt = trainingReceipt(trainer, round, steps, delta, work);
      codes.push(
        await ledger.recordTrainingReceipt(receipt, { round, startModel: START, steps }).then(
          () => undefined,
          (error: unknown) => (error as { code?: string }).code ?? String(error),
        ),
      );
      clock.t += roundMs;
    }
    await ledger.close();
  });
  return codes;
}

Deno.test("a coordinator of a model the default stake cannot back is refused at start naming the stake it needs, and a trainer staked that much is paid every round", async () => {
  const config = { training: { arch: WIDER_ARCH, coordinator: { enabled: true } } };
  let message = "";
  assert.throws(() => parseNodeConfig(config), (error: unknown) => {
    assert.ok(error instanceof ConfigError, String(error));
    message = error.message;
    return true;
  });
  // One line, on the key that sets the stake, naming what sets the rounds' locks.
  const lines = message.split("\n").filter((line) => line.trim() !== "");
  assert.equal(lines.length, 2, message);
  assert.match(lines[1], /^ {2}selfStake: /);
  assert.match(lines[1], /training\.coordinator\.steps/);
  assert.match(lines[1], /training\.coordinator\.deadlineMs/);
  const needed = neededStake(message);
  assert.ok(needed > 1_000_000, message);

  // The defaults but the model: at the default stake the trainer is refused after round 1 (what
  // the start refusal prevents), at the stake named every round is recorded.
  const { steps, deadlineMs } = parseNodeConfig({ training: { arch: WIDER_ARCH } }).training
    .coordinator;
  const atDefault = await honestRounds(1_000_000, WIDER_ARCH, deadlineMs, steps);
  assert.equal(atDefault[0], undefined);
  assert.equal(atDefault[1], "insufficient_stake");
  assert.deepEqual(await honestRounds(needed, WIDER_ARCH, deadlineMs, steps), [
    ...Array(ROUNDS).fill(undefined),
  ]);
  // And that stake is accepted at start.
  parseNodeConfig({ ...config, selfStake: needed });
});

Deno.test("the named stake is the least that backs the rounds: a credit less and a round is refused", async () => {
  const steps = 50, deadlineMs = 120_000;
  const config = {
    training: { arch: WIDER_ARCH, coordinator: { enabled: true, steps, deadlineMs } },
  };
  let needed = 0;
  assert.throws(() => parseNodeConfig(config), (error: unknown) => {
    needed = neededStake((error as Error).message);
    return true;
  });
  // Rounds a millisecond shorter than their deadline (a round ends once every trainer reported)
  // keep 6 open at once; the needed stake is rounded up to a whole credit, so a credit less
  // cannot back them all.
  const short = await honestRounds(needed - 1, WIDER_ARCH, deadlineMs - 1, steps);
  assert.ok(short.includes("insufficient_stake"), String(short));
});

Deno.test("the defaults start: the default stake backs a coordinator's default rounds, and a node that does not coordinate is not checked", () => {
  parseNodeConfig({ training: { coordinator: { enabled: true } } });
  // A trainer trains the rounds its coordinators announce, not its own config's: not checked.
  parseNodeConfig({ training: { arch: WIDER_ARCH, trainer: { enabled: true } } });
  // Rounds that end faster keep more open at once: a 4-times-shorter deadline needs more stake.
  assert.throws(
    () =>
      parseNodeConfig({
        training: { coordinator: { enabled: true, deadlineMs: 30_000 } },
        selfStake: 1_000_000,
      }),
    /selfStake: .*set selfStake to at least 2100000/,
  );
  // The economics the check reads are the ledger's defaults (a node's ledger runs with them).
  assert.equal(DEFAULT_ECONOMICS.challengeWindowMs, 600_000);
});

Deno.test("the lock the check counts is the one the ledger takes: trainingLock of a 4 × 128 round equals the stake a recorded receipt locks", async () => {
  const steps = 50;
  const need = trainingStakeNeeded({ arch: WIDER_ARCH, steps, roundMs: 120_000 });
  // The review's probe saw the ledger ask 580536.74186 for this receipt.
  assert.equal(need.lock, 580_536.74186);
  assert.equal(need.roundsOpen, 6);
  assert.equal(need.stake, Math.ceil(6 * 580_536.74186));
  const { batchSize, sampleBytes } = DEFAULT_LOCAL_HYPER_PARAMS;
  const work = { deltaBytes: need.deltaBytes, batchSize, sampleBytes };
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, Identity.generate(), { now: () => clock.t });
    const trainer = Identity.generate();
    await ledger.deposit(trainer.publicKey, need.stake);
    await ledger.recordTrainingReceipt(trainingReceipt(trainer, 1, steps, "01", work), {
      round: 1,
      startModel: START,
      steps,
    });
    assert.equal(ledger.account(trainer.publicKey).locked, need.lock);
    await ledger.close();
  });
});
