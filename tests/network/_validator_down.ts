/**
 * Test fixture for a node's validator (inference or training) that is down when a peer's
 * evidence reaches it: an incarnation that crashes with the evidence queued, and a look at an
 * actor's mailbox (`review_s58_validator_down_test.ts`, `review_s58_training_validator_down_test.ts`).
 *
 * @module
 */
import type { Actor } from "../../actors/actor.ts";
import type { ActorTreeNode } from "../../actors/actor_system.ts";

/**
 * A validator incarnation that takes its first message, waits for `crash`, then throws (`what`
 * names it in the error: "validator", "training validator").
 */
export class CrashingIncarnation<M> implements Actor<M> {
  constructor(readonly crash: Promise<void>, readonly what: string) {}

  async receive(): Promise<unknown> {
    await this.crash;
    throw new Error(`${this.what} crashed (test)`);
  }
}

/** The mailbox size of actor `name` in `tree` (undefined: no such actor). */
export function queuedAt(tree: ActorTreeNode, name: string): number | undefined {
  if (tree.name === name) return tree.mailbox?.size;
  for (const child of tree.children ?? []) {
    const found = queuedAt(child, name);
    if (found !== undefined) return found;
  }
  return undefined;
}
