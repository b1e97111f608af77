/**
 * Test fixture: a RoundCoordinator with no trainer (no round runs) on a held-out text, started
 * and shut down: what it measured at its start (`initialLoss`), its log lines, or whatever a
 * caller asks of it while it runs (`withEvalCoordinator`).
 *
 * @module
 */
import { join } from "node:path";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextShard } from "../../training/brown_corpus.ts";
import type { HeldOutSource } from "../../training/held_out_text.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";

/** What an evaluating coordinator may be given besides its held-out text. */
export interface EvalCoordinatorOptions {
  /** Which text `heldOut` is, as the node would say it; the coordinator's default when absent. */
  heldOutSource?: HeldOutSource;
  /** Where its `models/` go; a fresh temporary directory, removed after, when absent. */
  dir?: string;
  /** Its saved state (loss reference, rounds); none when absent. */
  statePath?: string;
}

/**
 * Start a coordinator of the test model on `heldOut`, run `use` on it, and shut it down; the
 * log lines it wrote until then are passed to `use`, which may read them after it returns.
 */
export async function withEvalCoordinator<T>(
  heldOut: TextShard,
  options: EvalCoordinatorOptions,
  use: (coordinator: ActorRef<CoordinatorMessage>, lines: string[]) => Promise<T>,
): Promise<T> {
  const dir = options.dir ??
    await Deno.makeTempDir({ prefix: "veriflow-eval-coordinator-" });
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
          heldOutSource: options.heldOutSource,
          statePath: options.statePath,
          log: (line) => void lines.push(line),
        }),
    });
    return await use(coordinator, lines);
  } finally {
    await system.shutdown();
    if (options.dir === undefined) await Deno.remove(dir, { recursive: true });
  }
}

/** Start a coordinator of the test model on `heldOut` (see `withEvalCoordinator`); its status. */
export async function evaluatingCoordinator(
  heldOut: TextShard,
  options: EvalCoordinatorOptions = {},
): Promise<{ status: CoordinatorStatus; lines: string[] }> {
  return await withEvalCoordinator(heldOut, options, async (coordinator, lines) => {
    const status = await eventually(
      () => coordinator.ask<CoordinatorStatus>({ type: "status" }),
      "the coordinator's status",
    );
    return { status, lines };
  });
}
