/**
 * Review s60: the announcement of a receipt this node assigned (it forwarded the job: its own
 * signed assignment, which no other node holds) is in its validator's catch-up
 * (`actors/_catch_up.ts`), kept on disk, so it survives a restart of the validator's process
 * and reaches a ledger-keeping peer that connects afterwards. Before, one that reached no
 * ledger-keeping peer was kept in the validator's memory only (`#unsent`): A's process
 * restarting before a peer connected lost it, and the honest worker that delivered every token was
 * paid in A's ledger and in no other.
 *
 * A new process is stood in for by A's ledger directory copied under another name while A is
 * down (the catch-up is one per ledger directory in a process, `CatchUp.of`), as
 * `review_s59_catchup_restart_test.ts` does. Every ledger runs on the test's clock; asserted on
 * C's ledger after the window.
 *
 * A second branch: A and C are connected, but C's validator is down longer than C's inbox waits
 * for it (`MAX_WAIT_MS`, on C's connection clock, which the test moves), so A's announcement is
 * answered `service_unavailable`, final for A; nothing announced it again, even when C came back
 * and A and C met again, and the worker went unpaid in C.
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { MAX_WAIT_MS } from "../../network/_validator_inbox.ts";
import { eventually } from "../_helpers/wait.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { HONEST_MODELS, textJob } from "../actors/_validator_fixture.ts";
import { paidInCAsInA, recordAssigned } from "./_assigned_receipt.ts";
import {
  copyDir,
  inLedgerSetting,
  joinLedgerNodeEnds,
  joinLedgerNodes,
  type LedgerNode,
  ledgerNodeValidator,
  spawnSettingNode,
} from "./_ledger_node.ts";
import { stoppedValidator } from "./_validator_down.ts";

const WORKER_STAKE = 1_000_000;

/** What C waits for before the windows close: A's catch-up reached it. */
const FROM_CATCH_UP = "C to record the receipt from A's catch-up";

Deno.test("review s60: a receipt A assigned and recorded while no ledger-keeping peer was connected reaches C after A's process restarted: the honest worker is paid tokens × price in C as in A", () =>
  inLedgerSetting("s60-catch-up-receipts-restart", async (setting) => {
    const { dir, system } = setting;
    const [a, c, worker] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const job = textJob(a, "s60-catch-up-receipts-restart");

    // A's first life, in a system of its own: it records the worker's receipt with its own
    // assignment, as the forwarding port hands it over, with no peer connected.
    const first = new ActorSystem({ name: "s60-first-life" });
    let recorded: { id: string; tokens: number };
    try {
      const nodeA = await spawnSettingNode(setting, first, "a", a);
      await nodeA.validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
      recorded = await recordAssigned(nodeA, a, worker, job);
    } finally {
      await first.shutdown();
    }
    await copyDir(`${dir}/a`, `${dir}/a2`);

    // A's second life; C, away until now, connects to it.
    const nodeA2 = await spawnSettingNode(setting, system, "a2", a);
    const nodeC = await spawnSettingNode(setting, system, "c", c);
    await nodeC.validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    await joinLedgerNodes(nodeC, nodeA2);
    await paidInCAsInA(setting.clock, { nodeA: nodeA2, nodeC }, a, worker, recorded, FROM_CATCH_UP);
  }));

Deno.test("review s60: a receipt A assigned, announced while C's validator was down past C's inbox wait (answered service_unavailable), reaches C when they meet again: the honest worker is paid tokens × price in C as in A", () =>
  inLedgerSetting("s60-catch-up-receipts-down", async (setting) => {
    const { dir, clock, system } = setting;
    const [a, c, worker] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const timersC = new ManualTimers();
    const logA: string[] = [];
    const nodeA = await spawnSettingNode(setting, system, "a", a, {
      log: (line) => logA.push(line),
    });
    const nodeC = await spawnSettingNode(setting, system, "c", c, { peerTimers: timersC });
    for (const node of [nodeA, nodeC]) {
      await node.validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    }
    const [toC, atC] = await joinLedgerNodeEnds(nodeA, nodeC);
    const { back } = await stoppedValidator<ValidatorMessage>(
      system,
      "c/validator",
      () => ledgerNodeValidator(dir, "c", { identity: c, models: HONEST_MODELS, clock }),
    );

    const job = textJob(a, "s60-catch-up-receipts-down");
    const { id, tokens } = await recordAssigned(nodeA, a, worker, job);
    await eventually(() => atC.stats().inboundRequests === 1, "C to wait for its validator");
    await timersC.advance(MAX_WAIT_MS);
    // On C's clock, not the real one: the answer comes long before 10 s of real time.
    await eventually(
      () => logA.some((l) => l.includes("not running")),
      "A to hear service_unavailable",
      { timeoutMs: 3_000 },
    );
    await back();
    // They meet again (the old connection closed): A's catch-up goes to C.
    await toC.close();
    const cAgain: LedgerNode = {
      validator: system.lookup<ValidatorMessage>("c/validator")!,
      network: nodeC.network,
    };
    await joinLedgerNodes(nodeA, cAgain);
    await paidInCAsInA(
      setting.clock,
      { nodeA, nodeC: cAgain },
      a,
      worker,
      { id, tokens },
      FROM_CATCH_UP,
    );
  }));
