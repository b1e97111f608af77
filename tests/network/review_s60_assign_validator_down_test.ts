/**
 * Review s60: the forwarding node hands a worker's checked receipt, with its own signed
 * assignment, to its own ValidatorActor (`#checked`, `network/network_inference_port.ts`), which
 * records it and announces both to the other ledgers (`announce: true`). It did so with a bare
 * `tell`: rejected when no validator was registered (stopped, not started again yet) and lost
 * with the mailbox when the validator crashed with it queued (`tell` resolves once it is queued).
 * The assignment existed nowhere else: the requester's ledger never recorded the receipt as
 * assigned, no other ledger heard of it (only this node announces the assignment), and the honest
 * worker, which delivered every token, was paid in no ledger. Now the handover goes through the
 * node's `ValidatorInbox` (`deliver`, with a share of its own bounds apart from the peers').
 *
 * The set-up: node A (a real ValidatorActor and NetworkActor on the test's clock) forwards its
 * client's job through a `NetworkInferencePort` to a worker served as a node serves its peers;
 * node C is joined to A and hears of the receipt only through A's announcement. A's validator is
 * down (stopped; or crashing with the receipt queued) when the job ends; it comes back on the same
 * ledger, and both windows close.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Actor } from "../../actors/actor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { MAX_HELD, MAX_HELD_PER_PEER, ValidatorInbox } from "../../network/_validator_inbox.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { HONEST_MODELS } from "../actors/_validator_fixture.ts";
import {
  inLedgerSetting,
  joinLedgerNodes,
  ledgerNodeValidator,
  spawnNodesStakingWorker,
} from "./_ledger_node.ts";
import { windowsClosed } from "./_assigned_receipt.ts";
import { clientJob, connectWorker, OneWorker, ProvingWorkerPort } from "./_proving_worker.ts";
import { crashingValidator, stoppedValidator, type TakenDown } from "./_validator_down.ts";

const WORKER_STAKE = 1_000_000;

/** A job of A's client on the honest model. */
const JOB: TextJob = clientJob("s60-assign");

/**
 * A forwards its client's job while `down` holds its validator down (the port is built on the
 * validator that runs when the job starts, as the node builds it at its start, and given the
 * validator's actor system: `ForwardingOptions.system`); once the receipt can have reached A's
 * validator, it comes back. The ledger outcome in A and in C when the window closes: the
 * honest worker is paid tokens × price in both.
 */
async function forwardedWhileDown(
  label: string,
  down: (system: ActorSystem, restart: () => Actor<ValidatorMessage>) => Promise<TakenDown>,
): Promise<void> {
  await inLedgerSetting(`s60-assign-${label}`, async (setting) => {
    const { dir, clock, system } = setting;
    const [a, c, worker] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const { nodeA, nodeC } = await spawnNodesStakingWorker(setting, { a, c }, worker, WORKER_STAKE);
    await joinLedgerNodes(nodeA, nodeC);

    // The worker, a node of its own, connected to A.
    const workerSystem = new ActorSystem({ name: `s60-assign-worker-${label}` });
    const jobs = new OneWorker();
    const jobsRef = await system.spawn<NetworkMessage>({ name: "a/jobs", factory: () => jobs });
    const workerPort = new ProvingWorkerPort(worker);
    const { toWorker, atWorker } = await connectWorker(a, worker, workerPort, workerSystem);
    jobs.connection = toWorker;

    try {
      const port = (validator: ActorRef<ValidatorMessage>) =>
        new NetworkInferencePort(jobsRef, validator, a, {
          tokensPerEvent: 1,
          timers: new FakeTimers(),
          system,
        });
      // Built as the node builds it, with the validator that runs at its start.
      let forwarding = port(nodeA.validator);
      const { passedOn, back } = await down(
        system,
        () => ledgerNodeValidator(dir, "a", { identity: a, models: HONEST_MODELS, clock }),
      );
      // A validator replaced under its name (the crashing one): the port built on it.
      const now = system.lookup<ValidatorMessage>("a/validator");
      if (now !== undefined) forwarding = port(now);

      const handle = await forwarding.submit({ ...JOB, nonce: `${JOB.nonce}-${label}` });
      const got = await Array.fromAsync(handle.tokens);
      const summary = await handle.done;
      assert.ok(summary.receipt !== undefined, "the client got the worker's receipt");
      const receipt = workerPort.receipt!;
      assert.equal(receipt.tokenCount, got.length);
      const id = receiptId(receipt);
      await passedOn();
      await back();

      const { readsA, readsC } = await windowsClosed(
        clock,
        () => system.lookup<ValidatorMessage>("a/validator")!,
        nodeC.validator,
        id,
        "C to record the receipt A announced",
      );
      const paid = receipt.tokenCount * 1; // DEFAULT_ECONOMICS.defaultTokenPrice
      const recordA = await readsA.record(id);
      assert.equal(recordA?.status, "final", "A (the requester) never recorded the receipt");
      assert.equal(
        (await readsA.account(worker.publicKey)).balance,
        paid,
        "the honest worker was not paid in the requester's ledger",
      );
      assert.equal((await readsC.record(id))?.status, "final", "C never heard of the receipt");
      assert.equal(
        (await readsC.account(worker.publicKey)).balance,
        paid,
        "the honest worker was not paid in a ledger that hears of it only through A",
      );
    } finally {
      await toWorker.close();
      await atWorker.close();
      await workerSystem.shutdown();
    }
  });
}

Deno.test("review s60: a forwarded job's receipt checked while the node's own validator is stopped is handed over when it starts again: the honest worker is paid tokens × price in the requester's ledger and in a peer's that hears of it only through the requester", async () => {
  await forwardedWhileDown(
    "stopped",
    (system, restart) => stoppedValidator(system, "a/validator", restart),
  );
});

Deno.test("review s60: a forwarded job's receipt queued at the node's own validator when it crashes is handed to its next incarnation: the honest worker is paid tokens × price in the requester's ledger and in a peer's that hears of it only through the requester", async () => {
  await forwardedWhileDown(
    "crashed",
    (system, restart) =>
      crashingValidator<ValidatorMessage>(
        system,
        "a/validator",
        restart,
        "validator",
        "the worker's receipt to be queued at A's validator",
      ),
  );
});

/** A validator that notes what it takes (type and origin). */
class Taking implements Actor<ValidatorMessage> {
  constructor(readonly taken: string[]) {}
  receive(message: ValidatorMessage): unknown {
    this.taken.push(`${message.type} ${(message as { origin?: string }).origin}`);
    return undefined;
  }
}

Deno.test("review s60: the node's own receipts are held in a share of their own: peers' evidence filling the inbox while the validator is down does not crowd them out, and one worker's receipts take at most an eighth of it", async () => {
  const system = new ActorSystem({ name: "s60-assign-own-share" });
  try {
    const inbox = new ValidatorInbox<ValidatorMessage>(system, "v");
    // Peers fill every place the inbox holds for their evidence.
    for (let p = 0; p < MAX_HELD / MAX_HELD_PER_PEER; p++) {
      for (let n = 0; n < MAX_HELD_PER_PEER; n++) {
        await inbox.deliver(`p${p}`, {
          type: "verdict",
          verdict: { n } as never,
          origin: `p${p}`,
        });
      }
    }
    await inbox.deliver("p-late", { type: "verdict", verdict: {} as never, origin: "p-late" });
    assert.equal(inbox.held, MAX_HELD, "a peer's evidence past the node's bound is dropped");
    const own = (worker: string) =>
      inbox.deliver(worker, {
        type: "receipt",
        receipt: {},
        origin: worker,
        announce: true,
      }, { own: true });
    await own("w-honest");
    assert.equal(inbox.held, MAX_HELD + 1, "the node's own receipt was crowded out by peers");
    // One worker's receipts: at most its eighth of the own share.
    for (let n = 0; n < MAX_HELD_PER_PEER + 3; n++) await own("w-busy");
    assert.equal(inbox.held, MAX_HELD + 1 + MAX_HELD_PER_PEER);
    await own("w-other");
    assert.equal(inbox.held, MAX_HELD + 2 + MAX_HELD_PER_PEER);

    const taken: string[] = [];
    await system.spawn<ValidatorMessage>({ name: "v", factory: () => new Taking(taken) });
    await eventually(() => Promise.resolve(inbox.held === 0), "the inbox to hand over");
    await eventually(
      () => Promise.resolve(taken.length === MAX_HELD + 2 + MAX_HELD_PER_PEER),
      "the validator to take them",
    );
    assert.equal(taken.filter((t) => t === "receipt w-honest").length, 1);
    assert.equal(taken.filter((t) => t === "receipt w-other").length, 1);
  } finally {
    await system.shutdown();
  }
});
