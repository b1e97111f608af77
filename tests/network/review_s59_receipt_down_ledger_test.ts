/**
 * Review s59: a `validation.receipt` announcement that reaches a node while its ValidatorActor is
 * down.
 *
 * A receipt announcement is a request. `servePeer` asked the validator for it directly: with no
 * validator registered (stopped, not started again yet) the handler answered `service_unavailable`
 * at once, and with the validator crashing with the ask queued it answered the crash
 * (`actor_crashed`). Both are final for the sender (`announceReceipt` asks again only after
 * `busy`), and nothing announces the receipt to that peer again (a catch-up carries convictions and
 * verdicts, not receipts): the honest worker's receipt was never recorded in that ledger, so it was
 * paid less there than in the others. One-way evidence survives the same outage through the
 * ValidatorInbox (review s58); the receipt did not.
 *
 * The set-up: B — C in memory, the worker's stake in both ledgers, every ledger on the test's
 * clock. C's connections' handlers wait on C's `PeerServices.timers`, a clock the test never moves
 * here: no wait of the fix races anything. C's validator is taken down as
 * `_validator_down.ts` does (stopped; or crashing with the announcement queued) when B records an
 * honest, assigned receipt and passes it on; it comes back on the same ledger, and C's window
 * closes.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { MAX_WAIT_MS } from "../../network/_validator_inbox.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  textJob,
} from "../actors/_validator_fixture.ts";
import {
  inLedgerSetting,
  joinLedgerNodeEnds,
  type LedgerNode,
  ledgerNodeValidator,
  spawnLedgerNode,
} from "./_ledger_node.ts";
import { crashingValidator, stoppedValidator, type TakenDown } from "./_validator_down.ts";

const STAKE = 1_000_000;

/** What a test sees of B and C, joined. */
interface Joined {
  nodeB: LedgerNode;
  nodeC: LedgerNode;
  /** C's side of the connection (its handlers' requests in flight). */
  atC: Connection;
  /** Lines B's NetworkActor logged (a failed announcement among them). */
  logB: string[];
  /** The key C's validator signs with (to start it again as itself). */
  identityC: Identity;
}

/**
 * B and C, the worker's stake in both ledgers on `clock`, joined in memory; C's handlers wait on
 * `timersC`.
 */
async function joined(
  system: ActorSystem,
  dir: string,
  clock: { t: number },
  worker: Identity,
  timersC: ManualTimers,
): Promise<Joined> {
  const logB: string[] = [];
  const identityC = Identity.generate();
  const node = async (name: "b" | "c"): Promise<LedgerNode> => {
    const spawned = await spawnLedgerNode(system, dir, name, {
      identity: name === "c" ? identityC : Identity.generate(),
      models: HONEST_MODELS,
      clock,
      now: () => clock.t,
      log: name === "b" ? (line) => logB.push(line) : undefined,
      peerTimers: name === "c" ? timersC : undefined,
    });
    await spawned.validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
    return spawned;
  };
  const [nodeB, nodeC] = [await node("b"), await node("c")];
  const [, atC] = await joinLedgerNodeEnds(nodeB, nodeC);
  return { nodeB, nodeC, atC, logB, identityC };
}

/**
 * An honest, assigned receipt reaches B while `down` holds C's validator down; B records it and
 * passes it on. Once it can have reached C, C's validator comes back; the ledger outcome in C when
 * the window closes is checked against B's.
 */
async function honestReceiptWhileDown(
  label: string,
  down: (system: ActorSystem, restart: () => ValidatorActor) => Promise<TakenDown>,
  reachedC: (setting: Joined, passedOn: () => Promise<void>) => Promise<void>,
): Promise<void> {
  await inLedgerSetting(`s59-receipt-down-${label}`, async ({ dir, clock, system }) => {
    const [worker, requester] = [Identity.generate(), Identity.generate()];
    const timersC = new ManualTimers();
    const setting = await joined(system, dir, clock, worker, timersC);
    const { nodeB, identityC } = setting;
    const { passedOn, back } = await down(
      system,
      () => ledgerNodeValidator(dir, "c", { identity: identityC, models: HONEST_MODELS, clock }),
    );

    const job = textJob(requester, `s59-receipt-down-${label}`);
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    assert.equal((await announceAssigned(nodeB.validator, receipt, job, requester)).recorded, true);
    await reachedC(setting, passedOn);
    await back();
    // Looked up by name: the validator that runs now is a new incarnation (or a new ref).
    const readsC = ledgerReads(() => system.lookup<ValidatorMessage>("c/validator")!, clock);
    await eventually(
      async () => (await readsC.record(id)) !== undefined,
      "C to record the receipt",
      { timeoutMs: 3_000 },
    ).catch(() => {}); // lost: the window closes below, and the ledger tells

    await readsC.closeWindow();
    const readsB = ledgerReads(() => nodeB.validator, clock);
    await nodeB.validator.ask({ type: "finalize" });
    assert.equal((await readsB.record(id))?.status, "final");
    assert.equal((await readsC.record(id))?.status, "final", "C never recorded the receipt");
    const paidB = (await readsB.account(worker.publicKey)).balance;
    assert.ok(paidB > 0);
    assert.equal(
      (await readsC.account(worker.publicKey)).balance,
      paidB,
      "the honest worker was paid less in C than in B",
    );
    assert.equal(timersC.pending, 0, "a wait's timer was left behind");
  });
}

Deno.test("review s59: a receipt announced while the peer's validator is stopped is asked of it when it starts again: the honest worker is paid there as in the announcer's ledger", async () => {
  await honestReceiptWhileDown(
    "stopped",
    (system, restart) => stoppedValidator(system, "c/validator", restart),
    async ({ atC, logB }) => {
      // Reached C: its handler is waiting (the fix), or B heard the refusal (before it).
      await eventually(
        () => atC.stats().inboundRequests === 1 || logB.some((l) => l.includes("not running")),
        "B's announcement to reach C",
      );
    },
  );
});

Deno.test("review s59: a receipt announcement queued at a validator that crashes is asked of its next incarnation: the honest worker is paid there as in the announcer's ledger", async () => {
  await honestReceiptWhileDown(
    "crashed",
    (system, restart) =>
      crashingValidator<ValidatorMessage>(
        system,
        "c/validator",
        restart,
        "validator",
        "B's receipt to be queued at C's validator",
      ),
    (_setting, passedOn) => passedOn(),
  );
});

Deno.test("review s59: a receipt waits for a stopped validator MAX_WAIT_MS on the node's connection clock at most, then is refused service_unavailable as before: the worker goes unpaid in that ledger alone", () =>
  inLedgerSetting("s59-receipt-down-bound", async ({ dir, clock, system }) => {
    const [worker, requester] = [Identity.generate(), Identity.generate()];
    const timersC = new ManualTimers();
    const { nodeB, atC, logB, identityC } = await joined(system, dir, clock, worker, timersC);
    const { back } = await stoppedValidator<ValidatorMessage>(
      system,
      "c/validator",
      () => ledgerNodeValidator(dir, "c", { identity: identityC, models: HONEST_MODELS, clock }),
    );
    const job = textJob(requester, "s59-receipt-down-bound");
    const { receipt } = await proveOn(job, worker);
    assert.equal((await announceAssigned(nodeB.validator, receipt, job, requester)).recorded, true);
    await eventually(() => atC.stats().inboundRequests === 1, "C to wait for its validator");
    await timersC.advance(MAX_WAIT_MS - 1);
    assert.equal(atC.stats().inboundRequests, 1, "C gave up before MAX_WAIT_MS");
    await timersC.advance(1);
    // On C's clock, not the real one: the answer comes long before 10 s of real time.
    await eventually(
      () => logB.some((l) => l.includes("not running")),
      "B to hear service_unavailable",
      { timeoutMs: 3_000 },
    );
    assert.equal(timersC.pending, 0);
    await back();
    const readsC = ledgerReads(() => system.lookup<ValidatorMessage>("c/validator")!, clock);
    await readsC.closeWindow();
    assert.equal(await readsC.record(receiptId(receipt)), undefined);
    assert.equal((await readsC.account(worker.publicKey)).balance, 0);
  }));
