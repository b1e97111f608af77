import assert from "node:assert/strict";
import {
  cheatingAdvantage,
  cheatingNeverPays,
  DEFAULT_ECONOMICS,
  minimumSlashMultiplier,
} from "../../proof/economics.ts";

Deno.test("economics: with the node's defaults cheating loses in expectation for any saving ≤ reward", () => {
  assert.ok(cheatingNeverPays(DEFAULT_ECONOMICS));
  for (const reward of [1, 64, 10_000]) {
    for (const frac of [0, 0.1, 0.5, 0.9, 1]) {
      const adv = cheatingAdvantage(DEFAULT_ECONOMICS, { reward, costSaved: frac * reward });
      assert.ok(adv < 0, `reward ${reward} saving ${frac}: ${adv}`);
    }
  }
});

Deno.test("economics: the formula matches a direct expectation and flips sign below the minimum slash", () => {
  const p = 0.1, m = 20, R = 50, C = 40;
  const direct = (1 - p) * R - p * m * R - (R - C);
  assert.ok(
    Math.abs(cheatingAdvantage({ ...DEFAULT_ECONOMICS }, { reward: R, costSaved: C }) - direct) <
      1e-9,
  );
  const mMin = minimumSlashMultiplier(p);
  assert.ok(Math.abs(mMin - 9) < 1e-9);
  assert.ok(!cheatingNeverPays({ ...DEFAULT_ECONOMICS, slashMultiplier: mMin - 0.5 }));
  assert.ok(cheatingNeverPays({ ...DEFAULT_ECONOMICS, slashMultiplier: mMin + 0.5 }));
  assert.ok(!cheatingNeverPays({ ...DEFAULT_ECONOMICS, detectionRate: 0.4 }));
});
