/**
 * Review s48 of a crash between a receipt's draw and its challenge (`ValidatorActor`'s receipt
 * intake and start): a validator that draws a receipt records it, then opens its challenge in a
 * second ledger write. A process killed between the two left the receipt `pending` in the log,
 * and the restarted validator never challenged it: the cheat it had drawn was paid unchecked
 * when its window closed. The crash is taken as a copy of the ledger directory made at that
 * instant (what a `kill -9` there leaves on disk), and a validator with the same key is started
 * on the copy: no clock or timer is raced.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorActivity } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const STAKE = 10_000;

/** Copy the folder `from` to `to` as it is at this instant (synchronously: nothing runs between). */
function copyNow(from: string, to: string): void {
  Deno.mkdirSync(to, { recursive: true });
  for (const entry of Deno.readDirSync(from)) {
    const [a, b] = [join(from, entry.name), join(to, entry.name)];
    if (entry.isDirectory) copyNow(a, b);
    else if (entry.isFile) Deno.copyFileSync(a, b);
  }
}

/**
 * A validator that draws every receipt hears the worker's (a cheat's, or an honest one's); the
 * process dies right after the receipt is recorded, before its challenge is opened. A validator
 * with the same key starts on what the disk held then, challenges run, the window closes.
 * Returns the receipt's status and the worker's account there.
 */
async function afterCrashAtDraw(cheat: boolean) {
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const job = textJob(requester, `drawn-${cheat}`);
  const { receipt, proof } = await proveOn(job, worker, cheat ? f.otherSeed : f.honest);
  const id = receiptId(receipt);
  const served = signServedProof(id, proof, worker);
  const source = { proof: () => Promise.resolve<ServedProof | undefined>(served) };
  const crashed = join(dir, "crashed");
  try {
    const before = new ActorSystem({ name: `s48-drawn-before-${cheat}` });
    try {
      const ledgerDir = join(dir, "ledger");
      const validator = await spawnValidator(before, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 1,
        models: HONEST_MODELS,
        source,
        // The receipt is recorded and seen as drawn; its challenge is opened next: the kill.
        onActivity: (a: ValidatorActivity) => {
          if (a.kind === "receipt" && a.challenged) copyNow(ledgerDir, crashed);
        },
      });
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
      const handled = await announceAssigned(validator, receipt, job, requester);
      assert.deepEqual([handled.recorded, handled.challenged], [true, true]);
    } finally {
      await before.shutdown();
    }
    const after = new ActorSystem({ name: `s48-drawn-after-${cheat}` });
    try {
      const validator = await spawnValidator(after, {
        identity: me,
        ledgerDir: crashed,
        clock,
        challengeProbability: 1,
        models: HONEST_MODELS,
        source,
      });
      const reads = ledgerReads(() => validator, clock);
      await reads.drained();
      await reads.closeWindow();
      const credit = receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
      return {
        status: (await reads.record(id))?.status,
        account: await reads.account(worker.publicKey),
        credit,
      };
    } finally {
      await after.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("review s48: a cheat drawn before a crash that came before its challenge opened is slashed after the restart, not paid unchecked", async () => {
  const { status, account } = await afterCrashAtDraw(true);
  assert.equal(status, "fraud", "the restarted validator owes the challenge it drew");
  assert.equal(account.balance, 0, "the cheat keeps no pay");
  assert.ok(account.stake < STAKE, "its stake is slashed");
});

Deno.test("review s48: an honest receipt drawn before a crash that came before its challenge opened is checked after the restart and paid", async () => {
  const { status, account, credit } = await afterCrashAtDraw(false);
  assert.equal(status, "final");
  assert.deepEqual(account, { balance: credit, stake: STAKE, locked: 0 });
});
