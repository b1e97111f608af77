/**
 * At the node level (`node/node.ts` wires `node/_stake_backed_port.ts` into the worker's port): a
 * worker whose own ledger shows too little free stake for a forwarded job refuses it before the
 * work, the client is told `insufficient_stake` (503) by the router, nothing is locked or
 * recorded in the worker's ledger; once its stake backs the job, the same request runs there and
 * its receipt locks the worker's stake (review s78 vprompt F2).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseNodeConfig } from "../../node/config.ts";
import { NODE_ACTORS, startNode, type VeriflowNode } from "../../node/node.ts";
import type { Account, ValidatorMessage } from "../../actors/validator_actor.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import type { NetworkMessage, PeerInfo } from "../../network/network_actor.ts";
import { eventually } from "../_helpers/wait.ts";

/** The worker's own stake: short of any forwarded job's lock (20 × at least one token). */
const SMALL_STAKE = 10;
/** Give-up time of a wait across the two nodes (a dial, a listing). */
const ACROSS_NODES_MS = 20_000;

Deno.test({
  name:
    "a worker whose own ledger cannot back a forwarded job refuses it before the work: the client gets insufficient_stake (503) and the worker's ledger locks nothing; staked enough, the same job runs and its receipt locks the worker's stake",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "veriflow-stake-backed-" });
    const nodes: VeriflowNode[] = [];
    try {
      await buildGptModel({ size: "tiny", seed: 0, outDir: join(root, "model") });
      const start = async (
        name: string,
        roles: Record<string, boolean>,
        selfStake: number,
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
            validator: { challengeProbability: 0 },
            dashboard: { enabled: false },
            heartbeatMs: 0,
            selfStake,
          }),
          { models },
        );
        nodes.push(node);
        return node;
      };
      const w = await start("w", { inference: true, prover: true, validator: true }, SMALL_STAKE);
      const at = (await w.peerAddress())!;
      const r = await start(
        "r",
        { inference: false, prover: false, validator: true },
        1_000_000,
        [`${at.hostname}:${at.port}`],
      );
      const model = w.models.list()[0].cid;
      await eventually(
        async () => {
          const peers = await r.system.lookup<NetworkMessage>(NODE_ACTORS.network)!
            .ask<PeerInfo[]>({ type: "peers" });
          return peers.some((p) => p.models.includes(model));
        },
        "the router to list the worker's model",
        { timeoutMs: ACROSS_NODES_MS },
      );
      const workerLedger = w.system.lookup<ValidatorMessage>(NODE_ACTORS.validator)!;
      const own = () => workerLedger.ask<Account>({ type: "account", key: w.identity.publicKey });
      const complete = () =>
        fetch(`${r.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model, prompt: "Back this", max_tokens: 4, seed: 1 }),
        });

      const refused = await complete();
      const body = await refused.json();
      assert.equal(refused.status, 503, JSON.stringify(body));
      assert.equal(body.error.code, "insufficient_stake", JSON.stringify(body));
      assert.deepEqual(await own(), { balance: 0, stake: SMALL_STAKE, locked: 0 });

      await workerLedger.ask({ type: "deposit", key: w.identity.publicKey, amount: 1_000 });
      const served = await complete();
      assert.equal(served.status, 200, await served.clone().text());
      await served.json();
      await eventually(
        async () => (await own()).locked > 0,
        "the worker's receipt to lock its stake in its own ledger",
        { timeoutMs: ACROSS_NODES_MS },
      );
      const account = await own();
      assert.equal(account.stake, SMALL_STAKE + 1_000);
      assert.ok(account.locked <= account.stake, JSON.stringify(account));
    } finally {
      for (const node of nodes) await node.shutdown();
      await Deno.remove(root, { recursive: true });
    }
  },
});
