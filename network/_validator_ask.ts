/**
 * Asking this node's validator for what a peer's connection is sent once, at connect: its
 * catch-up (`catch_up.ts`). It was asked once: a validator down at that moment (stopped,
 * restarting after a crash — a peer's message that crashes it is enough — or too busy to answer
 * within the ask's timeout) sent that peer nothing, for as long as the connection lasted. A connection lives for hours, so a ledger
 * that connected at the wrong second never heard of this node's convictions, faults and assigned
 * receipts, and paid the worker this ledger slashed, or left unpaid the honest worker this ledger
 * paid (review s65, `tests/network/catch_up_test.ts`).
 *
 * So the ask waits for the validator while the connection is open: with none registered (or its
 * mailbox closed for good) until an actor of that name starts (a `started` or `restarted` event),
 * then asks it; after a crash with the ask queued, or a timeout, asks again at once (queued for
 * the next incarnation, or behind the backlog) — {@link MAX_VALIDATOR_ASKS} asks in all.
 *
 * Who pays: this node, one event subscription per connection whose validator is down (gone when
 * the validator starts or the connection closes), and at most {@link MAX_VALIDATOR_ASKS} asks
 * per connection. Not part of the public API.
 *
 * @module
 */
import type { ActorSystem } from "../actors/actor_system.ts";
import { ActorStoppedError } from "../actors/errors.ts";
import type { Connection } from "../protocols/connection.ts";
import { VeriflowError } from "../protocols/errors.ts";

/**
 * Most asks of one kind per connection: the first and two more, for a validator that crashed with
 * the ask queued or timed out (one that was down costs no ask while it is waited for). A validator
 * that fails three asks in a row is failing every peer alike; its next connection asks again.
 */
export const MAX_VALIDATOR_ASKS = 3;

/** Ended without an answer: the connection closed, or every ask failed. */
export class ValidatorNotAskedError extends VeriflowError {
  /** @param why What ended it. */
  constructor(why: string) {
    super("validator_not_asked", `validator not asked: ${why}`);
  }
}

/**
 * Ask validator `name` (an actor path in `system`) `message` for the peer of `connection`,
 * waiting for the validator while it is down (see the module doc).
 *
 * @returns Its answer.
 * @throws {ValidatorNotAskedError} once the connection closed, or after
 * {@link MAX_VALIDATOR_ASKS} failed asks (the last one's error in its message).
 */
export async function askValidatorFor<R>(
  system: ActorSystem,
  name: string,
  message: unknown,
  connection: Connection,
): Promise<R> {
  let asks = 0;
  for (;;) {
    if (connection.isClosed) throw new ValidatorNotAskedError("the connection closed");
    const ref = system.lookup<unknown>(name);
    if (ref === undefined) {
      await started(system, name, connection); // closed: thrown at the top
      continue;
    }
    try {
      return await ref.ask<R>(message);
    } catch (error) {
      if (++asks >= MAX_VALIDATOR_ASKS) throw new ValidatorNotAskedError(String(error));
      // Stopped for good: waited for as when none was registered (a new one may be there now).
      if (error instanceof ActorStoppedError && system.lookup(name) === ref) {
        await started(system, name, connection);
      }
      // A crash, a timeout: asked again now (the next incarnation takes it).
    }
  }
}

/**
 * Resolves true once an actor named `name` runs in `system` (now, or at its next `started` or
 * `restarted` event), false once `connection` closed; nothing is left subscribed either way.
 */
function started(system: ActorSystem, name: string, connection: Connection): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const end = (up: boolean) => {
      if (done) return;
      done = true;
      unsubscribe();
      resolve(up);
    };
    const unsubscribe = system.events.subscribe((event) => {
      if ((event.type === "started" || event.type === "restarted") && event.name === name) {
        end(true);
      }
    });
    connection.closed.then(() => end(false), () => end(false));
    if (connection.isClosed) end(false);
  });
}
