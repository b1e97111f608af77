/**
 * Trainers as a RoundCoordinator sees them, for the tests that run it alone: a connection whose
 * round request is answered by a function, and an honest one that trains as asked
 * (`trainAndSign`, in place).
 */
import type { Connection } from "../../protocols/connection.ts";
import type { Identity } from "../../protocols/identity.ts";
import type { RoundBody } from "../../protocols/training_messages.ts";
import type { RoundModels } from "../../training/round_models.ts";
import { trainAndSign } from "../../training/training_round.ts";
import type { TextShard } from "../../training/brown_corpus.ts";
import { useTrainingBackend } from "../../training/tf_backend.ts";
import type { CoordinatorMessage } from "../../training/round_coordinator.ts";
import { commitShard } from "../../training/training_state.ts";
import { TEST_HYPER } from "./_fixtures.ts";

/**
 * The wasm backend, started once before any trainer trains: two trainers of one round starting
 * it at the same time race in tfjs's backend registry and fail their round.
 */
let backend: Promise<unknown> | undefined;

/** A trainer as the coordinator sees it: a connection whose round request is answered by `answer`. */
export function trainerConnection(
  identity: Identity,
  answer: (body: RoundBody) => Promise<unknown>,
): { connection: Connection; close: () => void } {
  const closed = Promise.withResolvers<void>();
  const connection = {
    peerKey: identity.publicKey,
    closed: closed.promise,
    request: (_definition: unknown, body: RoundBody) => answer(body),
  } as unknown as Connection;
  return { connection, close: () => closed.resolve() };
}

/** A trainer that trains each round as announced, on `shard`, from the start model in `models`. */
export function honestTrainer(
  identity: Identity,
  shard: TextShard,
  models: RoundModels,
): { connection: Connection; close: () => void } {
  return trainerConnection(identity, async (body) => {
    await (backend ??= useTrainingBackend("wasm"));
    const start = await models.get(body.startModel, body.arch, body.startFile);
    const { report } = await trainAndSign({
      arch: body.arch,
      round: body.round,
      startModel: body.startModel,
      start: start.weights,
      shard,
      steps: body.steps,
      dataSeed: body.dataSeed,
      hyper: body.hyper,
      identity,
    });
    return report;
  });
}

/** Join `connection` to `coordinator` as the trainer of `shard` (committed at the test batch). */
export async function joinShard(
  coordinator: { ask: (m: CoordinatorMessage) => Promise<unknown> },
  connection: Connection,
  shard: TextShard,
): Promise<void> {
  const { size, root } = commitShard(shard, TEST_HYPER.sampleBytes);
  await coordinator.ask({ type: "join", connection, shardSize: size, shardRoot: root });
}
