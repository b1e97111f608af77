/**
 * Test fixture: a RoundCoordinator with no trainer (no round runs) on a held-out text, started
 * and shut down: what it measured at its start (`initialLoss`) and its log lines.
 *
 * @module
 */
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextShard } from "../../training/brown_corpus.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";

/** Start a coordinator of the test model on `heldOut` in a temporary directory; its status. */
export async function evaluatingCoordinator(
  heldOut: TextShard,
): Promise<{ status: CoordinatorStatus; lines: string[] }> {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-eval-coordinator-" });
  const system = new ActorSystem({ name: "eval-coordinator" });
  const lines: string[] = [];
  try {
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "node/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: Identity.generate(),
          arch: TEST_ARCH,
          seed: 0,
          rounds: 1,
          steps: 2,
          hyper: TEST_HYPER,
          roundDeadlineMs: 600_000,
          minTrainers: 1,
          models: new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined }),
          heldOut,
          log: (line) => void lines.push(line),
        }),
    });
    const status = await eventually(
      () => coordinator.ask<CoordinatorStatus>({ type: "status" }),
      "the coordinator's status",
    );
    return { status, lines };
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}
