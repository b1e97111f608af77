/**
 * Review s60 (wire): the ValidatorActor hands the announcement of a receipt it recorded with this
 * node's assignment (`announce_receipt`) to its own NetworkActor, which sends it to the ledgers
 * connected at that moment. A connection's catch-up carried no receipts, so an announcement the
 * NetworkActor never sent — it was stopped (not started again yet) or crashed with it queued — was
 * the assignment lost for every other ledger: the honest worker that delivered every token was paid
 * in the forwarding node's ledger and in no other. Now the catch-up carries this node's assigned
 * receipts while they are pending (`actors/_catch_up_receipts.ts`), sent when a ledger-keeping peer
 * connects.
 *
 * The set-up: A (the forwarding node: its validator records the worker's receipt with A's
 * assignment, `announce: true`, as `NetworkInferencePort` hands it over) and C, joined, on the
 * test's clock, the worker staked in both. A's NetworkActor is down when A's validator records the
 * receipt; it comes back, A and C connect again, and both windows close.
 *
 * @module
 */
import type { Actor } from "../../actors/actor.ts";
import type { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { textJob } from "../actors/_validator_fixture.ts";
import { paidInCAsInA, recordAssigned } from "./_assigned_receipt.ts";
import {
  inLedgerSetting,
  joinLedgerNodes,
  type LedgerNode,
  spawnNodesStakingWorker,
} from "./_ledger_node.ts";
import { crashingValidator, stoppedValidator, type TakenDown } from "./_validator_down.ts";

const WORKER_STAKE = 1_000_000;

/**
 * A's NetworkActor is taken down by `down` while A's validator records (and announces) the
 * worker's assigned receipt; once the announcement can have reached it, it comes back and A
 * dials C again (`joinedBefore` false: A and C meet only then, A's NetworkActor up all along). The
 * ledger outcome in C when the window closes: the worker is paid, as in A.
 */
async function announcedWhileNetworkDown(
  label: string,
  down: (system: ActorSystem, restart: () => Actor<NetworkMessage>) => Promise<TakenDown>,
  joinedBefore = true,
): Promise<void> {
  await inLedgerSetting(`s60-wire-${label}`, async (setting) => {
    const { clock, system } = setting;
    const [a, c, worker] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const { nodeA, nodeC } = await spawnNodesStakingWorker(setting, { a, c }, worker, WORKER_STAKE);
    if (joinedBefore) await joinLedgerNodes(nodeA, nodeC);

    const { passedOn, back } = await down(
      system,
      () => new NetworkActor({ identity: a, services: { validator: "a/validator" } }),
    );
    const job = textJob(a, `s60-wire-${label}`);
    // As the forwarding port hands it over (`NetworkInferencePort`, `#checked`).
    const recorded = await recordAssigned(nodeA, a, worker, job);
    await passedOn();
    await back();
    const aAgain: LedgerNode = {
      validator: nodeA.validator,
      network: system.lookup<NetworkMessage>("a/network")!,
    };
    await joinLedgerNodes(aAgain, nodeC);

    await paidInCAsInA(
      clock,
      { nodeA, nodeC },
      a,
      worker,
      recorded,
      "C to record the receipt A announced",
    );
  });
}

Deno.test("review s60 (wire): a receipt A's validator announces while A's NetworkActor is stopped reaches C once it starts again and connects: the honest worker is paid tokens × price in C as in A", async () => {
  await announcedWhileNetworkDown(
    "stopped",
    (system, restart) => stoppedValidator(system, "a/network", restart),
  );
});

Deno.test("review s60 (wire): a receipt announcement queued at A's NetworkActor when it crashes reaches C through its next incarnation: the honest worker is paid tokens × price in C as in A", async () => {
  await announcedWhileNetworkDown(
    "crashed",
    (system, restart) =>
      crashingValidator<NetworkMessage>(
        system,
        "a/network",
        restart,
        "network",
        "the announcement to be queued at A's network",
      ),
  );
});

Deno.test("review s60 (wire): a receipt A's validator announces while A has no ledger-keeping peer reaches C when C connects: the honest worker is paid tokens × price in C as in A", async () => {
  const up = () => Promise.resolve();
  await announcedWhileNetworkDown(
    "unconnected",
    () => Promise.resolve({ passedOn: up, back: up }),
    false,
  );
});
