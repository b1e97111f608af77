/**
 * A trainer convicted of equivocation for a round (its second, different receipt for it) is not
 * paid for that round, whichever came first in a ledger (review s79 vlate, F2). Its first receipt
 * closed before the conviction — unpaid, then paid by the round's late credit
 * (`training_late_credit`), or paid when its window ended — kept that pay: a ledger that heard the
 * credit first ended 300 richer than one that heard the second receipt first, and one that heard
 * the second receipt after the window ended richer than one that heard it inside. The conviction
 * of a closed receipt now takes back the credit it was paid (`reclaimed` in the
 * `training_equivocation` entry), so every order ends with the same account, also after a reopen,
 * with the index rebuilt from the log, and replayed from genesis; an entry written before carries
 * no `reclaimed` and replays as it was.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { type Account, Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { CHECKPOINT_FILE } from "../../proof/ledger_checkpoint.ts";
import type { LedgerEntry } from "../../proof/ledger_entry.ts";
import { LedgerState } from "../../proof/ledger_state.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";
import { START, trainingReceipt } from "./_training_receipt.ts";

const WINDOW = 100;
const STAKE = 1_000_000;
const STEPS = 3;
/** A reference step earns `trainingCreditPerStep` (`_training_receipt.ts`). */
const CREDIT = STEPS * DEFAULT_ECONOMICS.trainingCreditPerStep;
/** What a receipt locks, and what equivocation on two equal claims slashes. */
const LOCK = CREDIT * DEFAULT_ECONOMICS.slashMultiplier;
const terms = (round: number) => ({ round, startModel: START, steps: STEPS });
const options = (clock: { t: number }) => ({
  now: () => clock.t,
  economics: { challengeWindowMs: WINDOW },
});

/** What happens to a ledger, in order, after the trainer's first receipt for round 1. */
type Step = "credit" | "second receipt" | "window ends";

/** The trainer's account as a convicted trainer with no other pay ends it: unpaid, slashed. */
const CONVICTED: Account = { balance: 0, stake: STAKE - LOCK, locked: 0 };

/**
 * A ledger that records the trainer's receipt for round 1 uncredited, then takes `steps` in
 * order (the round's credit for it, its second receipt for the round, its window's end), then
 * every window ends. With `paidRound` the trainer also has a receipt for round 2 credited and
 * paid, which no conviction for round 1 touches. The trainer's account, live and after a reopen,
 * with the index rebuilt from the log and replayed from genesis.
 */
async function run(steps: Step[], paidRound = false): Promise<Record<string, Account>> {
  const owner = Identity.generate();
  const trainer = Identity.generate();
  const first = trainingReceipt(trainer, 1, STEPS, "d1");
  const second = trainingReceipt(trainer, 1, STEPS, "d2");
  const seen: Record<string, Account> = {};
  await withLedgerDir(async (dir, clock) => {
    let ledger = await Ledger.open(dir, owner, options(clock));
    await ledger.deposit(trainer.publicKey, STAKE);
    if (paidRound) {
      const other = trainingReceipt(trainer, 2, STEPS, "d3");
      await ledger.recordTrainingReceipt(other, terms(2), { credited: false });
      assert.equal(await ledger.creditTrainingReceipt(trainingReceiptId(other)), true);
    }
    await ledger.recordTrainingReceipt(first, terms(1), { credited: false });
    for (const step of steps) {
      if (step === "credit") await ledger.creditTrainingReceipt(trainingReceiptId(first));
      if (step === "second receipt") {
        await assert.rejects(
          () => ledger.recordTrainingReceipt(second, terms(1), { credited: false }),
          (error: unknown) => (error as { code?: string }).code === "equivocation",
        );
      }
      if (step === "window ends") {
        clock.t += WINDOW + 1;
        await ledger.finalizeDue();
      }
    }
    clock.t += 10 * WINDOW;
    await ledger.finalizeDue();
    seen.live = { ...ledger.account(trainer.publicKey) };
    await ledger.close();
    for (const how of ["reopened", "index rebuilt", "replayed from genesis"]) {
      if (how === "index rebuilt") await Deno.remove(join(dir, INDEX_FILE));
      if (how === "replayed from genesis") await Deno.remove(join(dir, CHECKPOINT_FILE));
      ledger = await Ledger.open(dir, owner, options(clock));
      // The round's credit again (another audit of the outcome) pays nothing either.
      await ledger.creditTrainingReceipt(trainingReceiptId(first));
      seen[how] = { ...ledger.account(trainer.publicKey) };
      await ledger.close();
    }
  });
  return seen;
}

/** `account` seen the same live and after every reopen. */
function everywhere(account: Account): Record<string, Account> {
  return {
    live: account,
    reopened: account,
    "index rebuilt": account,
    "replayed from genesis": account,
  };
}

Deno.test("a trainer convicted of equivocation after its receipt closed unpaid ends unpaid whether the round's late credit came before or after the conviction", async () => {
  const creditFirst = await run(["window ends", "credit", "second receipt"]);
  const convictionFirst = await run(["window ends", "second receipt", "credit"]);
  assert.deepEqual({ creditFirst, convictionFirst }, {
    creditFirst: everywhere(CONVICTED),
    convictionFirst: everywhere(CONVICTED),
  });
});

Deno.test("a training receipt paid when its window ended and then convicted of equivocation ends as one convicted inside its window", async () => {
  const convictedInside = await run(["credit", "second receipt", "window ends"]);
  const convictedAfterPay = await run(["credit", "window ends", "second receipt"]);
  assert.deepEqual({ convictedInside, convictedAfterPay }, {
    convictedInside: everywhere(CONVICTED),
    convictedAfterPay: everywhere(CONVICTED),
  });
});

Deno.test("the conviction takes back only the convicted round's pay: the trainer keeps what another round paid it", async () => {
  const keptOther = { ...CONVICTED, balance: CREDIT };
  const late = await run(["window ends", "credit", "second receipt"], true);
  const inTime = await run(["credit", "window ends", "second receipt"], true);
  const convictionFirst = await run(["window ends", "second receipt", "credit"], true);
  assert.deepEqual({ late, inTime, convictionFirst }, {
    late: everywhere(keptOther),
    inTime: everywhere(keptOther),
    convictionFirst: everywhere(keptOther),
  });
});

Deno.test("a `training_equivocation` entry written before the take-back (no `reclaimed`) replays as it was: the closed receipt's pay stays", () => {
  const state = new LedgerState();
  const entry = (seq: number, kind: LedgerEntry["kind"], body: Record<string, unknown>) =>
    ({
      seq,
      prev: "",
      at: 0,
      kind,
      body,
      signer: new Uint8Array(),
      sig: new Uint8Array(),
    }) as LedgerEntry;
  state.apply(entry(1, "stake", { key: "aa", amount: STAKE }));
  state.apply(
    entry(2, "training_receipt", {
      receiptId: "r1",
      slot: "training/1/s/aa",
      worker: "aa",
      credit: 0,
      locked: LOCK,
      pendingUntil: 1_100,
    }),
  );
  state.apply(entry(3, "final", { receiptId: "r1" }));
  state.apply(
    entry(4, "training_late_credit", {
      receiptId: "r1",
      requester: "bb",
      credit: CREDIT,
      worker: "aa",
    }),
  );
  state.apply(
    entry(5, "training_equivocation", {
      slot: "training/1/s/aa",
      receiptId: "r1",
      worker: "aa",
      slashed: LOCK,
    }),
  );
  assert.deepEqual(state.account("aa"), { balance: CREDIT, stake: STAKE - LOCK, locked: 0 });
});
