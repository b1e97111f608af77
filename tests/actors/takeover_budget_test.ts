/**
 * The takeover budget on its own (`actors/_takeover_budget.ts`): credit earned by traffic at the
 * coin's rate and capped at the burst, a share per claimant, and a claimant found false twice
 * within a window benched until the older finding is a window old (a fake clock).
 */
import assert from "node:assert/strict";
import {
  MAX_FALSE_CLAIMS,
  MAX_OPEN_TAKEOVERS_PER_CLAIMANT,
  TAKEOVER_BURST,
  TakeoverBudget,
} from "../../actors/_takeover_budget.ts";

const WINDOW = 600_000;

Deno.test("takeovers spend credit earned at the coin's rate per receipt, never more than the burst", () => {
  const budget = new TakeoverBudget();
  for (let i = 0; i < TAKEOVER_BURST; i++) {
    assert.equal(budget.refusal(`c${i}`, 0, 0), undefined);
    budget.spend();
  }
  assert.equal(budget.refusal("other", 0, 0), "no_budget");
  // p = 0.1: ten receipts buy one takeover; a quiet stretch saves no more than the burst.
  for (let i = 0; i < 9; i++) budget.earn(0.1);
  assert.equal(budget.refusal("other", 0, 0), "no_budget");
  budget.earn(0.1);
  assert.equal(budget.credits, 1);
  for (let i = 0; i < 1_000; i++) budget.earn(0.1);
  assert.equal(budget.credits, TAKEOVER_BURST);
  budget.earn(0); // a validator that draws nothing earns nothing
  assert.equal(budget.credits, TAKEOVER_BURST);
});

Deno.test("one claimant holds a share of the budget at once, and is benched at its second false claim within a window", () => {
  const budget = new TakeoverBudget();
  assert.equal(budget.refusal("a", 0, MAX_OPEN_TAKEOVERS_PER_CLAIMANT), "claimant_busy");
  assert.equal(budget.refusal("a", 0, MAX_OPEN_TAKEOVERS_PER_CLAIMANT - 1), undefined);
  // One false claim is forgiven (a claimant cut off from the worker claims in good faith).
  budget.foundFalse("a", 1_000 + WINDOW);
  assert.equal(budget.refusal("a", 1_000, 0), undefined);
  assert.equal(MAX_FALSE_CLAIMS, 2);
  budget.foundFalse("a", 5_000 + WINDOW);
  assert.equal(budget.refusal("a", 5_000, 0), "claimant_benched");
  assert.equal(budget.refusal("b", 5_000, 0), undefined, "only the false claimant");
  // Until the older finding is a window old; then one finding counts, and a claim is taken.
  assert.equal(budget.refusal("a", 999 + WINDOW, 0), "claimant_benched");
  assert.equal(budget.refusal("a", 1_000 + WINDOW, 0), undefined);
});
