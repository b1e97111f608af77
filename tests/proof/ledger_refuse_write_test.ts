/**
 * A ledger told to refuse writes (`LedgerOptions.refuseWrite`: a read-only node on a full disk,
 * `node/disk_room.ts`) refuses each append with the error it is given (`disk_full`) before
 * anything is decided or written: `ledger.log` and `checkpoint.cbor` stay byte for byte as they
 * were, the ledger is not poisoned, its reads are answered, receipts due are left due, and once the
 * refusal lifts the same ledger takes the write, with no reopen.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LOG_FILE } from "../../proof/ledger_log.ts";
import { CHECKPOINT_FILE } from "../../proof/ledger_checkpoint.ts";
import { DiskFullError } from "../../storage/errors.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";

const owner = Identity.generate();
const staker = Identity.generate();

/** The ledger's durable files, byte for byte. */
async function durableBytes(dir: string): Promise<Uint8Array[]> {
  return await Promise.all(
    [LOG_FILE, CHECKPOINT_FILE].map((name) => Deno.readFile(join(dir, name))),
  );
}

Deno.test("a ledger that refuses writes rejects an append with the refusal, writes nothing, is not poisoned, and takes the write once the refusal lifts", () =>
  withLedgerDir(async (dir) => {
    const first = await Ledger.open(dir, owner);
    await first.deposit(staker.publicKey, 5);
    await first.close();
    const before = await durableBytes(dir);

    let full = true;
    const refusal = () => new DiskFullError(undefined, "read-only: the disk is full");
    const ledger = await Ledger.open(dir, owner, {
      refuseWrite: () => full ? refusal() : undefined,
    });
    try {
      assert.equal(ledger.writeRefusal()?.message, "read-only: the disk is full");
      await assert.rejects(ledger.deposit(staker.publicKey, 7), (error: unknown) => {
        assert.ok(error instanceof DiskFullError, String(error));
        assert.equal(error.code, "disk_full");
        return true;
      });
      assert.equal(ledger.poisoned, false);
      assert.deepEqual(await ledger.finalizeDue(), []);
      // Reads are answered from what was recorded.
      assert.equal(ledger.account(staker.publicKey).stake, 5);
      assert.equal(ledger.length, 2);
      assert.deepEqual(await durableBytes(dir), before);

      full = false;
      await ledger.deposit(staker.publicKey, 7);
      assert.equal(ledger.account(staker.publicKey).stake, 12);
    } finally {
      await ledger.close();
    }
  }));

Deno.test("a ledger closed while it refuses writes leaves its log and checkpoint byte-identical", () =>
  withLedgerDir(async (dir) => {
    const first = await Ledger.open(dir, owner);
    await first.deposit(staker.publicKey, 5);
    await first.close();
    const before = await durableBytes(dir);
    const ledger = await Ledger.open(dir, owner, {
      refuseWrite: () => new DiskFullError(undefined, "read-only"),
    });
    await ledger.deposit(staker.publicKey, 1).catch(() => {});
    await ledger.close();
    assert.deepEqual(await durableBytes(dir), before);
    const again = await Ledger.open(dir, owner);
    assert.equal(again.account(staker.publicKey).stake, 5);
    await again.close();
  }));
