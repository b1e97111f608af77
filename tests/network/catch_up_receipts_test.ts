/**
 * Receipts in a node's catch-up: those it assigned and recorded with no ledger-keeping peer, those a
 * relay passed on to no ledger (kept across its restart), those a peer refused as not kept for the
 * worker's pledge, and an honest worker's receipts that arrive before its pledge.
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import type {
  AssignedReceiptItem,
  CatchUpItem,
  ReceiptHandled,
  ValidatorMessage,
} from "../../actors/validator_messages.ts";
import { MAX_WAIT_MS } from "../../network/_validator_inbox.ts";
import { eventually } from "../_helpers/wait.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import {
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
import { paidInCAsInA, recordAssigned } from "./_assigned_receipt.ts";
import {
  copyDir,
  inLedgerSetting,
  joinLedgerNodeEnds,
  joinLedgerNodes,
  type LedgerNode,
  ledgerNodeValidator,
  type LedgerSetting,
  spawnSettingNode,
  STAKE,
} from "./_ledger_node.ts";
import { stoppedValidator } from "./_validator_down.ts";
import assert from "node:assert/strict";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { toHex } from "../../protocols/hash.ts";
import type { ActorContext } from "../../actors/actor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { MAX_AWAITING_STAKE_PER_WORKER } from "../../actors/_validator_memory.ts";
import { sendCatchUp } from "../../network/catch_up.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import type { Connection } from "../../protocols/connection.ts";
import type {
  ReceiptAckBody,
  ReceiptAnnouncementBody,
} from "../../protocols/inference_messages.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { PLEDGES_PUSHED_ON_CONNECT, signStakePledge } from "../../protocols/stake_pledge.ts";

// ---- assigned receipts kept on disk ---------------------------------------------------------------
// The announcement of a receipt this node assigned (it forwarded the job: its own signed
// assignment, which no other node holds) is in its validator's catch-up (`actors/_catch_up.ts`),
// kept on disk, so it survives a restart of the validator's process and reaches a ledger-keeping
// peer that connects afterwards. Before, one that reached no ledger-keeping peer was kept in the
// validator's memory only (`#unsent`): A's process restarting before a peer connected lost it, and
// the honest worker that delivered every token was paid in A's ledger and in no other.
//
// A new process is stood in for by A's ledger directory copied under another name while A is
// down (the catch-up is one per ledger directory in a process, `CatchUp.of`), as
// `catch_up_restart_test.ts` does. Every ledger runs on the test's clock; asserted on
// C's ledger after the window.
//
// A second branch: A and C are connected, but C's validator is down longer than C's inbox waits
// for it (`MAX_WAIT_MS`, on C's connection clock, which the test moves), so A's announcement is
// answered `service_unavailable`, final for A; nothing announced it again, even when C came back
// and A and C met again, and the worker went unpaid in C.

const WORKER_STAKE = 1_000_000;

/** What C waits for before the windows close: A's catch-up reached it. */
const FROM_CATCH_UP = "C to record the receipt from A's catch-up";

Deno.test("a receipt A assigned and recorded while no ledger-keeping peer was connected reaches C after A's process restarted: the honest worker is paid tokens × price in C as in A", () =>
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

Deno.test("a receipt A assigned, announced while C's validator was down past C's inbox wait (answered service_unavailable), reaches C when they meet again: the honest worker is paid tokens × price in C as in A", () =>
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

// ---- relay no validator ---------------------------------------------------------------------------
// A receipt passed on by a relay (a node that neither did the work nor assigned it) while the relay
// has no other ledger-keeping peer: is it kept by the relay and delivered when a ledger comes, or
// lost there? A forwards W's job and announces W's receipt to R, its one peer; R records it and
// passes it on to its other peers — none yet. C then connects to R, and only to R. Asserted on C's
// ledger after the window: W is paid in C as in A and R.

/**
 * Nodes A, R and C, each staking worker W; R joined to A alone; W's receipt for a job A assigned
 * (named `job`) recorded in A and, passed on, in R.
 */
async function relayed(setting: LedgerSetting, job: string) {
  const { system, clock } = setting;
  const [a, r, c, worker] = [1, 2, 3, 4].map(() => Identity.generate());
  const nodeA = await spawnSettingNode(setting, system, "a", a);
  const nodeR = await spawnSettingNode(setting, system, "r", r);
  const nodeC = await spawnSettingNode(setting, system, "c", c);
  for (const node of [nodeA, nodeR, nodeC]) {
    await node.validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
  }
  await joinLedgerNodes(nodeR, nodeA);
  const { id, tokens } = await recordAssigned(nodeA, a, worker, textJob(a, job));
  const readsR = ledgerReads(() => nodeR.validator, clock);
  await eventually(async () => (await readsR.record(id)) !== undefined, "R to record it");
  return { clock, worker, nodeA, nodeR, nodeC, id, tokens, readsR };
}

Deno.test("a receipt R passed on while no other ledger was connected to it reaches C, which connects to R only: the honest worker is paid in C as in A", () =>
  inLedgerSetting("s62-relay-no-validator", async (setting) => {
    const { clock, worker, nodeR, nodeC, id, tokens, readsR } = await relayed(
      setting,
      "s62-relay",
    );

    await joinLedgerNodes(nodeC, nodeR);
    const readsC = ledgerReads(() => nodeC.validator, clock);
    await eventually(async () => (await readsC.record(id)) !== undefined, "C to record it")
      .catch(() => {}); // lost: the ledger tells below
    await readsR.closeWindow();
    await nodeC.validator.ask({ type: "finalize" });
    const paid = tokens * DEFAULT_ECONOMICS.defaultTokenPrice;
    assert.equal((await readsR.account(worker.publicKey)).balance, paid, "paid in R");
    assert.equal(
      (await readsC.account(worker.publicKey)).balance,
      paid,
      "the honest worker went unpaid in a ledger that hears of the job only through a relay",
    );
  }));

Deno.test("a ledger that has A's receipt already is sent it again in R's catch-up and takes it as a copy: the honest worker is paid once there", () =>
  inLedgerSetting("s62-relay-copy", async (setting) => {
    const { clock, worker, nodeA, nodeR, nodeC, id, tokens } = await relayed(
      setting,
      "s62-relay-copy",
    );

    // C hears of it first from A's catch-up, then again from R's.
    await joinLedgerNodes(nodeC, nodeA);
    const readsC = ledgerReads(() => nodeC.validator, clock);
    await eventually(async () => (await readsC.record(id)) !== undefined, "C to record it");
    const copiesBefore = (await readsC.stats()).copiesFromPeers;
    await joinLedgerNodes(nodeC, nodeR);
    await eventually(
      async () => (await readsC.stats()).copiesFromPeers > copiesBefore,
      "R's catch-up to send it to C again",
    );
    await readsC.closeWindow();
    const paid = tokens * DEFAULT_ECONOMICS.defaultTokenPrice;
    assert.equal((await readsC.account(worker.publicKey)).balance, paid, "paid once in C");
  }));

// ---- relay restart --------------------------------------------------------------------------------
// A hostile requester answers one honest ledger and never the other. A forwards W's job and
// announces W's receipt to R alone, its one peer, then goes away for good (it never connects to C,
// nor sends C its catch-up). R records the receipt and passes it on to its other ledgers — none yet
// — and keeps it in its catch-up as a relay's (`CatchUp.addRelayed`). R's process then restarts
// before C connects; C connects to R only.
//
// Before review s65 a relay's catch-up was memory only: the restart lost it, and the honest worker
// that delivered every token was paid in R's ledger and in no ledger that met R only afterwards —
// the two honest ledgers ended different for ever. Asserted on both ledgers after the window: W is
// paid tokens × price in R and in C, under A's assignment.
//
// A new process is stood in for by R's ledger directory copied under another name while R is down
// (the catch-up is one per ledger directory in a process, `CatchUp.of`), as
// the assigned receipts' tests above do.

Deno.test("a receipt a relay R recorded and passed on to no ledger reaches C after R's process restarted, though its requester never talks to C: the honest worker is paid in C as in R", () =>
  inLedgerSetting("s65-relay-restart", async (setting) => {
    const { dir, clock, system } = setting;
    const [a, r, c, worker] = [1, 2, 3, 4].map(() => Identity.generate());

    // R's first life, beside A (in a system of their own): A's receipt reaches R and no other
    // ledger.
    const first = new ActorSystem({ name: "s65-relay-first-life" });
    let recorded: { id: string; tokens: number };
    try {
      const nodeA = await spawnSettingNode(setting, first, "a", a);
      const nodeR = await spawnSettingNode(setting, first, "r", r);
      for (const node of [nodeA, nodeR]) {
        await node.validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
      }
      await joinLedgerNodes(nodeR, nodeA);
      recorded = await recordAssigned(nodeA, a, worker, textJob(a, "s65-relay-restart"));
      const readsR = ledgerReads(() => nodeR.validator, clock);
      const id = recorded.id;
      await eventually(async () => (await readsR.record(id)) !== undefined, "R to record it");
    } finally {
      // A is gone for good, and so is R's first process.
      await first.shutdown();
    }
    await copyDir(`${dir}/r`, `${dir}/r2`);

    // R's second life; C, away until now, connects to it alone.
    const nodeR2 = await spawnSettingNode(setting, system, "r2", r);
    const nodeC = await spawnSettingNode(setting, system, "c", c);
    await nodeC.validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
    await joinLedgerNodes(nodeC, nodeR2);

    const { id, tokens } = recorded;
    const readsR = ledgerReads(() => nodeR2.validator, clock);
    const readsC = ledgerReads(() => nodeC.validator, clock);
    await eventually(async () => (await readsC.record(id)) !== undefined, "C to record it")
      .catch(() => {}); // lost: the ledgers tell below
    await readsR.closeWindow();
    await nodeC.validator.ask({ type: "finalize" });
    const paid = tokens * DEFAULT_ECONOMICS.defaultTokenPrice;
    assert.equal((await readsR.account(worker.publicKey)).balance, paid, "paid in R");
    assert.equal(
      (await readsC.record(id))?.requester,
      toHex(a.publicKey),
      "C never heard of A's assignment: R's restart lost it",
    );
    assert.equal((await readsC.record(id))?.status, "final");
    assert.equal(
      (await readsC.account(worker.publicKey)).balance,
      paid,
      "the honest worker went unpaid in a ledger that met the relay only after its restart",
    );
  }));

// ---- relay catch up not kept ----------------------------------------------------------------------
// A catch-up receipt (`network/catch_up.ts`) refused `INSUFFICIENT_STAKE_NOT_KEPT`: the peer's
// validator lacks the worker's stake and already keeps as many of that worker's receipts as it
// keeps waiting for a pledge (`actors/_validator_memory.ts`), so it did not keep this one. The
// catch-up reacted only to `insufficient_stake` (kept: the pledge is sent and the peer takes it
// again), so one not kept was lost on that connection, and the honest worker went unpaid there
// until a later connection sent it again. Now the pledge is sent and the receipt again after it,
// once. The peer here is a real validator behind a connection that hands it each request; asserted
// on its ledger: the worker is paid for every job it served.

/** Receipts of the worker in the catch-up, past what the peer keeps waiting. */
const NOT_KEPT = 4;

/** `requester`'s assigned receipt of a job it forwarded to `worker`, as the catch-up holds it. */
async function assigned(
  requester: Identity,
  worker: Identity,
  tag: string,
): Promise<AssignedReceiptItem> {
  const job = textJob(requester, tag);
  const { receipt } = await proveOn(job, worker);
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  return { kind: "assigned_receipt", receipt, job, assignment };
}

/** A connection to the peer whose validator is `peer`: each receipt request handed to it. */
function connectionTo(peer: ActorRef<ValidatorMessage>, origin: string): Connection {
  return {
    isClosed: false,
    supports: () => true,
    request: async (_definition: unknown, body: ReceiptAnnouncementBody) => {
      const handled = await peer.ask<ReceiptHandled>({ type: "receipt", ...body, origin });
      const ack: ReceiptAckBody = { recorded: handled.recorded, refusal: handled.refusal };
      return ack;
    },
  } as unknown as Connection;
}

Deno.test("catch-up receipts a peer refused as not kept for the worker's pledge are sent again after the pledge: the honest worker is paid there for every job", () =>
  inLedgerDir(async (ledgerDir) => {
    const system = new ActorSystem({ name: "s62-catch-up-not-kept" });
    const clock = { t: START };
    try {
      const [a, worker] = [Identity.generate(), Identity.generate()];
      const peer = await spawnValidator(system, {
        identity: Identity.generate(),
        ledgerDir,
        models: HONEST_MODELS,
        challengeProbability: 0,
        clock,
      });
      const origin = toHex(a.publicKey);
      // The peer already keeps as many of the worker's receipts as it keeps waiting for its pledge
      // (gossip that outran the pledge).
      const early: AssignedReceiptItem[] = [];
      for (let n = 0; n < MAX_AWAITING_STAKE_PER_WORKER; n++) {
        const item = await assigned(a, worker, `s62-early-${n}`);
        const { kind: _, ...body } = item;
        const handled = await peer.ask<ReceiptHandled>({ type: "receipt", ...body, origin });
        assert.equal(handled.refusal, "insufficient_stake");
        early.push(item);
      }
      // A's catch-up: more of the worker's receipts that A assigned.
      const items: CatchUpItem[] = [];
      for (let n = 0; n < NOT_KEPT; n++) items.push(await assigned(a, worker, `s62-late-${n}`));
      const ctx = {
        system: { lookup: () => ({ ask: () => Promise.resolve(items) }) },
      } as unknown as ActorContext<NetworkMessage>;
      const pledge = signStakePledge(worker, 1_000_000, 1);
      let pledgesSent = 0;
      // As `PledgeSync.sendNeeded`: true once the pledge is written ahead of what follows.
      const sendPledge = async () => {
        pledgesSent++;
        await peer.ask({ type: "pledge", pledge, origin });
        return true;
      };
      sendCatchUp(connectionTo(peer, origin), "a-validator", ctx, undefined, sendPledge);

      const reads = ledgerReads(() => peer, clock);
      const all = [...early, ...items as AssignedReceiptItem[]];
      const recorded = async () => {
        const records = await Promise.all(
          all.map(({ receipt }) => reads.record(receiptId(receipt))),
        );
        return records.filter((record) => record !== undefined).length;
      };
      await eventually(async () => await recorded() === all.length, "every receipt recorded")
        .catch(() => {}); // lost: the ledger tells below
      await reads.closeWindow();
      const tokens = all.reduce((sum, { receipt }) => sum + receipt.tokenCount, 0);
      assert.equal(
        (await reads.account(worker.publicKey)).balance,
        tokens * DEFAULT_ECONOMICS.defaultTokenPrice,
        "the catch-up's receipts the peer did not keep went unpaid there",
      );
      assert.equal(pledgesSent, 1, "the pledge is sent once a connect");
    } finally {
      await system.shutdown();
    }
  }));

// ---- early receipts -------------------------------------------------------------------------------
// More of an honest worker's receipts reach a ledger before its pledge than the ledger keeps
// waiting for it (`MAX_AWAITING_STAKE_PER_WORKER`, 16, `actors/_validator_memory.ts`).
//
// A forwards 20 jobs to worker W, whose pledge A holds; C, connected to A, lacks it (A's connect
// push carried the pledges of keys more active than W, `PLEDGES_PUSHED_ON_CONNECT`). A's
// announcements reach C before the pledge A sends C at its first `insufficient_stake` refusal
// (`PledgeSync.sendNeeded`): C refuses all 20. It kept the first 16 for the pledge and dropped
// the rest, answered `insufficient_stake` all the same, so A never learnt that four were not kept
// and never sent them again, and W was paid for 16 jobs in C and for 20 in A. Asserted on C's
// ledger after the window: W is paid for every job in C as in A.

/** More jobs than a ledger keeps waiting for one worker's pledge (16). */
const JOBS = 20;

Deno.test("20 of an honest worker's receipts reach C before its pledge: every one is paid in C as in A (C told A of those it did not keep, and A sent them again after the pledge)", () =>
  inLedgerSetting("s62-early-receipts", async (setting) => {
    const { system, clock } = setting;
    const [a, c, worker] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const nodeA = await spawnSettingNode(setting, system, "a", a);
    const nodeC = await spawnSettingNode(setting, system, "c", c);
    const pledge = (key: Identity) =>
      nodeA.validator.ask<boolean>({
        type: "pledge",
        pledge: signStakePledge(key, WORKER_STAKE, 1),
        origin: "local",
      });
    assert.equal(await pledge(worker), true);
    // Keys more active than W, pledged after it: A's connect push carries theirs, not W's.
    for (let i = 0; i < PLEDGES_PUSHED_ON_CONNECT + 1; i++) {
      const other = Identity.generate();
      assert.equal(await pledge(other), true);
      await nodeA.validator.ask({ type: "deposit", key: other.publicKey, amount: 1 });
    }
    await joinLedgerNodes(nodeC, nodeA);
    assert.equal(
      await nodeC.validator.ask<boolean>({ type: "has_staked", key: worker.publicKey }),
      false,
      "C lacks W's stake",
    );

    // A's forwarding port hands its validator W's receipts as their jobs end, all at once.
    const proved = [];
    for (let n = 0; n < JOBS; n++) {
      const job = textJob(a, `s62-early-${n}`);
      proved.push({ job, receipt: (await proveOn(job, worker)).receipt });
    }
    const handled = await Promise.all(
      proved.map(({ job, receipt }) =>
        nodeA.validator.ask<ReceiptHandled>({
          type: "receipt",
          receipt,
          job,
          assignment: signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, a),
          origin: toHex(worker.publicKey),
          announce: true,
        })
      ),
    );
    assert.ok(handled.every((h) => h.recorded), "A records every receipt");

    const readsA = ledgerReads(() => nodeA.validator, clock);
    const readsC = ledgerReads(() => nodeC.validator, clock);
    const ids = proved.map(({ receipt }) => receiptId(receipt));
    await eventually(
      async () => {
        for (const id of ids) if ((await readsC.record(id)) === undefined) return false;
        return true;
      },
      "C to record every receipt of W's",
    ).catch(() => {}); // lost: the ledgers tell below
    assert.ok(
      (await readsC.stats()).refused >= JOBS,
      "every one of W's receipts reached C before its pledge (the case under test)",
    );
    await readsA.closeWindow();
    await nodeC.validator.ask({ type: "finalize" });
    const tokens = proved.reduce((sum, { receipt }) => sum + receipt.tokenCount, 0);
    const paid = tokens * DEFAULT_ECONOMICS.defaultTokenPrice;
    assert.equal((await readsA.account(worker.publicKey)).balance, paid, "paid in A");
    const unrecorded = [];
    for (const [n, id] of ids.entries()) {
      if ((await readsC.record(id)) === undefined) unrecorded.push(n);
    }
    assert.deepEqual(unrecorded, [], "W's receipts C never recorded");
    assert.equal(
      (await readsC.account(worker.publicKey)).balance,
      paid,
      "the honest worker was paid in C for fewer jobs than it served",
    );
  }));
