/**
 * {@link ActorSystem}: the root of one process's actors. It owns the root supervisor, the name
 * registry and the event feed, and knows how to shut everything down in order.
 *
 * ```
 * system "node"            root supervisor (one_for_one); its escalation is fatal
 * ├── node/storage         actor
 * └── node/inference       actor, with linked per-job children from ctx.spawn
 *     └── node/inference/job-1
 * ```
 *
 * @example
 * ```ts
 * import { ActorSystem, formatTree } from "./actor_system.ts";
 *
 * type Msg = { type: "inc" } | { type: "get" };
 * const system = new ActorSystem({ name: "demo" });
 * const counter = await system.spawn<Msg>({
 *   name: "demo/counter",
 *   factory: () => {
 *     let n = 0;
 *     return { receive: (m) => (m.type === "inc" ? void n++ : n) };
 *   },
 * });
 * await counter.tell({ type: "inc" });
 * console.log(await counter.ask<number>({ type: "get" })); // 1
 * console.log(formatTree(system.tree()));
 * await system.shutdown();
 * ```
 *
 * @module
 */

import type { ChildSpec } from "./actor.ts";
import type { ActorRef } from "./actor_ref.ts";
import { type ActorEvent, EventFeed } from "./events.ts";
import type { OverflowPolicy } from "./mailbox.ts";
import { Registry } from "./registry.ts";
import type {
  BackoffOptions,
  SupervisionStrategy,
  Supervisor,
  SupervisorSpec,
} from "./supervisor.ts";
import { Supervisor as SupervisorHandle } from "./supervisor.ts";
import type { RestartPolicy } from "./actor.ts";
import type { RuntimeEnv } from "./_common.ts";
import { LocalActorRef } from "./_actor_cell.ts";
import { SupervisorCore } from "./_supervisor_core.ts";
import { AskDeadlines } from "./_ask_deadlines.ts";
import { ActorStoppedError } from "./errors.ts";

/** Options of an {@link ActorSystem}. */
export interface ActorSystemOptions {
  /** Name of the system and its root supervisor. Default `"system"`. */
  name?: string;
  /** Root restart intensity (see `SupervisorSpec`). Default 3. */
  maxRestarts?: number;
  /** Root intensity window in milliseconds. Default 5000. */
  withinMs?: number;
  /** Root restart backoff. Default none. Bad values are a `RangeError`, see `BackoffOptions`. */
  backoff?: BackoffOptions;
  /** Default `ask` timeout, >= 0 (`Infinity`: none). Default {@link DEFAULT_ASK_TIMEOUT_MS}. */
  askTimeoutMs?: number;
  /**
   * How long stopping an actor waits for the message it is handling before abandoning it (its
   * ask is then rejected), and for a `preStart` caught by the stop or a `postStop` before
   * abandoning the hook (reported as `hook_failed`). Default {@link DEFAULT_STOP_TIMEOUT_MS}; at
   * most {@link MAX_STOP_TIMEOUT_MS} (a `RangeError` otherwise).
   */
  stopTimeoutMs?: number;
  /**
   * Messages an actor handles before yielding to the event loop. Default
   * {@link DEFAULT_DRAIN_BATCH}.
   */
  drainBatch?: number;
}

/**
 * Default ask timeout: generous, because asks may wrap model loads and disk reads; callers
 * with tighter budgets pass `timeoutMs`. Finite, so a lost answer can never hang a caller.
 */
export const DEFAULT_ASK_TIMEOUT_MS = 30_000;
/** Default grace period for the in-flight message of a stopping actor. */
export const DEFAULT_STOP_TIMEOUT_MS = 5_000;
/**
 * Largest `stopTimeoutMs`: the longest wait a timer takes (2^31 - 1 ms, about 24.8 days). The
 * runtime clamps a longer one (or `Infinity`) to 1 ms, which abandoned every in-flight message
 * and hook of a stop at once instead of never.
 */
export const MAX_STOP_TIMEOUT_MS = 2_147_483_647;
/**
 * Default drain batch: big enough that the per-batch yield (about a microsecond) is amortized
 * to noise, small enough that one busy actor lets timers and I/O in every fraction of a ms.
 */
export const DEFAULT_DRAIN_BATCH = 512;

/** How the system ended: by `shutdown()`, or because the root supervisor gave up. */
export interface SystemTermination {
  /** `shutdown` when asked to stop, `fatal` after the root supervisor gave up. */
  reason: "shutdown" | "fatal";
  /** For `fatal`: the escalated failure. */
  error?: unknown;
}

/** One node of {@link ActorSystem.tree}. */
export interface ActorTreeNode {
  /** What this node is. */
  kind: "system" | "supervisor" | "actor";
  /** Its registered name (the system's name for the root). */
  name: string;
  /** `new` (not started yet), `starting`, `running`, `down` (awaiting restart), `stopped`. */
  status: "new" | "starting" | "running" | "down" | "stopped";
  /** Supervisors (and the system): their strategy. */
  strategy?: SupervisionStrategy;
  /** Its restart policy under its parent (absent for the system). */
  restart?: RestartPolicy;
  /** Restarts so far. */
  restarts: number;
  /** Actors: mailbox occupancy. */
  mailbox?: {
    size: number;
    capacity: number;
    overflow: OverflowPolicy;
    waiting: number;
    dropped: number;
  };
  /** Children in start order (for an actor: its linked children). */
  children: ActorTreeNode[];
}

/** The root of a process's actors; see the module docs. */
export class ActorSystem {
  /** The system's name (also its root supervisor's). */
  readonly name: string;
  /** Lifecycle events of every actor and supervisor in this system. */
  readonly events: EventFeed = new EventFeed();
  /** Resolves once the system has fully stopped, saying why. */
  readonly terminated: Promise<SystemTermination>;
  readonly #registry = new Registry<unknown>();
  readonly #root: SupervisorCore;
  #shutdown: Promise<void> | undefined = undefined;
  #fatal: { error: unknown } | undefined = undefined;
  #resolveTerminated!: (t: SystemTermination) => void;

  /**
   * Creates the system and its root supervisor; actors are added with `spawn`/`supervise`.
   *
   * @param options See {@link ActorSystemOptions}.
   */
  constructor(options?: ActorSystemOptions) {
    this.name = options?.name ?? "system";
    this.terminated = new Promise((resolve) => (this.#resolveTerminated = resolve));
    const drainBatch = options?.drainBatch ?? DEFAULT_DRAIN_BATCH;
    if (!Number.isInteger(drainBatch) || drainBatch < 1) {
      throw new RangeError(`drainBatch must be a positive integer, got ${drainBatch}`);
    }
    const stopTimeoutMs = options?.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    if (!(stopTimeoutMs >= 0 && stopTimeoutMs <= MAX_STOP_TIMEOUT_MS)) {
      throw new RangeError(
        `stopTimeoutMs must be in 0..${MAX_STOP_TIMEOUT_MS}, got ${stopTimeoutMs}`,
      );
    }
    // Checked here rather than at every ask that uses it as its default.
    const askTimeoutMs = options?.askTimeoutMs ?? DEFAULT_ASK_TIMEOUT_MS;
    if (!(askTimeoutMs >= 0)) {
      throw new RangeError(`askTimeoutMs must be >= 0, got ${askTimeoutMs}`);
    }
    const events = this.events;
    const env: RuntimeEnv = {
      system: this,
      registry: this.#registry,
      emit: (event: ActorEvent) => events.emit(event),
      askTimeoutMs,
      deadlines: new AskDeadlines(),
      stopTimeoutMs,
      drainBatch,
    };
    this.#root = new SupervisorCore(
      env,
      {
        name: this.name,
        strategy: "one_for_one",
        maxRestarts: options?.maxRestarts,
        withinMs: options?.withinMs,
        backoff: options?.backoff,
      },
      { childExited: (_child, _inc, reason) => this.#rootGaveUp(reason) },
      {
        registered: false,
        defaultRestart: "permanent",
      },
    );
    this.#root.startEmpty();
  }

  /** Whether `shutdown` has begun (or a fatal escalation started it). */
  get stopping(): boolean {
    return this.#shutdown !== undefined;
  }

  /**
   * Starts an actor under the root supervisor.
   *
   * @throws {NameTakenError} / {InvalidNameError} for a bad name, {ActorCrashedError} if its
   * factory or `preStart` throws, {ActorStoppedError} after shutdown.
   */
  spawn<M>(spec: ChildSpec<M>): Promise<ActorRef<M>> {
    if (this.#shutdown !== undefined) return this.#stoppedError();
    return this.#root.spawn(spec);
  }

  /** Starts a supervisor (and its children, in order) under the root supervisor. */
  supervise(spec: SupervisorSpec): Promise<Supervisor> {
    if (this.#shutdown !== undefined) return this.#stoppedError();
    return this.#root.supervise(spec);
  }

  /** The actor registered under `name`, if any. The type parameter is the caller's claim. */
  lookup<M>(name: string): ActorRef<M> | undefined {
    const entry = this.#registry.get(name);
    return entry instanceof LocalActorRef ? entry as ActorRef<M> : undefined;
  }

  /** The supervisor registered under `name`, if any. */
  lookupSupervisor(name: string): Supervisor | undefined {
    const entry = this.#registry.get(name);
    return entry instanceof SupervisorHandle ? entry : undefined;
  }

  /** Every registered name (actors and supervisors). */
  names(): string[] {
    return this.#registry.names();
  }

  /**
   * Stops the actor or supervisor `name` for good (its supervisor will not restart it).
   * Resolves false if no such child exists.
   */
  stop(name: string): Promise<boolean> {
    return this.#root.stopDescendant(name);
  }

  /** The supervision tree as data, rooted at the system. */
  tree(): ActorTreeNode {
    const root = this.#root.tree();
    return { ...root, kind: "system", restart: undefined };
  }

  /**
   * Stops everything: children in reverse start order, recursively; each actor's queued asks
   * and waiting senders are rejected with `ActorStoppedError`, its in-flight message gets up to
   * `stopTimeoutMs` to finish, then `postStop` runs. Idempotent.
   */
  shutdown(): Promise<void> {
    if (this.#shutdown === undefined) {
      this.#shutdown = this.#root.stop("shutdown").then(() => {
        const fatal = this.#fatal;
        this.#resolveTerminated(
          fatal === undefined ? { reason: "shutdown" } : { reason: "fatal", error: fatal.error },
        );
      });
    }
    return this.#shutdown;
  }

  #rootGaveUp(reason: unknown): void {
    if (this.#fatal !== undefined) return;
    this.#fatal = { error: reason };
    this.events.emit({ type: "fatal", name: this.name, time: Date.now(), reason });
    void this.shutdown();
  }

  #stoppedError(): Promise<never> {
    return Promise.reject(new ActorStoppedError(this.name, "system shut down"));
  }
}

/**
 * Renders a tree from {@link ActorSystem.tree} as indented text, one node per line:
 *
 * ```
 * node [system one_for_one, running]
 * ├── node/storage [actor permanent, running, mailbox 0/1024]
 * └── node/inference [actor permanent, running, mailbox 0/1024]
 * ```
 */
export function formatTree(node: ActorTreeNode): string {
  const lines: string[] = [];
  const walk = (n: ActorTreeNode, prefix: string, childPrefix: string) => {
    lines.push(prefix + n.name + " [" + describeNode(n) + "]");
    n.children.forEach((child, i) => {
      const last = i === n.children.length - 1;
      walk(child, childPrefix + (last ? "└── " : "├── "), childPrefix + (last ? "    " : "│   "));
    });
  };
  walk(node, "", "");
  return lines.join("\n");
}

function describeNode(n: ActorTreeNode): string {
  const parts = [n.kind + (n.strategy ? " " + n.strategy : n.restart ? " " + n.restart : "")];
  parts.push(n.status);
  if (n.restarts > 0) parts.push(`${n.restarts} restart${n.restarts === 1 ? "" : "s"}`);
  if (n.mailbox !== undefined) {
    let mailbox = `mailbox ${n.mailbox.size}/${n.mailbox.capacity}`;
    if (n.mailbox.waiting > 0) mailbox += ` +${n.mailbox.waiting} waiting`;
    if (n.mailbox.dropped > 0) mailbox += `, ${n.mailbox.dropped} dropped`;
    parts.push(mailbox);
  }
  return parts.join(", ");
}
