/**
 * Stop 63 red team (R2): a worker's kept claim is bounded by its whole stake now
 * (`stakeCovers`), but what its other claim for the job adds to the equivocation slash is still
 * bounded by its free stake when that claim comes (`equivocationSlash`,
 * `proof/_ledger_amounts.ts`), which its receipt for another job locks or not by the order a
 * ledger heard them. So the same three receipts end differently: the copier's own receipt heard
 * before its second claim shields its stake (slashed 140, paid 10); heard after, the slash takes
 * the whole stake and the receipt is refused for want of stake (slashed 300, paid nothing).
 *
 * @module
 */
import assert from "node:assert/strict";
import { Ledger } from "../../proof/ledger.ts";
import { InsufficientStakeError } from "../../proof/ledger_errors.ts";
import type { Receipt } from "../../protocols/receipt.ts";
import { receipt, resigned, withLedgerDir } from "./_ledger_fixtures.ts";
import {
  announce,
  type Evidence,
  feed,
  parties,
  pledge,
  seeded,
  WINDOW,
} from "./review_s62_convergence_world.ts";

const { w1, copier } = parties;

/**
 * `r` announced by its requester (with its assignment), a refusal for want of stake answered as
 * `insufficient_stake` (the world's `announce` rethrows it: its receipts never lack stake).
 */
function assignedAnnouncement(name: string, r: Receipt): Evidence {
  const inner = announce(name, r, true);
  return {
    ...inner,
    deliver: (ledger) =>
      inner.deliver(ledger).catch((error) => {
        if (error instanceof InsufficientStakeError) return "insufficient_stake";
        throw error;
      }),
  };
}

/** The copier's account, and the refusals, once `order` was handled (every window over). */
async function after(order: Evidence[]) {
  let end: Record<string, unknown> | undefined;
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, seeded(93), {
      now: () => clock.t,
      economics: { challengeWindowMs: WINDOW },
    });
    const log = await feed(ledger, clock, order);
    end = { copier: ledger.account(copier.publicKey), refused: log.refused };
    await ledger.close();
  });
  return end!;
}

Deno.test({
  name:
    "R2 equivocation free stake: a copier's kept claim, its other claim and its own receipt for another job end the same whichever of the last two a ledger hears first",
  // Open (stop 63): what the larger claim adds to the equivocation slash comes from free stake
  // (`equivocationSlash`), which the copier's own receipt for another job (lock 200) takes or
  // not by arrival order: own first, slashed 140, stake 160, paid 10; big first, slashed 300,
  // stake 0, the own receipt refused `insufficient_stake`. Taking the slash from the whole stake
  // instead still ends 10 paid in one order and refused in the other; no order-free rule is
  // settled yet.
  ignore: true,
  fn: async () => {
    // w1's honest assigned receipt holds job 6361 (7 tokens). The copier (300 staked) copies it
    // bare (kept as its claim, lock 140), signs another claim for the job (100 tokens, lock
    // 2,000: its equivocation) and an honest receipt of its own for job 6362 (10 tokens, lock 200).
    const held = receipt(6361, 7, w1);
    const copy = receipt(6361, 7, copier);
    const copyBig = resigned(copy, { tokenCount: 100 }, copier);
    const own = receipt(6362, 10, copier);
    const story = [
      pledge("pledge w1", w1, 100_000),
      pledge("pledge copier", copier, 300),
      announce("w1", held, true),
      announce("copier copy", copy, false),
    ];
    const ownFirst = await after([
      ...story,
      assignedAnnouncement("copier own", own),
      announce("copier big", copyBig, false),
    ]);
    const bigFirst = await after([
      ...story,
      announce("copier big", copyBig, false),
      assignedAnnouncement("copier own", own),
    ]);
    // Today: own first, stake 160 and balance 10 (the slash takes 140: nothing free beyond the
    // own receipt's lock); big first, stake 0 (the slash takes 300) and the own receipt refused
    // `insufficient_stake`, unpaid.
    assert.deepEqual(
      bigFirst.copier,
      ownFirst.copier,
      `the same receipts end differently: ${JSON.stringify({ ownFirst, bigFirst })}`,
    );
  },
});
