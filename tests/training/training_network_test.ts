/**
 * Decentralized training end to end over TCP: the network round in separate processes, and a
 * validator that neither trains nor coordinates challenging the round's trainers on its own coin.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadOrCreateIdentity } from "../../node/node_identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { parseReceipt } from "../../protocols/receipt.ts";
import { NodeProcess } from "../../tools/node_process.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode, TRAINING_ACTORS, type VeriflowNode } from "../../node/node.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import type { TrainFunction } from "../../training/trainer_engine.ts";
import type { CoordinatorStatus } from "../../training/round_coordinator.ts";
import type { TrainingValidatorStats } from "../../training/training_validator.ts";
import { shuffledDeltaTrainer } from "./_shuffled_delta.ts";

// ------------------------------------------------------------------------------------------------
// The network round of decentralized training, end to end, in separate processes on 127.0.0.1 (TCP
// static peers): a coordinator (keeps a ledger, runs no model of its own: its API forwards jobs to
// peers) and three trainers on disjoint shards of the Brown corpus, one of them lazy
// (`_lazy_trainer.ts`: a shuffled delta under a re-signed receipt).
//
// 1. Two short rounds of the test architecture (L = 1, d = 32): held-out loss decreases from the
//    start model to round 0's and from round 0's to round 1's.
// 2. The lazy trainer is challenged, convicted by a fraud proof, its delta excluded (round 0
//    aggregates the two honest trainers; round 1 does not ask it again), and it is slashed in the
//    ledger of every other node (the proof is gossiped; each re-checks it).
// 3. The round's model is fetched by CID, reproduced (each honest trainer redoes the outer step
//    over the deltas the outcome names and gets the same CID) and served; a job on it sent to the
//    coordinator's API runs on a trainer, and the coordinator's validator checks that job's receipt
//    and finds it valid.
// ------------------------------------------------------------------------------------------------

/** Give-up time of a wait on other processes (start-up, a round, gossip). */
const ACROSS_PROCESSES_MS = 60_000;
/** Local steps per round: short, but enough for the held-out loss to move. */
const H = 12;
/** Rounds the coordinator runs. */
const ROUNDS = 2;
/** The corpus for the test: 40 documents (36 dealt to 3 shards, 4 held out). */
const CORPUS_DOCS = 40;
/**
 * The lazy trainer trains and opens its steps in place (its fixture substitutes the training
 * function; honest trainers compute in a worker), and the validator re-runs steps on its event
 * loop: seconds each on a loaded 2-core machine. A generous idle timeout keeps them connected.
 */
const CONFIG = {
  network: { keepaliveMs: 2_000, idleTimeoutMs: 30_000 },
  training: { arch: TEST_ARCH, corpusDocs: CORPUS_DOCS },
};
const LAZY_TRAINER = new URL("./_lazy_trainer.ts", import.meta.url).pathname;
/**
 * A coordinator's line for round `r`: `training: round r done: model CID from A of N trainers
 * [, excluded …], held-out loss X nats/byte`. Groups: model, accepted, asked, the rest, loss.
 */
function roundDone(r: number): RegExp {
  return new RegExp(
    `^training: round ${r} done: model (\\S+) from (\\d+) of (\\d+) trainers(.*?)` +
      `(?:, held-out loss ([\\d.]+) nats/byte)?$`,
  );
}

Deno.test({
  name:
    "a training round over the network: held-out loss falls round after round, a lazy trainer is convicted, slashed in every ledger and left out, and the round's model is served and its job validated",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "veriflow-training-network-" });
    const processes: NodeProcess[] = [];
    try {
      const configFile = join(root, "config.json");
      await Deno.writeTextFile(configFile, JSON.stringify(CONFIG));
      const common = ["--config", configFile, "--port", "0", "--heartbeat", "0"];
      const spawn = (name: string, args: string[], script?: string) => {
        const p = NodeProcess.start(name, [...common, "--data", join(root, name), ...args], script);
        processes.push(p);
        return p;
      };
      const keyOf = async (name: string) =>
        toHex((await loadOrCreateIdentity(join(root, name))).publicKey);

      const coordinator = spawn("coordinator", [
        ...["--coordinate-training", "--training-rounds", String(ROUNDS)],
        ...["--training-steps", String(H), "--training-min-trainers", "3"],
        ...["--training-challenge-probability", "1", "--challenge-probability", "1"],
        ...["--no-inference", "--p2p-port", "0"],
      ]);
      const peer = `127.0.0.1:${await coordinator.p2pPort()}`;
      const trainer = (i: number) => [
        ...["--train", "--train-shard", `${i}/3`, "--peer", peer, "--no-listen"],
        ...["--challenge-probability", "0", "--training-challenge-probability", "0"],
      ];
      // The lazy trainer joins first: the honest trainers, connecting after its pledge reached
      // the coordinator, learn its stake from the coordinator's ledger (every connection starts
      // with every pledge the ledger holds), and a ledger settles a trainer's fraud only
      // against stake it holds.
      const lazy = spawn("lazy", trainer(2), LAZY_TRAINER);
      const lazyKey = await keyOf("lazy");
      await eventually(
        () => coordinator.lines.some((l) => /^training: trainer \S+ joined/.test(l)),
        "the lazy trainer to join",
        { timeoutMs: ACROSS_PROCESSES_MS },
      );
      const honest = [spawn("t0", trainer(0)), spawn("t1", trainer(1))];

      // ---- 1. two rounds; held-out loss falls --------------------------------------------
      const initial = Number(
        (await coordinator.waitForLine(/^training: coordinating .* \(held-out loss ([\d.]+)\)$/))[
          1
        ],
      );
      const rounds: RegExpMatchArray[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        rounds.push(
          await coordinator.waitForLine(roundDone(r), ACROSS_PROCESSES_MS),
        );
      }
      const losses = rounds.map((m) => Number(m[5]));
      console.log(
        `held-out loss ${initial.toFixed(3)} → ${losses.map((l) => l.toFixed(3)).join(" → ")} ` +
          `nats/byte`,
      );
      assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
      assert.ok(losses[0] < initial, `round 0: ${initial} → ${losses[0]}`);
      assert.ok(losses[1] < losses[0], `round 1: ${losses[0]} → ${losses[1]}`);

      // ---- 2. the lazy trainer: convicted, excluded, slashed everywhere ------------------
      const [round0, round1] = rounds;
      assert.equal(round0[2], "2", "round 0 aggregates the two honest trainers");
      assert.equal(round0[3], "3", "round 0 asked all three");
      assert.match(round0[4], new RegExp(`excluded ${lazyKey.slice(0, 16)} \\(delta_mismatch\\)`));
      assert.equal(round1[3], "2", "a convicted trainer is not asked again");
      assert.equal(round1[2], "2");
      for (const node of [coordinator, ...honest]) {
        await eventually(
          () =>
            node.lines.find((l) =>
              l.startsWith(`validator: training fraud by trainer ${lazyKey.slice(0, 16)}`) &&
              l.includes("confirmed")
            ),
          `${node.name}'s ledger to slash the lazy trainer`,
          { timeoutMs: ACROSS_PROCESSES_MS },
        );
        const slashes = (await node.metrics()).get("veriflow_validator_slashes_total") ?? 0;
        assert.ok(slashes >= 1, `${node.name}: ${slashes} slashes`);
      }
      // No honest trainer was accused.
      for (const node of [coordinator, ...honest]) {
        assert.ok(
          !node.lines.some((l) =>
            l.startsWith("validator: training fraud by trainer") &&
            !l.includes(lazyKey.slice(0, 16))
          ),
          `${node.name} slashed an honest trainer`,
        );
      }

      // ---- 3. the round's model is served, and its job's receipt validated --------------
      const model = round1[1];
      for (const node of honest) {
        await eventually(
          () =>
            // Served only once the node redid the outer step and got the same CID.
            node.lines.find((l) => l.includes(`model ${model.slice(0, 16)}… reproduced, served`)),
          `${node.name} to reproduce and serve the round's model`,
          { timeoutMs: ACROSS_PROCESSES_MS },
        );
      }
      const url = await coordinator.httpUrl();
      const answer = await eventually(
        async () => {
          const response = await fetch(`${url}/v1/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ model, prompt: "The ", max_tokens: 16, seed: 3 }),
          });
          const body = await response.json();
          // 404/503 until the coordinator has heard that a trainer lists the new model.
          return response.status === 200 ? body : undefined;
        },
        "a job on the round's model through the coordinator",
        { timeoutMs: ACROSS_PROCESSES_MS },
      );
      const receipt = parseReceipt(answer.veriflow_receipt);
      assert.equal(receipt.model, model);
      const honestKeys = await Promise.all(honest.map((t) => keyOf(t.name)));
      assert.ok(honestKeys.includes(toHex(receipt.worker)), "the job ran on an honest trainer");
      await eventually(
        () =>
          coordinator.lines.find((l) =>
            l.includes(`challenged job ${receipt.jobId.slice(0, 12)} → valid`)
          ),
        "the coordinator's validator to find the job's receipt valid",
        { timeoutMs: ACROSS_PROCESSES_MS },
      );
      assert.ok(lazy.lines.some((l) => l.startsWith("lazy trainer: sent a shuffled delta")));
    } catch (error) {
      for (const p of processes) console.error(`--- ${p.name} ---\n${p.tail(40)}`);
      throw error;
    } finally {
      for (const p of processes) p.kill("SIGKILL");
      await Promise.all(processes.map((p) => p.exited));
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});

// ------------------------------------------------------------------------------------------------
// No trainer is checked by its coordinator alone. Four nodes in this process over TCP: a
// coordinator that challenges nothing (`training.challengeProbability` 0), an honest trainer, a
// lazy one (`_shuffled_delta.ts`), and a validator that neither trains nor coordinates
// (`training.validate`) and challenges every receipt. Round 0 averages both deltas (nobody checked
// them first); the validator reproduces the round's model, then challenges the round's trainers on
// its own coin, convicts the lazy one, and its fraud proof slashes it in the coordinator's ledger
// and the honest trainer's — so the rounds that start after that do not ask it.
// ------------------------------------------------------------------------------------------------

/** Local steps: the lazy delta is caught by the last step whatever H is. */
const H_INDEPENDENT = 4;
/** A small corpus: 2 shards and a held-out part. */
const CORPUS_DOCS_INDEPENDENT = 20;
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
      const training = { arch: TEST_ARCH, corpusDocs: CORPUS_DOCS_INDEPENDENT };
      const network = { listen: { port: 0 }, idleTimeoutMs: 30_000 };
      const coordinator = await start("coordinator", {
        network,
        training: {
          ...training,
          // Rounds until stopped: the test waits for a round after the conviction.
          coordinator: {
            enabled: true,
            rounds: 0,
            steps: H_INDEPENDENT,
            minTrainers: 2,
            deadlineMs: 60_000,
          },
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
