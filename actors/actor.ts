/**
 * The shapes an actor is written against: {@link Actor}, its {@link ActorContext}, and the
 * {@link ChildSpec} a supervisor uses to (re)create it.
 *
 * An actor is a plain object with a `receive` method. The runtime calls `receive` for one message
 * at a time: if it returns a promise, the next message waits for that promise to settle. What
 * `receive` returns (or resolves to) answers an `ask`; what it throws (or rejects with) crashes
 * the actor, and its supervisor decides what happens next ("let it crash"). A restart always
 * builds a fresh instance from `factory`, so no state survives a crash.
 *
 * @example
 * ```ts
 * import type { Actor } from "./actor.ts";
 *
 * type CounterMsg = { type: "add"; n: number } | { type: "get" };
 * class Counter implements Actor<CounterMsg> {
 *   #total = 0;
 *   receive(msg: CounterMsg): number | undefined {
 *     if (msg.type === "add") this.#total += msg.n;
 *     else return this.#total;
 *   }
 * }
 * ```
 *
 * @module
 */

import type { ActorRef } from "./actor_ref.ts";
import type { ActorSystem } from "./actor_system.ts";
import type { MailboxOptions } from "./mailbox.ts";

/** An actor: owns its state, handles one message at a time. */
export interface Actor<M> {
  /**
   * Handles one message. The return value (or the value its promise resolves to) answers an
   * `ask`; throwing (or rejecting) crashes this instance. A {@link LaterReply} returned answers it
   * when its answer settles, and lets the next message in at once.
   */
  receive(message: M, ctx: ActorContext<M>): unknown;
  /** Runs before the first message of each incarnation; throwing counts as a crash. */
  preStart?(ctx: ActorContext<M>): void | Promise<void>;
  /**
   * Runs when the incarnation ends (stop, crash or restart), after its linked children stopped.
   * Errors are reported on the event feed and otherwise ignored.
   */
  postStop?(ctx: ActorContext<M>): void | Promise<void>;
}

/**
 * An answer `receive` gives later, without holding the mailbox: returned by `receive` (not
 * resolved to: a promise `receive` returns holds the next message back until it settles), it lets
 * the next message in at once, and the ask is answered with what `answer` resolves to, or rejected
 * with what it rejects with, which does not crash the actor. The gen_server `noreply` and later
 * `reply` shape: for a long ask whose work changes none of the actor's state (a transfer, a read),
 * or sends what it changes back to the actor as a message, so that one slow caller does not make
 * every other wait. The answer runs on past the incarnation that gave it unless its work takes
 * `ctx.signal`; its ask's timeout bounds the caller's wait either way.
 *
 * It is a promise of the answer too, so code that calls `receive` directly (a test) awaits it as
 * it awaits any other.
 *
 * @example
 * ```ts
 * import { type Actor, LaterReply } from "./actor.ts";
 *
 * type Msg = { type: "fetch"; url: string } | { type: "ping" };
 * class Fetcher implements Actor<Msg> {
 *   receive(msg: Msg): LaterReply<string> | string {
 *     if (msg.type === "ping") return "pong"; // answered even while fetches run
 *     return new LaterReply(fetch(msg.url).then((r) => r.text()));
 *   }
 * }
 * ```
 */
export class LaterReply<T> extends Promise<T> {
  /** What it derives (`then`, `catch`) is a plain promise, not a reply given later. */
  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  /**
   * A reply given when `answer` settles.
   *
   * @param answer The answer; an unobserved rejection of it is never left unhandled.
   */
  constructor(answer: Promise<T>) {
    super((resolve, reject) => answer.then(resolve, reject));
    this.catch(() => {}); // a `tell` has no one to report it to
  }
}

/**
 * When a supervisor restarts a child that exited.
 * - `permanent`: always (crash or normal exit).
 * - `transient`: only after a crash; a normal exit (`ctx.stop()`) removes it.
 * - `temporary`: never; any exit removes it.
 */
export type RestartPolicy = "permanent" | "transient" | "temporary";

/** How to create (and re-create) one actor under a supervisor. */
export interface ChildSpec<M> {
  /** Unique name in the actor system (hierarchical names such as `"node/storage"` are welcome). */
  name: string;
  /** Builds a fresh instance; called at start and at every restart. */
  factory: () => Actor<M>;
  /** Mailbox capacity and overflow policy; see {@link MailboxOptions} for defaults. */
  mailbox?: MailboxOptions;
  /** Default `"permanent"` (`"temporary"` for children started with `ctx.spawn`). */
  restart?: RestartPolicy;
}

/** What the runtime hands an actor alongside each message and hook. */
export interface ActorContext<M> {
  /** A reference to this actor; stable across restarts. */
  readonly self: ActorRef<M>;
  /** This actor's registered name. */
  readonly name: string;
  /** The system the actor lives in (for `lookup`, `events`, ...). */
  readonly system: ActorSystem;
  /** Aborted when this incarnation stops or crashes: pass it to long-running work. */
  readonly signal: AbortSignal;
  /**
   * Starts a child linked to this incarnation: it is stopped (before this actor's `postStop`)
   * when this actor stops, crashes or restarts. Children default to `restart: "temporary"`;
   * their crashes are reported but do not crash this actor unless a restartable child exceeds
   * the restart intensity.
   */
  spawn<C>(spec: ChildSpec<C>): Promise<ActorRef<C>>;
  /**
   * Ends this incarnation normally after the current message: `permanent` actors are restarted,
   * `transient` and `temporary` ones removed.
   */
  stop(): void;
}
