/**
 * Test fixture for a node's validator (inference or training) that is down when a peer's
 * evidence reaches it — stopped, or crashing with the evidence queued — and a look at an
 * actor's mailbox (`validator_down_test.ts`, `validator_down_test.ts`).
 *
 * @module
 */
import type { Actor } from "../../actors/actor.ts";
import type { ActorSystem, ActorTreeNode } from "../../actors/actor_system.ts";
import { eventually } from "../_helpers/wait.ts";

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

/** A validator taken down: wait until a peer's message reached it, then bring it back. */
export interface TakenDown {
  /** Resolves once the message passed on can have reached the validator's node. */
  passedOn: () => Promise<void>;
  /** Brings the validator back (the real one, from `restart`). */
  back: () => Promise<void>;
}

/**
 * Stop validator `name`; `back` spawns it again from `restart`. Its node finds no validator, and
 * nothing on either side shows the message came: `passedOn` is a short wait for it (too short
 * could only let the message find the validator back, a pass, never a false failure).
 */
export async function stoppedValidator<M>(
  system: ActorSystem,
  name: string,
  restart: () => Actor<M>,
): Promise<TakenDown> {
  if (!await system.stop(name)) throw new Error(`no actor ${name} to stop`);
  return {
    passedOn: () => new Promise((resolve) => setTimeout(resolve, 200)),
    back: async () => {
      await system.spawn<M>({ name, factory: restart });
    },
  };
}

/**
 * Replace validator `name` by one whose first incarnation is busy with a `stats` message and
 * crashes, with whatever is queued, once `back` is called; the supervisor restarts it as the real
 * one (`restart`). `passedOn` waits for the peer's message to be queued there (`waitingFor` names
 * it), `back` for the restart.
 */
export async function crashingValidator<M extends { type: string }>(
  system: ActorSystem,
  name: string,
  restart: () => Actor<M>,
  what: string,
  waitingFor: string,
): Promise<TakenDown> {
  if (!await system.stop(name)) throw new Error(`no actor ${name} to stop`);
  let crash!: () => void;
  const crashing = new Promise<void>((resolve) => crash = resolve);
  let incarnations = 0;
  const ref = await system.spawn<M>({
    name,
    factory: () => incarnations++ === 0 ? new CrashingIncarnation<M>(crashing, what) : restart(),
  });
  void ref.tell({ type: "stats" } as M).catch(() => {}); // what it is busy with when it crashes
  return {
    passedOn: async () => {
      await eventually(
        () => Promise.resolve((queuedAt(system.tree(), name) ?? 0) >= 1),
        waitingFor,
      );
    },
    back: async () => {
      crash();
      await eventually(() => Promise.resolve(incarnations === 2), `${what} to restart`);
    },
  };
}
