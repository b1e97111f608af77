/**
 * Review s60, at the node level: a forwarding node (no model runs its jobs) hands each worker's
 * checked receipt, with the assignment it signed, to its own ValidatorActor through the node's
 * `ValidatorInbox` — but only because `startNode` gives its `NetworkInferencePort` the actor
 * system (`ForwardingOptions.system`, `node/node.ts`). Without it the port falls back to a bare
 * `tell`, lost with the mailbox when the validator crashes with it queued: the assignment exists
 * nowhere else, so the requester's ledger records only the worker's own (unassigned) announcement
 * and no other ledger hears of the assignment: the honest worker that delivered every token is
 * paid in none. `tests/network/review_s60_assign_validator_down_test.ts` builds the port by hand;
 * this test pins the wiring.
 *
 * The set-up: three nodes in this process over 127.0.0.1 (tiny model): A forwards its client's
 * job to W (the worker) and is dialled by nothing but dials W and C (a validator that hears of
 * the receipt only through A). A's validator is busy with a ledger write that is made to fail
 * (a disk error: the validator crashes, and its supervisor starts it again on the ledger it reads
 * back from disk) while the job ends, so A's receipt is queued there when it crashes. The ledger
 * outcome is read from A's and C's ledgers on disk once the nodes are down, on a clock past the
 * challenge window (no real time waited for it).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import type { NetworkMessage, PeerInfo } from "../../network/network_actor.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { NODE_ACTORS, startNode, type VeriflowNode } from "../../node/node.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { parseReceipt, receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Ledger } from "../../proof/ledger.ts";
import type { ReceiptRecord } from "../../proof/ledger_state.ts";
import { eventually } from "../_helpers/wait.ts";
import { queuedAt } from "../network/_validator_down.ts";
import { type HeldAppend, holdNextAppend } from "../actors/_ledger_write_fault.ts";

/** The worker's stake in A's and C's ledgers. */
const WORKER_STAKE = 1_000_000;

/** Give-up time of a wait on the three nodes (a dial, a restart, an announcement). */
const ACROSS_NODES_MS = 20_000;

Deno.test({
  name:
    "review s60 (node): a forwarded job's receipt queued at the forwarding node's validator when it crashes reaches its next incarnation: the honest worker is paid tokens × price in the forwarding node's ledger and in a peer's that hears of it only through it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "veriflow-s60-wire-" });
    const nodes: VeriflowNode[] = [];
    let held: HeldAppend | undefined;
    try {
      await buildGptModel({ size: "tiny", seed: 0, outDir: join(root, "model") });
      const start = async (
        name: string,
        roles: Record<string, boolean>,
        peers: string[] = [],
      ) => {
        const models = new ModelRegistry({ intraOpThreads: 1 });
        await models.register(join(root, "model"));
        const node = await startNode(
          parseNodeConfig({
            dataDir: join(root, name),
            http: { port: 0, hostname: "127.0.0.1" },
            network: { listen: { port: 0, hostname: "127.0.0.1" }, peers },
            roles: { storage: false, ...roles },
            // Nobody challenges: the receipt is paid when its window closes.
            validator: { challengeProbability: 0 },
            dashboard: { enabled: false },
            heartbeatMs: 0,
            // Stakes are deposited below: no pledge reaches a ledger while the test runs.
            selfStake: 0,
          }),
          { models },
        );
        nodes.push(node);
        return node;
      };
      const address = async (node: VeriflowNode) => {
        const at = (await node.peerAddress())!;
        return `${at.hostname}:${at.port}`;
      };
      const forwarder = { inference: false, prover: false, validator: true };
      const w = await start("w", { inference: true, prover: true, validator: true });
      const c = await start("c", forwarder);
      const a = await start("a", forwarder, [await address(w), await address(c)]);
      const model = w.models.list()[0].cid;
      const networkOf = (node: VeriflowNode) =>
        node.system.lookup<NetworkMessage>(NODE_ACTORS.network)!;
      const validatorOf = (node: VeriflowNode) =>
        node.system.lookup<ValidatorMessage>(NODE_ACTORS.validator)!;
      await eventually(
        async () => {
          const peers = await networkOf(a).ask<PeerInfo[]>({ type: "peers" });
          return peers.length >= 2 && peers.some((p) => p.models.includes(model));
        },
        "A to be connected to W (a worker) and C",
        { timeoutMs: ACROSS_NODES_MS },
      );
      for (const node of [a, c]) {
        await validatorOf(node).ask({
          type: "deposit",
          key: w.identity.publicKey,
          amount: WORKER_STAKE,
        });
      }

      // A's validator is busy with a ledger write while the job ends.
      held = holdNextAppend(join(root, "a"));
      const busy = validatorOf(a).ask({
        type: "deposit",
        key: Identity.generate().publicKey,
        amount: 1,
      });
      busy.catch(() => {});
      await held.called;

      const response = await fetch(`${a.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model, prompt: "Settle this", max_tokens: 4, seed: 4 }),
      });
      assert.equal(response.status, 200);
      const body = await response.json();
      const receipt = parseReceipt(body.veriflow_receipt);
      assert.deepEqual(receipt.worker, w.identity.publicKey, "the job ran on W");
      const id = receiptId(receipt);
      // The receipt is handed over as the job ends: queued behind the write.
      await eventually(
        () => Promise.resolve((queuedAt(a.system.tree(), NODE_ACTORS.validator) ?? 0) >= 1),
        "A's receipt to be queued at A's validator",
        { timeoutMs: ACROSS_NODES_MS },
      );
      const seen: string[] = [];
      a.system.events.subscribe((event) => {
        if (event.name === NODE_ACTORS.validator) seen.push(event.type);
      });
      held.fail();
      await assert.rejects(busy);
      await eventually(
        () => seen.includes("crashed") && seen.includes("restarted"),
        "A's validator to crash and be started again",
        { timeoutMs: ACROSS_NODES_MS },
      );
      const aHex = toHex(a.identity.publicKey);
      const assigned = (node: VeriflowNode) => async () =>
        (await validatorOf(node).ask<ReceiptRecord | undefined>({
          type: "receipt_status",
          receiptId: id,
        }))?.requester === aHex;
      // Lost, these waits end without it: the ledgers below tell.
      for (const [node, what] of [[a, "A"], [c, "C"]] as const) {
        await eventually(assigned(node), `${what} to record the receipt as A's assignment`, {
          timeoutMs: ACROSS_NODES_MS,
        }).catch(() => {});
      }

      for (const node of nodes.splice(0)) await node.shutdown();
      // The ledger outcome, on a clock past the window.
      const paid = receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
      for (const [name, identity] of [["a", a.identity], ["c", c.identity]] as const) {
        const ledger = await Ledger.open(join(root, name, "ledger"), identity, {
          now: () => Date.now() + 2 * DEFAULT_ECONOMICS.challengeWindowMs,
        });
        try {
          await ledger.finalizeDue();
          const record = ledger.receipt(id);
          assert.equal(
            record?.requester,
            aHex,
            `${name.toUpperCase()}'s ledger never recorded A's assignment of the job`,
          );
          assert.equal(record?.status, "final");
          assert.equal(
            ledger.account(w.identity.publicKey).balance,
            paid,
            `the honest worker was not paid in ${name.toUpperCase()}'s ledger`,
          );
        } finally {
          await ledger.close();
        }
      }
    } finally {
      held?.restore();
      for (const node of nodes) await node.shutdown();
      await Deno.remove(root, { recursive: true });
    }
  },
});
