/**
 * The stop-44 fraud-check hold tests' set-up: a validator (no challenges of its own) whose model
 * loads can be held (a check that takes its time), a worker and an accuser each staked
 * {@link STAKE}, and one assigned receipt recorded; the test runs with it, and everything is
 * shut down and removed after.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage, ValidatorModelSource } from "../../actors/validator_messages.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import type { TextJob } from "../../protocols/job.ts";
import {
  announceAssigned,
  f,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

/** What the worker and the accuser each stake. */
export const STAKE = 10_000;

/** The honest model, its loads held from `hold()` until `release()`: a check that takes its time. */
export function slowModels(): {
  models: ValidatorModelSource;
  hold: () => void;
  release: () => void;
} {
  const gate = Promise.withResolvers<void>();
  let held = false;
  const models: ValidatorModelSource = {
    has: (cid) => cid === f.honest.info.cid,
    get: async (cid) => {
      if (held) await gate.promise;
      return cid === f.honest.info.cid ? f.honest : undefined;
    },
  };
  return { models, hold: () => void (held = true), release: () => gate.resolve() };
}

/** What a test gets from {@link withHeldReceipt}. */
export interface HeldReceipt {
  validator: ActorRef<ValidatorMessage>;
  ledger: ReturnType<typeof ledgerReads>;
  clock: { t: number };
  slow: ReturnType<typeof slowModels>;
  worker: Identity;
  accuser: Identity;
  job: TextJob;
  proved: Awaited<ReturnType<typeof proveOn>>;
  id: string;
  rec: ReceiptRecord;
}

/** Run `test` with the set-up of the module doc; `cheat` proves the job on another model. */
export async function withHeldReceipt(
  nonce: string,
  cheat: boolean,
  test: (held: HeldReceipt) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, worker, accuser, requester] = Array.from({ length: 4 }, Identity.generate);
  const job = textJob(requester, nonce);
  const proved = await (cheat ? proveOn(job, worker, f.otherSeed) : proveOn(job, worker));
  const id = receiptId(proved.receipt);
  const slow = slowModels();
  const system = new ActorSystem({ name: `held-receipt-${nonce}` });
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 0,
      models: slow.models,
    });
    for (const key of [worker, accuser]) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
    }
    assert.ok((await announceAssigned(validator, proved.receipt, job, requester)).recorded);
    const ledger = ledgerReads(() => validator, clock);
    const rec = (await ledger.record(id))!;
    await test({ validator, ledger, clock, slow, worker, accuser, job, proved, id, rec });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}
