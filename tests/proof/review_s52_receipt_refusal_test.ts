/**
 * Review s52: `Ledger.receiptRefusal`, the question the ValidatorActor asks before it does any
 * work that depends on a receipt's challenge coin (`tests/actors/review_s52_coin_probe_test.ts`):
 * it must answer what `recordReceipt` then does, and write nothing — not even the slash of an
 * equivocation, which `recordReceipt` writes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Ledger } from "../../proof/ledger.ts";
import { assigned, receipt, resigned, withLedgerDir } from "./_ledger_fixtures.ts";

const M = DEFAULT_ECONOMICS.slashMultiplier;

Deno.test("review s52: receiptRefusal answers what recordReceipt then does, and writes nothing", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, Identity.generate(), { now: () => clock.t });
    try {
      const worker = Identity.generate();
      const copier = Identity.generate();
      await ledger.deposit(worker.publicKey, 10 * M);
      await ledger.deposit(copier.publicKey, 1_000);
      const first = receipt(1, 10, worker);
      const cases: [string, () => ReturnType<typeof receipt>, unknown, string | undefined][] = [
        // 10 tokens lock all 10·m of the stake: nothing left for a second receipt.
        ["recordable", () => first, assigned(first), undefined],
        ["stake all locked", () => receipt(2, 1, worker), {}, "insufficient_stake"],
        ["the same receipt again", () => first, {}, "duplicate_receipt"],
        [
          "another key's copy, unassigned",
          () => receipt(1, 10, copier),
          {},
          "job_already_recorded",
        ],
        [
          "another claim for the job",
          () => resigned(first, { tokenCount: 9 }, worker),
          {},
          "equivocation",
        ],
      ];
      for (const [name, make, options, refusal] of cases) {
        const r = make();
        const length = ledger.length;
        const stake = ledger.account(worker.publicKey).stake;
        assert.equal(
          ledger.receiptRefusal(r, options as { assignment?: unknown }),
          refusal,
          name,
        );
        assert.equal(ledger.length, length, `${name}: nothing written`);
        assert.equal(ledger.account(worker.publicKey).stake, stake, `${name}: nothing slashed`);
        const outcome = await ledger.recordReceipt(r, options as { assignment?: unknown }).then(
          () => undefined,
          (error) => (error as { code: string }).code,
        );
        assert.equal(outcome, refusal, `${name}: recordReceipt`);
      }
      assert.equal(ledger.receipt(receiptId(first))!.status, "fraud", "the equivocation slashed");
    } finally {
      await ledger.close();
    }
  }));
