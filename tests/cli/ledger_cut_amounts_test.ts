/**
 * The cut report's amounts are kept to a millionth, as the ledger keeps them (review s75 G5):
 * raw differences and sums of doubles printed `-0.30000000004656613` and `-2.800000000046566`.
 */
import assert from "node:assert/strict";
import { describeCut } from "../../cli/ledger_command.ts";
import type { LedgerCutAccount, LedgerCutSummary } from "../../proof/ledger_repair.ts";

/** An account whose stake goes from `before` to `after` with the cut. */
function account(key: string, before: number, after: number): LedgerCutAccount {
  return {
    key,
    before: { balance: 0, stake: before, locked: 0 },
    after: { balance: 0, stake: after, locked: 0 },
    inKept: true,
  };
}

Deno.test("describeCut prints stake changes and totals of fractional amounts rounded to the ledger's millionth", () => {
  const own = "a".repeat(64);
  const cut: LedgerCutSummary = {
    signedEntries: 4,
    kinds: { stake: 4 },
    notApplied: 0,
    // Amounts the ledger holds (to a millionth) whose double differences carry noise.
    accounts: [
      account(own, 1000000.3, 1000000),
      account("b".repeat(64), 0.7, 0.2),
      account("c".repeat(64), 2.1, 0.1),
    ],
    copies: 0,
    unverifiedKinds: {},
    unverifiedAccounts: [],
    otherBytes: 0,
  };
  const lines = describeCut(cut, own).join("\n");
  assert.match(lines, /cut: in all, 3 accounts: stake -2\.8$/m);
  assert.match(
    lines,
    new RegExp(`account ${own} \\(this node\\): stake 1000000\\.3 → 1000000 \\(-0\\.3\\)$`, "m"),
  );
  assert.match(lines, /stake 0\.7 → 0\.2 \(-0\.5\)$/m);
  assert.match(lines, /stake 2\.1 → 0\.1 \(-2\)$/m);
});
