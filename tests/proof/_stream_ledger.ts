/**
 * Fixtures of the stream-conviction ledger tests (`ledger_stream_fraud_test.ts`,
 * `ledger_stream_accusation_test.ts`): a ledger pricing the fixture model at {@link PRICE}, the
 * files a replay from genesis removes, and a refusal matcher.
 *
 * @module
 */
import { Ledger, LedgerRejectedError } from "../../proof/ledger.ts";
import { CHECKPOINT_FILE } from "../../proof/ledger_checkpoint.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import type { Identity } from "../../protocols/identity.ts";
import { job } from "./_ledger_fixtures.ts";

/** The fixture model's price per token here (not the default 1: the price is the model's). */
export const PRICE = 0.25;
/** The fixture jobs' model. */
export const MODEL = job(0).model;

/** What a ledger derives from its log: removed, every entry is replayed from genesis. */
export const STATE_FILES = [CHECKPOINT_FILE, INDEX_FILE, `${INDEX_FILE}-wal`, `${INDEX_FILE}-shm`];

/** A ledger of `me` in `dir` on `clock`, pricing the fixture model at {@link PRICE}. */
export function openPriced(dir: string, me: Identity, clock: { t: number }): Promise<Ledger> {
  return Ledger.open(dir, me, {
    now: () => clock.t,
    tokenPrice: (model) => model === MODEL ? PRICE : 1_000,
  });
}

/** Whether an error is a {@link LedgerRejectedError} of `code`. */
export function refusedWith(code: string): (e: unknown) => boolean {
  return (e) => e instanceof LedgerRejectedError && e.code === code;
}
