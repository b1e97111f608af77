/**
 * Review s62: a fraud proof about a receipt a ledger never recorded because another worker's
 * receipt holds its job (the second of a job its requester assigned twice, a copier's after the
 * worker's) settled nowhere there: the proven cheat kept its stake, or a false accuser its
 * penalty, where the other receipt came first. Now it settles against that receipt itself, as
 * where it was recorded: once, inside the job's window, replayed alike from the log.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { receipt, resigned, withLedgerDir } from "./_ledger_fixtures.ts";
import {
  announce,
  type Evidence,
  feed,
  parties,
  pledge,
  proof,
  seeded,
  signedProof,
  WINDOW,
} from "./review_s62_convergence_world.ts";

const { w1, w2, v1, v2 } = parties;
/** A job its requester assigned to w1 and w2; w1 cheated (locks 140 where recorded). */
const g1 = receipt(6207, 7, w1);
const g2 = receipt(6207, 7, w2);
const pledges = [
  pledge("pledge w1", w1, 100_000),
  pledge("pledge w2", w2, 100_000),
  pledge("pledge v1", v1, 1_000),
  pledge("pledge v2", v2, 1_000),
];
const a1 = announce("w1", g1, true);
const a2 = announce("w2", g2, true);
const byV2 = proof("v2 on w1", signedProof(g1, 6207, v2), g1, v2, true);
const byV1 = proof("v1 on w1", signedProof(g1, 6207, v1), g1, v1, true);

const open = (dir: string, clock: { t: number }) =>
  Ledger.open(dir, seeded(90), { now: () => clock.t, economics: { challengeWindowMs: WINDOW } });

const account = (balance: number, stake: number) => ({ balance, stake, locked: 0 });

Deno.test("a proof about the second receipt of a job assigned twice convicts its worker once, in every order, and replays alike", async () => {
  const orders: Record<string, Evidence[]> = {
    "w1 → w2 → proof → proof": [...pledges, a1, a2, byV2, byV1],
    "w2 → w1 → proof → proof": [...pledges, a2, a1, byV2, byV1],
    "w2 → proof → w1 → proof": [...pledges, a2, byV2, a1, byV1],
  };
  for (const [name, order] of Object.entries(orders)) {
    await withLedgerDir(async (dir, clock) => {
      let ledger = await open(dir, clock);
      const log = await feed(ledger, clock, order);
      const end = () => ({
        w1: ledger.account(w1.publicKey),
        w2: ledger.account(w2.publicKey),
        v1: ledger.account(v1.publicKey),
        v2: ledger.account(v2.publicKey),
        convicted: ledger.convicted(w1.publicKey),
        status: ledger.receipt(receiptId(g1))?.status,
      });
      const expected = {
        w1: account(0, 100_000 - 140),
        // Neither worker of a job assigned twice is paid.
        w2: account(0, 100_000),
        v1: account(0, 1_000),
        v2: account(70, 1_000),
        convicted: true,
        status: "fraud",
      };
      assert.deepEqual(end(), expected, name);
      assert.equal(log.refused["v1 on w1"], "not_pending", `${name}: the second proof`);
      assert.deepEqual(log.neverReady, [], name);
      await ledger.close();
      // Replayed from the log, the index lost: the same.
      await Deno.remove(join(dir, INDEX_FILE));
      ledger = await open(dir, clock);
      assert.deepEqual(end(), expected, `${name}, replayed`);
      await ledger.close();
    });
  }
});

Deno.test("a proof about a receipt never recorded is refused after the window of the receipt holding its job", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await open(dir, clock);
    for (const e of [...pledges, a2, a1]) await e.deliver(ledger);
    clock.t += WINDOW + 1;
    assert.equal(await byV2.deliver(ledger), "challenge_window_closed");
    assert.deepEqual(ledger.account(w1.publicKey), account(0, 100_000));
    assert.equal(ledger.receipt(receiptId(g1)), undefined, "still not recorded");
    await ledger.close();
  });
});

Deno.test("a worker convicted for a receipt never recorded is slashed once for the job: a proof about another variant of it is refused, a refuted one still costs its accuser", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await open(dir, clock);
    // w1's variant of its receipt for the job (other fingerprints: the same claim).
    const g1b = resigned(g1, { commitment: { ...g1.commitment, root: "45".repeat(32) } }, w1);
    const onVariant = proof("v1 on w1's variant", signedProof(g1b, 6207, v1), g1b, v1, true);
    const falseOnVariant = proof("v1 false", signedProof(g1b, 6208, v1), g1b, v1, false);
    for (const e of [...pledges, a2, a1, byV2]) {
      assert.equal(await e.deliver(ledger), e === a1 ? "double_assignment" : undefined, e.name);
    }
    assert.equal(await onVariant.deliver(ledger), "not_pending", "slashed once for the job");
    assert.equal(await falseOnVariant.deliver(ledger), undefined);
    assert.deepEqual(ledger.account(w1.publicKey), account(0, 100_000 - 140));
    assert.deepEqual(ledger.account(v1.publicKey), account(0, 1_000 - 100));
    await ledger.close();
  });
});
