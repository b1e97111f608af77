/**
 * Review s61: two ways the announcement of a receipt A assigned (it forwarded the job: its own
 * signed assignment, which no other node holds) still missed a ledger that connects later, and
 * the honest worker that delivered every token was paid in A's ledger and not in C's.
 *
 * - The crash window. A's validator kept the announcement in its catch-up (a file under
 *   `catch-up-receipts/`) only after its ledger had recorded the receipt, durably: a process
 *   killed between the two came back with the receipt pending in its ledger, assigned by A, and no
 *   file to carry its job and assignment, so C never heard of it. The kill is stood in for by a
 *   copy of A's ledger directory taken at the moment the validator reports the receipt recorded
 *   (its `onActivity`, synchronously: nothing of A's after that reaches the copy), which a new
 *   process then opens, as `review_s60_catchup_receipts_test.ts` does.
 * - The worker's pledge. C joined after the worker's pledge went round, and the pledges A pushes
 *   on connect are bounded (`PLEDGES_PUSHED_ON_CONNECT`, the newest active keys first): with more
 *   active keys than that pledged after the worker, C lacked its stake, refused A's catch-up
 *   receipt `insufficient_stake` and held it for a pledge nothing sent (the live announcement asks
 *   for it, `PledgeSync.sendNeeded`; the catch-up did not).
 *
 * Every ledger runs on the test's clock; asserted on C's ledger after the window.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  PLEDGE_SEND_RESERVE,
  PLEDGES_PUSHED_ON_CONNECT,
  signStakePledge,
} from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import { HONEST_MODELS, ledgerReads, textJob } from "../actors/_validator_fixture.ts";
import {
  inLedgerSetting,
  joinLedgerNodes,
  type LedgerSetting,
  spawnSettingNode,
} from "./_ledger_node.ts";
import { paidInCAsInA, recordAssigned } from "./_assigned_receipt.ts";

const WORKER_STAKE = 1_000_000;

/** Copy directory `from` to `to` at once (no await: nothing else runs meanwhile). */
function copyDirNow(from: string, to: string): void {
  Deno.mkdirSync(to, { recursive: true });
  for (const entry of Deno.readDirSync(from)) {
    const [src, dst] = [`${from}/${entry.name}`, `${to}/${entry.name}`];
    if (entry.isDirectory) copyDirNow(src, dst);
    else if (entry.isFile) Deno.copyFileSync(src, dst);
  }
}

Deno.test("review s61: A's process killed right after its ledger recorded a receipt A assigned (no peer connected) still sends it to C after the restart: the honest worker is paid tokens × price in C as in A", () =>
  inLedgerSetting("s61-catch-up-crash", async (setting) => {
    const { dir, clock, system } = setting;
    const [a, c, worker] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const job = textJob(a, "s61-catch-up-crash");

    // A's first life, its validator alone: the copy taken as the receipt is reported recorded is
    // what a process killed at that moment leaves on disk.
    const first = new ActorSystem({ name: "s61-first-life" });
    let recorded: { id: string; tokens: number };
    let killedAt = 0;
    try {
      const validatorA = await first.spawn<ValidatorMessage>({
        name: "a/validator",
        factory: () =>
          new ValidatorActor({
            identity: a,
            ledgerDir: `${dir}/a`,
            models: HONEST_MODELS,
            challengeProbability: 0,
            finalizeIntervalMs: 0,
            ledger: { now: () => clock.t },
            onActivity: (activity) => {
              if (activity.kind !== "receipt" || !activity.recorded) return;
              killedAt++;
              copyDirNow(`${dir}/a`, `${dir}/a2`);
            },
          }),
      });
      await validatorA.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
      recorded = await recordAssigned({ validator: validatorA }, a, worker, job);
    } finally {
      await first.shutdown();
    }
    assert.equal(killedAt, 1, "the kill is stood in for once, as the receipt is recorded");

    // The process that starts on what the kill left; C, away until now, connects to it.
    const nodeA2 = await spawnSettingNode(setting, system, "a2", a);
    const { id } = recorded;
    assert.equal(
      (await nodeA2.validator.ask<{ requester?: string }>({
        type: "receipt_status",
        receiptId: id,
      }))
        ?.requester,
      toHex(a.publicKey),
      "the kill left the receipt recorded in A's ledger, assigned by A",
    );
    const nodeC = await spawnSettingNode(setting, system, "c", c);
    await nodeC.validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    await joinLedgerNodes(nodeC, nodeA2);
    await paidInCAsInA(
      clock,
      { nodeA: nodeA2, nodeC },
      a,
      worker,
      recorded,
      "C to record the receipt from A's catch-up",
    );
  }));

/**
 * A holds the pledges of `workerCount` workers, then of `others` keys pledged after them, each
 * active in its ledger (a deposit on top of its pledge), and records one receipt of each worker
 * under its own assignment, with no peer connected; C, which never heard of any of them, connects.
 * Every honest worker must be paid in C as in A: the indices of those unpaid in C are asserted
 * empty.
 */
async function workersPaidInC(
  setting: LedgerSetting,
  workerCount: number,
  others: number,
): Promise<void> {
  const { system, clock } = setting;
  const [a, c] = [Identity.generate(), Identity.generate()];
  const workers = Array.from({ length: workerCount }, () => Identity.generate());
  const nodeA = await spawnSettingNode(setting, system, "a", a);
  const pledge = (key: Identity) =>
    nodeA.validator.ask<boolean>({
      type: "pledge",
      pledge: signStakePledge(key, WORKER_STAKE, 1),
      origin: "local",
    });
  for (const worker of workers) assert.equal(await pledge(worker), true);
  for (let i = 0; i < others; i++) {
    const other = Identity.generate();
    assert.equal(await pledge(other), true);
    await nodeA.validator.ask({ type: "deposit", key: other.publicKey, amount: 1 });
  }
  const recorded: { id: string; tokens: number }[] = [];
  for (const [n, worker] of workers.entries()) {
    recorded.push(await recordAssigned(nodeA, a, worker, textJob(a, `s61-${n}`)));
  }

  const nodeC = await spawnSettingNode(setting, system, "c", c);
  for (const worker of workers) {
    assert.equal(
      await nodeC.validator.ask<boolean>({ type: "has_staked", key: worker.publicKey }),
      false,
      "C lacks the worker's stake",
    );
  }
  await joinLedgerNodes(nodeC, nodeA);
  const readsA = ledgerReads(() => nodeA.validator, clock);
  const readsC = ledgerReads(() => nodeC.validator, clock);
  await eventually(
    async () => {
      for (const { id } of recorded) if ((await readsC.record(id)) === undefined) return false;
      return true;
    },
    "C to record every receipt of A's catch-up",
  ).catch(() => {}); // lost: the ledgers tell below
  await readsA.closeWindow();
  await nodeC.validator.ask({ type: "finalize" });
  const unpaid: number[] = [];
  for (const [n, worker] of workers.entries()) {
    const paid = recorded[n].tokens * DEFAULT_ECONOMICS.defaultTokenPrice;
    assert.equal((await readsA.account(worker.publicKey)).balance, paid, "paid in A");
    if ((await readsC.account(worker.publicKey)).balance !== paid) unpaid.push(n);
  }
  assert.deepEqual(
    unpaid,
    [],
    "honest workers unpaid in a ledger that hears of them only through A",
  );
}

Deno.test("review s61: C joins after the worker's pledge went round, with more active keys pledged after it in A than A pushes on connect: the honest worker is paid tokens × price in C as in A", () =>
  inLedgerSetting(
    "s61-catch-up-pledge",
    (setting) => workersPaidInC(setting, 1, PLEDGES_PUSHED_ON_CONNECT + 1),
  ));

Deno.test("review s61: C lacks the stake of more workers of A's catch-up receipts than the room A keeps for pledges a peer needs, with more active keys pledged after them: the connect push carries those workers' pledges first, and each honest worker is paid in C as in A", () =>
  inLedgerSetting(
    "s61-catch-up-pledges-first",
    (setting) => workersPaidInC(setting, PLEDGE_SEND_RESERVE + 4, PLEDGES_PUSHED_ON_CONNECT + 1),
  ));

Deno.test("review s61: C lacks the stake of more workers of A's catch-up receipts than A pushes on connect: those left out are sent when C refuses their receipts insufficient_stake, and each honest worker is paid in C as in A", () =>
  inLedgerSetting(
    "s61-catch-up-pledges-needed",
    (setting) => workersPaidInC(setting, PLEDGES_PUSHED_ON_CONNECT + 4, 0),
  ));
