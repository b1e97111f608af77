/**
 * Two confirmed fraud proofs from two accusers about one job: one about the receipt its worker
 * recorded here (R, 4 tokens), one about another claim the worker signed for the job (R′, 40
 * tokens and another output: its equivocation too). Every ledger ends the same whichever came
 * first: slashed once for the larger claim, and the accusers paid the same share of that slash in
 * all (review s79, F2). Each order is read again after a reopen that rebuilds the index from the log.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { type Account, Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { assigned, receipt, resigned, withLedgerDir } from "./_ledger_fixtures.ts";

type Order = "recorded_first" | "variant_first";

interface Outcome {
  codes: string[];
  worker: Account;
  v1: Account;
  v2: Account;
}

/** One ledger's end, the two proofs heard in `order`, then the same two again. */
function run(order: Order): Promise<Outcome> {
  let out: Outcome | undefined;
  return withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const worker = Identity.generate();
    const v1 = Identity.generate();
    const v2 = Identity.generate();
    let ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, 10_000);
    await ledger.deposit(v1.publicKey, 1_000);
    await ledger.deposit(v2.publicKey, 1_000);
    const r = receipt(7941, 4, worker); // lock 80
    const variant = resigned(r, { tokenCount: 40, outputHash: "77".repeat(32) }, worker); // 800
    await ledger.recordReceipt(r, assigned(r));
    const onRecorded = () =>
      ledger.settleFraud({
        receiptId: receiptId(r),
        receipt: r,
        fraudProofHash: "a1".repeat(32),
        validator: v1.publicKey,
        confirmed: true,
        reason: "fingerprint_mismatch",
      });
    const onVariant = () =>
      ledger.settleFraud({
        receiptId: receiptId(variant),
        receipt: variant,
        fraudProofHash: "a2".repeat(32),
        validator: v2.publicKey,
        confirmed: true,
        reason: "fingerprint_mismatch",
      });
    const codes: string[] = [];
    const steps = order === "recorded_first" ? [onRecorded, onVariant] : [onVariant, onRecorded];
    for (const step of [...steps, ...steps]) {
      codes.push(await step().then(() => "settled", (e) => e.code));
      await ledger.close();
      await Deno.remove(join(dir, INDEX_FILE));
      ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    }
    // The other claim announced as a receipt now: its equivocation is settled already.
    const before = ledger.account(worker.publicKey);
    codes.push(await ledger.recordReceipt(variant).then(() => "recorded", (e) => e.code));
    assert.deepEqual(ledger.account(worker.publicKey), before, "not slashed again");
    out = {
      codes,
      worker: ledger.account(worker.publicKey),
      v1: ledger.account(v1.publicKey),
      v2: ledger.account(v2.publicKey),
    };
    await ledger.close();
  }).then(() => out!);
}

Deno.test("ledger variant proof order: proofs about a recorded receipt and its worker's other claim slash the same in either order", async () => {
  const recordedFirst = await run("recorded_first");
  const variantFirst = await run("variant_first");
  // The larger claim's lock (800), once; each proof settled once, a repeat refused.
  assert.equal(variantFirst.worker.stake, 9_200);
  assert.deepEqual(recordedFirst.worker, variantFirst.worker);
  // Half of the 800 taken, to the accusers together: the first proof's accuser takes its claim's
  // share, the second what is left of the slash.
  const paid = (o: Outcome) => o.v1.balance + o.v2.balance;
  assert.equal(paid(variantFirst), 400);
  assert.equal(paid(recordedFirst), 400);
  assert.deepEqual(recordedFirst.codes.slice(0, 2), ["settled", "settled"]);
  assert.deepEqual(variantFirst.codes.slice(0, 1), ["settled"]);
  // Heard again, neither proof settles a second time.
  for (const code of [...recordedFirst.codes.slice(2), ...variantFirst.codes.slice(2)]) {
    assert.ok(code !== "settled" && code !== "recorded", code);
  }
});
