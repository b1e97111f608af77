/**
 * No trainer is checked by its coordinator alone. Four nodes in this process over TCP: a
 * coordinator that challenges nothing (`training.challengeProbability` 0), an honest trainer, a
 * lazy one (`_shuffled_delta.ts`), and a validator that neither trains nor coordinates
 * (`training.validate`) and challenges every receipt. Round 0 averages both deltas (nobody
 * checked them first); the validator reproduces the round's model, then challenges the round's
 * trainers on its own coin, convicts the lazy one, and its fraud proof slashes it in the
 * coordinator's ledger and the honest trainer's — so the rounds that start after that do not
 * ask it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode, TRAINING_ACTORS, type VeriflowNode } from "../../node/node.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import type { TrainFunction } from "../../training/trainer_engine.ts";
import type { CoordinatorStatus } from "../../training/round_coordinator.ts";
import type { TrainingValidatorStats } from "../../training/training_validator.ts";
import { toHex } from "../../protocols/hash.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { shuffledDeltaTrainer } from "./_shuffled_delta.ts";

/** Local steps: the lazy delta is caught by the last step whatever H is. */
const H = 4;
/** A small corpus: 2 shards and a held-out part. */
const CORPUS_DOCS = 20;
/** Give-up time of a wait across the four nodes (rounds, challenges, gossip). */
const WAIT_MS = 90_000;

Deno.test({
  name:
    "a validator other than the coordinator challenges a finished round's trainers: the lazy one is convicted, slashed in the coordinator's ledger, and not asked again",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-independent-challenge-" });
    const nodes: VeriflowNode[] = [];
    const start = async (
      name: string,
      more: Record<string, unknown>,
      train?: TrainFunction,
    ): Promise<VeriflowNode> => {
      const node = await startNode(
        parseNodeConfig({
          dataDir: join(dir, name),
          http: { port: 0 },
          heartbeatMs: 0,
          model: { workers: 0, size: "tiny" },
          ...more,
        }),
        { train },
      );
      nodes.push(node);
      return node;
    };
    const listening = async (node: VeriflowNode) => {
      const network = node.system.lookup<NetworkMessage>("node/network")!;
      const address = await network.ask<Deno.NetAddr>({ type: "listening" });
      return `127.0.0.1:${address.port}`;
    };
    try {
      const training = { arch: TEST_ARCH, corpusDocs: CORPUS_DOCS };
      const network = { listen: { port: 0 }, idleTimeoutMs: 30_000 };
      const coordinator = await start("coordinator", {
        network,
        training: {
          ...training,
          // Rounds until stopped: the test waits for a round after the conviction.
          coordinator: { enabled: true, rounds: 0, steps: H, minTrainers: 2, deadlineMs: 60_000 },
          challengeProbability: 0,
        },
      });
      const validator = await start("validator", {
        network: { ...network, peers: [await listening(coordinator)] },
        roles: { inference: false, prover: false },
        training: { ...training, validate: true, challengeProbability: 1 },
      });
      const peers = [await listening(coordinator), await listening(validator)];
      const trainer = (shard: number) => ({
        network: { listening: false, peers, idleTimeoutMs: 30_000 },
        roles: { inference: false, prover: false },
        training: { ...training, trainer: { enabled: true, shard, shards: 2 } },
      });
      const honest = await start("honest", trainer(0));
      const lazy = await start("lazy", trainer(1), shuffledDeltaTrainer);
      const lazyKey = toHex(lazy.identity.publicKey);
      const honestKey = toHex(honest.identity.publicKey);

      const coordinatorStatus = () =>
        coordinator.system.lookup(TRAINING_ACTORS.coordinator)!
          .ask<CoordinatorStatus>({ type: "status" });
      const convictedAt = (node: VeriflowNode) =>
        node.system.lookup<ValidatorMessage>("node/validator")!.ask<boolean>({
          type: "convicted",
          key: lazy.identity.publicKey,
        });
      const first = await eventually(
        async () => {
          const s = await coordinatorStatus();
          return s.history.length >= 1 ? s.history[0] : undefined;
        },
        "round 0",
        { timeoutMs: WAIT_MS },
      );
      // Round 0: nobody checked before the outer step, so both deltas went in.
      assert.deepEqual([...first.accepted].sort(), [honestKey, lazyKey].sort());
      // The validator's proof reaches the coordinator's ledger while rounds go on.
      await eventually(() => convictedAt(coordinator), "the coordinator's ledger to convict", {
        timeoutMs: WAIT_MS,
      });
      // A round that starts from now on does not ask the convicted trainer (the one under way
      // may have: it was asked before the proof arrived).
      const known = (await coordinatorStatus()).history.length;
      const later = await eventually(
        async () => {
          const s = await coordinatorStatus();
          return s.history.length >= known + 2 ? s.history[known + 1] : undefined;
        },
        "a round that started after the conviction",
        { timeoutMs: WAIT_MS },
      );
      assert.deepEqual(later.accepted, [honestKey]);

      const stats = await validator.system.lookup(TRAINING_ACTORS.validator)!
        .ask<TrainingValidatorStats>({ type: "stats" });
      assert.ok(stats.frauds >= 1, `the validator signed a fraud proof (${JSON.stringify(stats)})`);
      assert.ok(stats.passed >= 1, "the honest trainer's challenge passed");
      for (const node of [validator, coordinator, honest]) {
        await eventually(
          () => convictedAt(node),
          "the lazy trainer slashed in every honest ledger",
          {
            timeoutMs: WAIT_MS,
          },
        );
        assert.equal(
          await node.system.lookup<ValidatorMessage>("node/validator")!.ask<boolean>({
            type: "convicted",
            key: honest.identity.publicKey,
          }),
          false,
          "the honest trainer is not",
        );
      }
    } finally {
      for (const node of nodes.reverse()) await node.shutdown().catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
