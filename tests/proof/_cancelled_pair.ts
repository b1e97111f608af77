/**
 * The cancelled pair (a worker's finished receipt over n tokens and its `cancelled` one over the
 * first k < n for the same job) and a fresh ledger fed it in a given order: what the cancelled
 * pair tests share.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { assigned, receipt, resigned, withLedgerDir } from "./_ledger_fixtures.ts";

/** The ledger's owner. */
export const owner: Identity = Identity.generate();
/** Who proves a receipt wrong (`{ proof }` steps). */
export const accuser: Identity = Identity.generate();
/** The challenge window, ms. */
export const WINDOW = 100;
/** The worker's deposit. */
export const STAKE = 100_000;
/** The finished receipt's token count. */
export const N = 8;
/** The cancelled receipt's token count. */
export const K = 3;
/** The slash multiplier of the default economics (the token price is 1). */
export const M = 20;

/** An account as the ledger reports it. */
export type Acc = { balance: number; stake: number; locked: number };

/**
 * What a ledger is fed: a receipt, with the job's assignment or without; a confirmed fraud proof
 * against a receipt; or the challenge window's close.
 */
export type Step =
  | { r: Receipt; assigned: boolean }
  | { proof: Receipt }
  | "close";

/** The options of a ledger on `clock` with the {@link WINDOW}, checkpointing every `every`. */
export function pairLedgerOptions(clock: { t: number }, checkpointEvery = 0) {
  return {
    now: () => clock.t,
    economics: { challengeWindowMs: WINDOW },
    checkpointEvery,
  };
}

/**
 * A fresh ledger fed `steps` (with `rebuildEach`, its index deleted and rebuilt from the log
 * before each), its window closed, then reopened from disk (replayed from genesis; the replay
 * must agree): the worker's and the accuser's accounts, and the codes of the refusals.
 */
export async function settle(
  worker: Identity,
  steps: Step[],
  rebuildEach = false,
): Promise<{ worker: Acc; accuser: Acc; refused: string[] }> {
  let out: { worker: Acc; accuser: Acc; refused: string[] } | undefined;
  await withLedgerDir(async (dir, clock) => {
    const options = pairLedgerOptions(clock);
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, STAKE);
    await ledger.deposit(accuser.publicKey, 1_000);
    const refused: string[] = [];
    const code = (e: { code?: string }) => void refused.push(e.code ?? String(e));
    for (const step of steps) {
      if (rebuildEach) {
        // Close, delete the index, reopen: the index rebuilt from the log before each step.
        await ledger.close();
        await Deno.remove(join(dir, INDEX_FILE));
        ledger = await Ledger.open(dir, owner, options);
      }
      if (step === "close") {
        clock.t += WINDOW + 1;
        await ledger.finalizeDue();
      } else if ("proof" in step) {
        await ledger.settleFraud({
          receiptId: receiptId(step.proof),
          receipt: step.proof,
          fraudProofHash: "ab".repeat(32),
          validator: accuser.publicKey,
          confirmed: true,
          reason: "fingerprint",
        }).catch(code);
      } else {
        await ledger.recordReceipt(step.r, step.assigned ? assigned(step.r) : {}).catch(code);
      }
    }
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    const live = {
      worker: ledger.account(worker.publicKey) as Acc,
      accuser: ledger.account(accuser.publicKey) as Acc,
    };
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    assert.deepEqual(
      { worker: ledger.account(worker.publicKey), accuser: ledger.account(accuser.publicKey) },
      live,
      "replayed alike",
    );
    await ledger.close();
    out = { ...live, refused };
  });
  return out!;
}

/** A fresh worker's finished receipt of fixture job `n` over {@link N}, and its cancelled one over {@link K}. */
export function pair(n: number): { worker: Identity; finished: Receipt; cancelled: Receipt } {
  const worker = Identity.generate();
  const finished = receipt(n, N, worker);
  const cancelled = resigned(finished, {
    tokenCount: K,
    outputHash: "44".repeat(32),
    commitment: { ...finished.commitment, root: "55".repeat(32) },
    end: "cancelled",
  }, worker);
  return { worker, finished, cancelled };
}
