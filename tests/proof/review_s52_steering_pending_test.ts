/**
 * Review s52: a steering conviction whose evidence holds more pending receipts than one ledger
 * entry can list. `Ledger.settleSteering` listed every pending evidence receipt in one `steering`
 * entry (`uncredited`, 66 bytes each, beside the paid ones it lists): past about 11,800 the entry
 * was over `MAX_ENTRY_BYTES`, refused (`entry_too_large`), so the conviction was never settled:
 * the steerer kept its stake and was paid every pending receipt when its window closed, and the
 * ValidatorActor, which settles a conviction at its start (`_steering_settlement.ts` rethrows
 * the refusal), failed every start. Settled now in several entries, each within the bound, and
 * a crash between them is finished by the next settlement with the same outcome.
 *
 * @module
 */
import assert from "node:assert/strict";
import { decodeCbor } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Ledger } from "../../proof/ledger.ts";
import { MAX_ENTRY_BYTES } from "../../proof/ledger_entry.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import {
  assigned,
  copyDir,
  frameOffsets,
  receipt,
  withLedgerDir,
  withoutFsync,
} from "./_ledger_fixtures.ts";

const M = DEFAULT_ECONOMICS.slashMultiplier;
const WINDOW = DEFAULT_ECONOMICS.challengeWindowMs;

/**
 * What a settled conviction must leave, live or reopened: the cut taken once, every pending
 * evidence receipt unpaid (its late assignment too), nothing paid at the window's end.
 */
async function assertSettled(
  ledger: Ledger,
  steerer: Identity,
  expected: { stake: number; locked: number },
  ids: string[],
  late: Receipt[],
  clock: { t: number },
): Promise<void> {
  assert.deepEqual(ledger.account(steerer.publicKey), { balance: 0, ...expected });
  assert.equal(ledger.steeringSettled(steerer.publicKey), true);
  const credited = ids.filter((id) => ledger.receipt(id)!.credit !== 0);
  assert.deepEqual(credited.slice(0, 3), [], `${credited.length} pending evidence credited`);
  // The requester's announcement comes after the conviction: still not paid.
  for (const r of late) await ledger.recordReceipt(r, assigned(r));
  for (const r of late) assert.equal(ledger.receipt(receiptId(r))!.credit, 0);
  await assert.rejects(() => ledger.settleSteering(steerer.publicKey, ids), {
    code: "already_settled",
  });
  clock.t += WINDOW + 1;
  await withoutFsync(() => ledger.finalizeDue());
  assert.equal(ledger.receipt(ids[0])!.status, "final");
  assert.equal(ledger.receipt(ids.at(-1)!)!.status, "final");
  assert.equal(ledger.account(steerer.publicKey).balance, 0, "no evidence receipt paid");
  assert.equal(ledger.account(steerer.publicKey).stake, expected.stake);
}

Deno.test("review s52: a steering conviction over more pending receipts than one entry can list is settled: none of them paid, the cut taken once, the same after a reopen and an index rebuild", () =>
  withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const steerer = Identity.generate();
    // No checkpoints: the crash image below is the log cut at an entry's end.
    const options = { now: () => clock.t, checkpointEvery: 0 };
    // Pending receipts whose verdicts passed over an end: with the 4,096 listed by id, this
    // many put the one `steering` entry of before over MAX_ENTRY_BYTES.
    const count = Math.ceil(MAX_ENTRY_BYTES / 66) - 4096 + 300;
    let ledger = await Ledger.open(dir, me, options);
    const ids: string[] = [];
    // The last few are announced without their assignment; it comes after the conviction.
    const late: Receipt[] = [];
    await withoutFsync(async () => {
      await ledger.deposit(steerer.publicKey, 1e12);
      for (let n = 0; n < count; n++) {
        const r = receipt(20_000 + n, 1, steerer);
        const unassigned = n >= count - 3;
        if (unassigned) late.push(r);
        ids.push((await ledger.recordReceipt(r, unassigned ? {} : assigned(r))).receiptId);
      }
    });
    const before = ledger.account(steerer.publicKey);
    const locked = ids.reduce((sum, id) => sum + ledger.receipt(id)!.locked, 0);
    assert.equal(locked, count * DEFAULT_ECONOMICS.defaultTokenPrice * M);
    assert.equal(before.locked, locked);
    const cut = await withoutFsync(() => ledger.settleSteering(steerer.publicKey, ids));
    assert.equal(cut, locked, "m × each pending receipt's reward");
    const expected = { stake: before.stake - cut, locked };
    // Each entry readable at the next open.
    for (const entry of ledger.entries()) {
      assert.ok(JSON.stringify(entry.body).length < MAX_ENTRY_BYTES, entry.kind);
    }
    await ledger.close();
    const image = await copyDir(dir);
    try {
      // Reopened, and with the history index rebuilt from the log.
      ledger = await Ledger.open(dir, me, options);
      await ledger.close();
      for (const suffix of ["", "-wal", "-shm"]) {
        await Deno.remove(`${dir}/index.sqlite${suffix}`).catch(() => {});
      }
      ledger = await Ledger.open(dir, me, options);
      const t0 = clock.t;
      try {
        await assertSettled(ledger, steerer, expected, ids, late, clock);
      } finally {
        await ledger.close();
      }
      const report = await verifyLedger(dir, { owner: me.publicKey });
      assert.equal(report.ok, true, JSON.stringify(report.damage));

      // A crash after the conviction's first entry, before its last: the log ends there (the
      // index rebuilt from it). The next settlement (the ValidatorActor's start) finishes it:
      // the same outcome as uninterrupted.
      const bytes = await Deno.readFile(`${image}/ledger.log`);
      const offsets = [...frameOffsets(bytes), bytes.length];
      const kinds = offsets.slice(0, -1).map((o, i) =>
        (decodeCbor(bytes.subarray(o + 4, offsets[i + 1])) as { kind: string }).kind
      );
      const first = kinds.indexOf("steering");
      assert.ok(first >= 0 && kinds.lastIndexOf("steering") > first, "settled in several entries");
      await Deno.truncate(`${image}/ledger.log`, offsets[first + 1]);
      for (const suffix of ["", "-wal", "-shm"]) {
        await Deno.remove(`${image}/index.sqlite${suffix}`).catch(() => {});
      }
      clock.t = t0;
      ledger = await Ledger.open(image, me, options);
      try {
        assert.equal(ledger.steeringSettled(steerer.publicKey), false);
        assert.equal(
          await withoutFsync(() => ledger.settleSteering(steerer.publicKey, ids)),
          cut,
        );
        await assertSettled(ledger, steerer, expected, ids, late, clock);
      } finally {
        await ledger.close();
      }
    } finally {
      await Deno.remove(image, { recursive: true });
    }
  }));
