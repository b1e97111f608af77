/**
 * A coordinator's H must let its challenges end inside the challenge window (review s79
 * trainnet, F1): a round's challenge answer may take up to the longest opening window, and a
 * conviction that comes after the receipt's window settles in the challenger's ledger alone. The
 * configuration refuses such an H, naming `training.coordinator.steps` and the largest H that
 * fits; the worst answer window is reached by a real draw of the challenge's steps.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseNodeConfig } from "../../node/config.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  openingWindowMs,
  roundAnswerMs,
  roundAnswerRefusal,
  worstOpeningWindowMs,
} from "../../training/opening_window.ts";
import { TRAINING_CHALLENGE_STEPS } from "../../training/training_challenge.ts";
import { DEFAULT_KEEP_EVERY } from "../../training/step_opening.ts";

/** A stake that backs any round here: only the answer-window check is under test. */
const STAKE = 1e12;
const coordinating = (steps: number) => ({
  training: { coordinator: { enabled: true, steps } },
  selfStake: STAKE,
});

Deno.test("the worst answer window of an H-step receipt is reached by a draw that opens each step just before a kept state", () => {
  for (const h of [9, 50, 99]) {
    // H − 1 and 0, and one step before each kept state: every step re-run.
    const steps = new Set([0, h - 1]);
    for (let k = DEFAULT_KEEP_EVERY - 1; k < h - 1; k += DEFAULT_KEEP_EVERY) steps.add(k);
    assert.ok(steps.size <= TRAINING_CHALLENGE_STEPS, `H = ${h} fits one challenge's draw`);
    const drawn = [...steps].sort((a, b) => a - b);
    assert.equal(openingWindowMs(drawn), worstOpeningWindowMs(h), `H = ${h}`);
  }
  // And no draw of 9 steps gets more (every 9-step subset of a small H).
  const h = 12;
  for (let skipA = 0; skipA < h; skipA++) {
    for (let skipB = skipA + 1; skipB < h; skipB++) {
      for (let skipC = skipB + 1; skipC < h; skipC++) {
        const drawn = [...Array(h).keys()].filter((k) => k !== skipA && k !== skipB && k !== skipC);
        assert.ok(openingWindowMs(drawn) <= worstOpeningWindowMs(h));
      }
    }
  }
});

Deno.test("the configuration refuses a coordinator whose H lets a challenge end past the challenge window, naming the setting and the largest H that fits", () => {
  const window = DEFAULT_ECONOMICS.challengeWindowMs;
  // The largest H whose challenge ends inside the window is accepted, one more is refused.
  let fits = 0;
  while (roundAnswerMs(fits + 1) <= window) fits++;
  assert.ok(fits >= 50, "the default H (50) fits");
  parseNodeConfig(coordinating(fits));
  parseNodeConfig({ training: { coordinator: { enabled: true } } });
  assert.equal(roundAnswerRefusal(fits), undefined);
  assert.throws(
    () => parseNodeConfig(coordinating(fits + 1)),
    (error: unknown) => {
      const message = (error as Error).message;
      assert.match(message, /training\.coordinator\.steps: H = \d+: .*challenge window/);
      assert.match(message, new RegExp(`set training\\.coordinator\\.steps to at most ${fits}$`));
      return true;
    },
  );
  assert.throws(() => parseNodeConfig(coordinating(400)), /training\.coordinator\.steps/);
  // A node that does not coordinate runs others' rounds: not checked.
  parseNodeConfig({ training: { coordinator: { steps: 400 }, trainer: { enabled: true } } });
});
