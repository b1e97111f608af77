// ------------------------------------------------------------------------------------------------
// A trainer node that keeps a ledger trains only for coordinators with stake in it
// (`unstaked_coordinator`, `network/peer_services.ts`). Review s79 found what any peer could do
// before: take the honest coordinator's slot first (F2), have cheap rounds signed and gossip their
// receipts until the trainer's whole stake was locked and it got no seat (F3), and put a long round
// in the engine ahead of an honest one (F4). Each test drives the real TrainerService, ledger and
// training validator through the training protocol over memory connections, as a peer would.
// ------------------------------------------------------------------------------------------------
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import {
  type ReportBody,
  type RoundBody,
  RoundMessage,
  TRAINING_PROTOCOL,
} from "../../protocols/training_messages.ts";
import type { Account } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS, trainingLock } from "../../proof/economics.ts";
import { servePeer } from "../../network/peer_services.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { gptDeltaBytes } from "../../training/delta_bytes.ts";
import { RoundModels } from "../../training/round_models.ts";
import type { SeatStakes } from "../../training/_seat_stakes.ts";
import { type TrainerMessage, TrainerService } from "../../training/trainer_service.ts";
import type { TrainFunction } from "../../training/trainer_engine.ts";
import { TEST_ARCH, TEST_HYPER, testRoundBody, testSplit } from "./_fixtures.ts";
import { standInTraining } from "./_stand_in_train.ts";
import { LEDGER, spawnTrainingLedger, TRAINING_VALIDATOR } from "./_training_ledger.ts";

/** H of the honest coordinator's round. */
const HONEST_STEPS = 3;
/** What the honest round asks of a trainer's stake (its seat's lock). */
const HONEST_WORK = {
  steps: HONEST_STEPS,
  deltaBytes: gptDeltaBytes(TEST_ARCH),
  hyper: TEST_HYPER,
};
/** The trainer's stake: ten honest rounds' locks, as in the review's F3. */
const TRAINER_STAKE = 10 * trainingLock(DEFAULT_ECONOMICS, HONEST_WORK);
/** The honest coordinator's stake in the trainer's ledger (its pledge's). */
const COORDINATOR_STAKE = 1_000_000;
/** The review's F3: one-step rounds enough to lock ten honest rounds' stake. */
const SQUAT_ROUNDS = 31;
/** The review's F4: a long round that held the engine past the honest round's deadline. */
const LONG_STEPS = 400;
const REQUEST_TIMEOUT_MS = 60_000;

/** A trainer node: TrainerService, ledger and training validator, serving peers over memory. */
async function trainerNode(dir: string, system: ActorSystem, train: TrainFunction) {
  const split = await testSplit();
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const identity = Identity.generate();
  const lines: string[] = [];
  const { ledger, training } = await spawnTrainingLedger(system, {
    identity,
    dir,
    now: () => Date.now(),
    models,
    challenge: { challengeProbability: 0 },
  });
  await ledger.ask({ type: "deposit", key: identity.publicKey, amount: TRAINER_STAKE });
  await system.spawn<TrainerMessage>({
    name: "node/trainer",
    factory: () =>
      new TrainerService({
        identity,
        shard: split.shards[0],
        models,
        train,
        sampleBytes: TEST_HYPER.sampleBytes,
        dataDir: join(dir, "trainer"),
      }),
  });
  const open: Connection[] = [];
  /** A peer with key `peer` connected to this trainer node. */
  const connect = async (peer: Identity) => {
    const [a, b] = memoryDuplexPair();
    const [atPeer, atTrainer] = await Promise.all([
      Connection.open(a, { identity: peer, protocols: [TRAINING_PROTOCOL] }),
      Connection.open(b, { identity, protocols: [TRAINING_PROTOCOL] }),
    ]);
    servePeer(atTrainer, peer.publicKey, {
      system,
      trainer: "node/trainer",
      validator: LEDGER,
      trainingValidator: TRAINING_VALIDATOR,
      self: identity.publicKey,
      log: (line) => lines.push(line),
    });
    open.push(atPeer, atTrainer);
    return atPeer;
  };
  const close = () => Promise.all(open.map((c) => c.close()));
  return { identity, seed, ledger, training, connect, close, lines };
}

/** Round `round` of `steps` from `cid`, as a coordinator asks it. */
function roundOf(cid: string, round: number, steps: number): RoundBody {
  return { ...testRoundBody(cid, steps), round };
}

/** The refusal's code, or "trained". */
function outcome(report: Promise<ReportBody>): Promise<string> {
  return report.then(() => "trained", (e: { code?: string }) => e.code ?? String(e));
}

const standIn: TrainFunction = (options) =>
  Promise.resolve(standInTraining(options, (i, o) => 1e-3 * Math.sin(i + o.round + o.steps)));

Deno.test("F2: an unstaked peer that asks for the honest coordinator's round slot first is refused (unstaked_coordinator) and the staked coordinator's round is trained", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-stake-gate-f2-" });
  const system = new ActorSystem({ name: "stake-gate-f2" });
  const node = await trainerNode(dir, system, standIn);
  try {
    const honest = Identity.generate();
    await node.ledger.ask({ type: "deposit", key: honest.publicKey, amount: COORDINATOR_STAKE });
    const squatter = await node.connect(Identity.generate());
    const coordinator = await node.connect(honest);
    const squat = await outcome(
      squatter.request(RoundMessage, roundOf(node.seed.cid, 0, 1), {
        timeoutMs: REQUEST_TIMEOUT_MS,
      }),
    );
    const report = await coordinator.request(
      RoundMessage,
      roundOf(node.seed.cid, 0, HONEST_STEPS),
      { timeoutMs: REQUEST_TIMEOUT_MS },
    );
    assert.equal(squat, "unstaked_coordinator");
    assert.equal(report.receipt.round, 0);
    assert.equal(report.receipt.steps, HONEST_STEPS);
    assert.ok(
      node.lines.some((line) => line.includes("unstaked_coordinator")),
      "the refusal is logged",
    );
  } finally {
    await node.close();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("F3: an unstaked peer's one-step rounds and the gossip of their receipts lock none of the trainer's stake, and it keeps its seat in the honest round", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-stake-gate-f3-" });
  const system = new ActorSystem({ name: "stake-gate-f3" });
  const node = await trainerNode(dir, system, standIn);
  try {
    const peerKey = Identity.generate();
    const peer = await node.connect(peerKey);
    const refusals = new Set<string>();
    for (let n = 0; n < SQUAT_ROUNDS; n++) {
      const body = roundOf(node.seed.cid, 1000 + n, 1);
      const asked = await peer.request(RoundMessage, body, { timeoutMs: REQUEST_TIMEOUT_MS })
        .catch((e: { code?: string }) => e.code ?? String(e));
      if (typeof asked === "string") {
        refusals.add(asked);
        continue;
      }
      // What the review's peer did with each signed receipt: gossip it to the trainer's ledger
      // (the training validator, as the peer service hands `training.receipt` over).
      await node.training.ask({
        type: "receipt",
        body: {
          receipt: asked.receipt,
          terms: { round: body.round, startModel: body.startModel, steps: 1 },
        },
        origin: toHex(peerKey.publicKey),
      });
    }
    const account = await node.ledger.ask<Account>({
      type: "account",
      key: node.identity.publicKey,
    });
    const seat = await node.training.ask<SeatStakes>({
      type: "seat_stakes",
      keys: [toHex(node.identity.publicKey)],
      work: HONEST_WORK,
    });
    assert.ok(seat.free[0] >= seat.lock, `seated: free ${seat.free[0]} ≥ lock ${seat.lock}`);
    assert.equal(account.locked, 0);
    assert.deepEqual([...refusals], ["unstaked_coordinator"]);
  } finally {
    await node.close();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("F4: an unstaked peer's long round never reaches the engine ahead of the staked coordinator's round", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-stake-gate-f4-" });
  const system = new ActorSystem({ name: "stake-gate-f4" });
  // The rounds in the order the engine started them; the long one holds until the honest round
  // has been asked (on the unfixed code it was trained first, then the honest one behind it).
  const started: number[] = [];
  let honestAsked!: () => void;
  const asked = new Promise<void>((resolve) => honestAsked = resolve);
  let longStarted!: () => void;
  const inEngine = new Promise<void>((resolve) => longStarted = resolve);
  const train: TrainFunction = async (options) => {
    started.push(options.steps);
    if (options.steps === LONG_STEPS) {
      longStarted();
      await asked;
    }
    return await standIn(options);
  };
  const node = await trainerNode(dir, system, train);
  try {
    const honest = Identity.generate();
    await node.ledger.ask({ type: "deposit", key: honest.publicKey, amount: COORDINATOR_STAKE });
    const peer = await node.connect(Identity.generate());
    const coordinator = await node.connect(honest);
    const long = outcome(
      peer.request(RoundMessage, roundOf(node.seed.cid, 0, LONG_STEPS), {
        timeoutMs: REQUEST_TIMEOUT_MS,
      }),
    );
    // Refused, or (before the gate) in the engine: either way the honest round is asked after.
    await Promise.race([long, inEngine]);
    const report = coordinator.request(RoundMessage, roundOf(node.seed.cid, 7, HONEST_STEPS), {
      timeoutMs: REQUEST_TIMEOUT_MS,
    });
    honestAsked();
    assert.equal((await report).receipt.steps, HONEST_STEPS);
    assert.equal(await long, "unstaked_coordinator");
    assert.deepEqual(started, [HONEST_STEPS]);
  } finally {
    await node.close();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
