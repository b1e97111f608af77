/**
 * `Ledger.account` and the key it takes (`proof/account_key.ts`): bytes that are not a 32-byte
 * ed25519 public key name no account and are refused with `InvalidAccountKeyError`, where they
 * were answered with the zeros of an unknown key (review s73, F6) — "no money" could not be told
 * from "the wrong bytes".
 *
 * @module
 */
import assert from "node:assert/strict";
import { InvalidAccountKeyError, Ledger } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";

Deno.test("ledger: an account looked up by a key that is not 32 bytes is refused with invalid_account_key, not answered with zeros", () =>
  withLedgerDir(async (dir) => {
    const owner = Identity.generate();
    const staked = Identity.generate();
    const ledger = await Ledger.open(dir, owner);
    try {
      await ledger.deposit(staked.publicKey, 250);
      const bad: unknown[] = [
        new Uint8Array(0),
        new Uint8Array(31),
        staked.publicKey.subarray(0, 31),
        new Uint8Array(33),
        undefined,
        "ab".repeat(32),
      ];
      for (const key of bad) {
        assert.throws(() => ledger.account(key as Uint8Array), (e) => {
          assert.ok(e instanceof InvalidAccountKeyError, `${String(key)}: ${e}`);
          assert.equal(e.code, "invalid_account_key");
          return true;
        });
      }
      // A well-formed key still answers: its balances, or zeros for a key never seen.
      assert.equal(ledger.account(staked.publicKey).stake, 250);
      assert.deepEqual(ledger.account(Identity.generate().publicKey), {
        balance: 0,
        stake: 0,
        locked: 0,
      });
    } finally {
      await ledger.close();
    }
  }));
