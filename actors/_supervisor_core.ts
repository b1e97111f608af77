/**
 * The supervisor's machinery behind the {@link Supervisor} handle: child list, restart
 * decisions, intensity, backoff and escalation. See `supervisor.ts` for the semantics.
 *
 * Exit reports, starts, halts and stops are serialized on one promise chain per supervisor, so a
 * restart never interleaves with another restart or a shutdown. Adding a child does not wait on
 * that chain: an actor's `preStart` may spawn siblings without deadlocking its own start.
 *
 * @module
 */

import type { ChildSpec, RestartPolicy } from "./actor.ts";
import type { ActorRef } from "./actor_ref.ts";
import type { ActorTreeNode } from "./actor_system.ts";
import type { StopReason } from "./events.ts";
import {
  type ChildParent,
  type RuntimeEnv,
  sleep,
  type StartInfo,
  type SupervisedChild,
  untilAborted,
} from "./_common.ts";
import { ActorCell } from "./_actor_cell.ts";
import { ActorStoppedError, EscalatedError } from "./errors.ts";
import {
  type BackoffOptions,
  DEFAULT_BACKOFF_MAX_MS,
  DEFAULT_MAX_RESTARTS,
  DEFAULT_RESTART_WINDOW_MS,
  isSupervisorSpec,
  MAX_BACKOFF_MS,
  type SupervisionStrategy,
  Supervisor,
  type SupervisorSpec,
} from "./supervisor.ts";

/** Construction flags not exposed in the public spec. */
export interface SupervisorCoreOptions {
  /** Register the name (false for the root and for an actor's linked-children group). */
  registered: boolean;
  /** Restart policy for children whose spec has none. */
  defaultRestart: RestartPolicy;
  /**
   * Emit this supervisor's own started/stopped events. Default true; off for an actor's
   * linked-children group, which is bookkeeping rather than a node of the tree.
   */
  announce?: boolean;
}

const BACKOFF_DEFAULT_FACTOR = 2;

/** Where a child's crash streak stands; see `SupervisorCore.#backoffDelay`. */
interface BackoffStreak {
  /** Uncapped delay of the next restart of the streak. */
  nextMs: number;
  /** When the last restart was due (its exit plus its delay). */
  restartAt: number;
}

/**
 * Refuses backoff values no timer can honour: a negative or `NaN` delay or factor silently meant
 * no backoff, and a delay past {@link MAX_BACKOFF_MS} (or `Infinity`) is clamped to 1 ms.
 */
function checkBackoff(backoff: BackoffOptions): void {
  const { initialMs, maxMs, factor } = backoff;
  if (!(initialMs >= 0 && initialMs <= MAX_BACKOFF_MS)) {
    throw new RangeError(`backoff.initialMs must be in 0..${MAX_BACKOFF_MS}, got ${initialMs}`);
  }
  if (maxMs !== undefined && !(maxMs >= 0 && maxMs <= MAX_BACKOFF_MS)) {
    throw new RangeError(`backoff.maxMs must be in 0..${MAX_BACKOFF_MS}, got ${maxMs}`);
  }
  if (factor !== undefined && !(factor >= 0 && Number.isFinite(factor))) {
    throw new RangeError(`backoff.factor must be a finite number >= 0, got ${factor}`);
  }
}

/** See the module docs. */
export class SupervisorCore implements SupervisedChild, ChildParent {
  readonly name: string;
  readonly kind = "supervisor" as const;
  readonly restart: RestartPolicy;
  readonly strategy: SupervisionStrategy;
  readonly handle: Supervisor;
  readonly #env: RuntimeEnv;
  readonly #parent: ChildParent;
  readonly #options: SupervisorCoreOptions;
  readonly #maxRestarts: number;
  readonly #withinMs: number;
  readonly #backoff: BackoffOptions | undefined;
  #children: SupervisedChild[] = [];
  #restartTimes: number[] = [];
  #incarnation = 0;
  #running = false;
  #final = false;
  #stopped = false;
  #restarts = 0;
  /** Each child's crash streak (none: the child has not been restarted in this incarnation). */
  #streaks = new WeakMap<SupervisedChild, BackoffStreak>();
  #controller = new AbortController();
  #chain: Promise<void> = Promise.resolve();
  /**
   * Stops of children already taken off the list but not yet stopped (`stopChild`, a failed
   * add): they run off the chain, and a stop of this supervisor must still wait for them, or a
   * shutdown would resolve while a cancelled job's postStop still runs.
   */
  readonly #removals = new Set<Promise<void>>();

  constructor(
    env: RuntimeEnv,
    spec: SupervisorSpec,
    parent: ChildParent,
    options: SupervisorCoreOptions,
  ) {
    const maxRestarts = spec.maxRestarts ?? DEFAULT_MAX_RESTARTS;
    const withinMs = spec.withinMs ?? DEFAULT_RESTART_WINDOW_MS;
    if (!Number.isInteger(maxRestarts) || maxRestarts < 0) {
      throw new RangeError(`maxRestarts must be a non-negative integer, got ${maxRestarts}`);
    }
    if (!(withinMs > 0)) throw new RangeError(`withinMs must be positive, got ${withinMs}`);
    if (spec.backoff !== undefined) checkBackoff(spec.backoff);
    const strategy = spec.strategy ?? "one_for_one";
    if (strategy !== "one_for_one" && strategy !== "one_for_all" && strategy !== "rest_for_one") {
      throw new RangeError(`unknown supervision strategy: ${strategy}`);
    }
    this.name = spec.name;
    this.restart = spec.restart ?? "permanent";
    this.strategy = strategy;
    this.#env = env;
    this.#parent = parent;
    this.#options = options;
    this.#maxRestarts = maxRestarts;
    this.#withinMs = withinMs;
    this.#backoff = spec.backoff;
    this.handle = new Supervisor(this);
    if (options.registered) env.registry.register(this.name, this.handle);
    try {
      for (const child of spec.children ?? []) this.#children.push(this.#create(child));
    } catch (error) {
      // A name collision deep in the spec: release every name claimed so far.
      this.#releaseNames();
      throw error;
    }
  }

  get incarnation(): number {
    return this.#incarnation;
  }

  // deno-lint-ignore no-explicit-any
  #create(spec: ChildSpec<any> | SupervisorSpec): SupervisedChild {
    if (isSupervisorSpec(spec)) {
      return new SupervisorCore(this.#env, spec, this, {
        registered: true,
        defaultRestart: "permanent",
      });
    }
    const cell = new ActorCell(this.#env, spec, this, this.#options.defaultRestart);
    this.#env.registry.register(cell.name, cell.ref);
    return cell;
  }

  #releaseNames(): void {
    for (const child of this.#children) {
      if (child instanceof SupervisorCore) child.#releaseNames();
      else if (child instanceof ActorCell) this.#env.registry.unregister(child.name, child.ref);
    }
    if (this.#options.registered) this.#env.registry.unregister(this.name, this.handle);
  }

  // ---- public operations (via Supervisor) ---------------------------------------------------

  async spawn<M>(spec: ChildSpec<M>): Promise<ActorRef<M>> {
    // #create tells the kinds apart by the factory alone: an actor spec that lost its factory
    // (built from untyped input) would otherwise become an empty supervisor under its name, and
    // spawn would resolve with no ref at all.
    if (typeof spec?.factory !== "function") {
      throw new TypeError(`child spec "${spec?.name}" needs a factory function`);
    }
    const cell = await this.#add(spec) as ActorCell<M>;
    return cell.ref;
  }

  async supervise(spec: SupervisorSpec): Promise<Supervisor> {
    // The converse: an actor spec would start as an actor and supervise would resolve undefined.
    if (!isSupervisorSpec(spec)) {
      const name = (spec as { name?: unknown }).name;
      throw new TypeError(`supervisor spec "${name}" must not have a factory`);
    }
    const core = await this.#add(spec) as SupervisorCore;
    return core.handle;
  }

  // deno-lint-ignore no-explicit-any
  async #add(spec: ChildSpec<any> | SupervisorSpec): Promise<SupervisedChild> {
    if (this.#final) throw new ActorStoppedError(this.name, "supervisor stopped");
    const child = this.#create(spec);
    this.#children.push(child);
    try {
      await child.start({ initial: true, delayMs: 0 });
    } catch (error) {
      this.#children = this.#children.filter((c) => c !== child);
      await this.#remove(child);
      throw error;
    }
    return child;
  }

  async stopChild(name: string): Promise<boolean> {
    // Not on the chain: a restart waiting out a long backoff must not delay an explicit stop.
    // Removing the child first is enough to keep a concurrent restart from starting it again.
    const child = this.#children.find((c) => c.name === name);
    if (child === undefined) return false;
    this.#children = this.#children.filter((c) => c !== child);
    await this.#remove(child);
    return true;
  }

  /** Stops a child already taken off the list, tracked in #removals until it is stopped. */
  #remove(child: SupervisedChild): Promise<void> {
    const stopping = child.stop("removed");
    this.#removals.add(stopping);
    const forget = () => void this.#removals.delete(stopping);
    stopping.then(forget, forget);
    return stopping;
  }

  childNames(): string[] {
    return this.#children.map((c) => c.name);
  }

  childTrees(): ActorTreeNode[] {
    return this.#children.map((c) => c.tree());
  }

  /** Whether `name` is this supervisor's child or a descendant (linked children included). */
  owns(name: string): boolean {
    return this.#children.some((c) => c.name === name || c.owns(name));
  }

  /** Stops the descendant `name` for good, through whoever supervises it. */
  async stopDescendant(name: string): Promise<boolean> {
    if (this.#children.some((c) => c.name === name)) return await this.stopChild(name);
    const owner = this.#children.find((c) => c.owns(name));
    return owner === undefined ? false : await owner.stopDescendant(name);
  }

  /**
   * Marks a supervisor created without initial children as started, synchronously, so its
   * `started` event precedes those of children spawned right after construction.
   */
  startEmpty(): void {
    if (this.#incarnation > 0 || this.#children.length > 0) {
      throw new Error("startEmpty is only for a fresh, childless supervisor");
    }
    this.#incarnation = 1;
    this.#running = true;
    if (this.#options.announce === false) return;
    this.#env.emit({ type: "started", kind: "supervisor", name: this.name, time: Date.now() });
  }

  // ---- SupervisedChild ------------------------------------------------------------------------

  start(info: StartInfo): Promise<void> {
    return this.#enqueue(async () => {
      if (this.#final || this.#running) return;
      const incarnation = ++this.#incarnation;
      this.#running = true;
      this.#restartTimes = [];
      this.#streaks = new WeakMap();
      this.#controller = new AbortController();
      const signal = this.#controller.signal;
      const started: SupervisedChild[] = [];
      for (const child of [...this.#children]) {
        if (signal.aborted) break;
        if (!info.initial) {
          // A temporary child never comes back. One still on the list here was added while this
          // supervisor was down (a halt removes the others): running, or ended with its exit
          // report still on its way, which removes it.
          if (child.restart === "temporary") continue;
          // Failures are reported back to this supervisor as exits and handled on the chain.
          // A stop (or halt) does not wait for a start still in progress (a hung preStart): it
          // stops the child itself, which bounds that preStart by stopTimeoutMs.
          await untilAborted(child.start({ initial: false, delayMs: info.delayMs }), signal);
          continue;
        }
        try {
          await untilAborted(child.start({ initial: true, delayMs: 0 }), signal);
          started.push(child);
        } catch (error) {
          for (const done of started.reverse()) await done.halt("shutdown");
          this.#running = false;
          throw error;
        }
      }
      if (signal.aborted) {
        // Stopped or halted while starting: the queued stop/halt ends what did start. A first
        // start cut by a halt (a group restart or give-up of the parent) is no failure of the
        // spawn, as for an actor: this supervisor keeps its place (#running stays set so the
        // halt ends its children) and whoever halted it starts it again. Throwing made
        // `supervise()` reject and tore down the subtree because a sibling crashed.
        if (!info.initial || !this.#final) return;
        this.#running = false;
        throw new ActorStoppedError(this.name, "stopped while starting");
      }
      if (this.#options.announce === false) return;
      if (incarnation === 1) {
        this.#env.emit({ type: "started", kind: "supervisor", name: this.name, time: Date.now() });
      } else {
        this.#restarts++;
        this.#env.emit({
          type: "restarted",
          kind: "supervisor",
          name: this.name,
          time: Date.now(),
          incarnation,
          delayMs: info.delayMs,
        });
      }
    });
  }

  halt(reason: StopReason): Promise<void> {
    this.#controller.abort();
    return this.#enqueue(async () => {
      if (!this.#running) return;
      await this.#haltChildren(reason);
      this.#announceStopped(reason);
    });
  }

  stop(reason: StopReason): Promise<void> {
    this.#final = true;
    this.#controller.abort();
    return this.#enqueue(async () => {
      if (this.#stopped) return;
      this.#stopped = true;
      this.#running = false;
      const children = this.#children;
      for (let i = children.length - 1; i >= 0; i--) await children[i].stop(reason);
      this.#children = [];
      await Promise.allSettled(this.#removals);
      if (this.#options.registered) this.#env.registry.unregister(this.name, this.handle);
      this.#announceStopped(reason);
    });
  }

  /** Emits `stopped` for this supervisor unless it was created with `announce: false`. */
  #announceStopped(reason: StopReason): void {
    if (this.#options.announce === false) return;
    this.#env.emit({
      type: "stopped",
      kind: "supervisor",
      name: this.name,
      time: Date.now(),
      reason,
    });
  }

  tree(): ActorTreeNode {
    return {
      kind: "supervisor",
      name: this.name,
      status: this.#stopped
        ? "stopped"
        : this.#running
        ? "running"
        : this.#incarnation === 0
        ? "new"
        : "down",
      strategy: this.strategy,
      restart: this.restart,
      restarts: this.#restarts,
      children: this.childTrees(),
    };
  }

  /** Ends this incarnation: children stopped in reverse start order; temporary ones removed. */
  async #haltChildren(reason: StopReason): Promise<void> {
    this.#running = false;
    this.#controller.abort();
    const children = this.#children;
    for (let i = children.length - 1; i >= 0; i--) {
      const child = children[i];
      if (child.restart === "temporary") {
        await child.stop(reason);
        this.#children = this.#children.filter((c) => c !== child);
      } else {
        await child.halt(reason);
      }
    }
  }

  // ---- ChildParent ----------------------------------------------------------------------------

  childExited(
    child: SupervisedChild,
    incarnation: number,
    reason: unknown,
    crashed: boolean,
  ): void {
    // The exit counts against the intensity at the time it happened, not when the chain gets to it.
    const exitedAt = performance.now();
    this.#enqueue(() => this.#handleExit(child, incarnation, reason, crashed, exitedAt)).catch(
      (error) => console.error(`supervisor "${this.name}" failed handling an exit:`, error),
    );
  }

  async #handleExit(
    child: SupervisedChild,
    incarnation: number,
    reason: unknown,
    crashed: boolean,
    exitedAt: number,
  ): Promise<void> {
    if (this.#final) return;
    // A stale report: the child was restarted (or removed) since that incarnation ended.
    if (!this.#children.includes(child) || child.incarnation !== incarnation) return;
    const restartIt = child.restart === "permanent" || (child.restart === "transient" && crashed);
    if (!restartIt) {
      // Removed even while this supervisor is down (halted, or gave up and awaits its parent's
      // restart): ignoring the exit then kept a child that had ended for good on the list, and
      // the supervisor's restart brought it back.
      this.#children = this.#children.filter((c) => c !== child);
      await child.stop("removed");
      return;
    }
    // Down: its own restart starts every child again.
    if (!this.#running) return;
    const windowStart = exitedAt - this.#withinMs;
    this.#restartTimes = this.#restartTimes.filter((t) => t > windowStart);
    this.#restartTimes.push(exitedAt);
    const restartsInWindow = this.#restartTimes.length;
    if (restartsInWindow > this.#maxRestarts) {
      await this.#giveUp(reason, restartsInWindow - 1);
      return;
    }
    const delayMs = this.#backoffDelay(child, exitedAt);
    const signal = this.#controller.signal;
    if (this.strategy === "one_for_one" && delayMs > 0) {
      // Only this child restarts: it waits out its backoff off the chain, so one child's backoff
      // never delays another's restart (or a removal); only its start is queued.
      void sleep(delayMs, signal).then(() =>
        this.#enqueue(() => this.#restartGroup(child, delayMs, signal)).catch((error) =>
          console.error(`supervisor "${this.name}" failed restarting "${child.name}":`, error)
        )
      );
      return;
    }
    // A group restart waits on the chain: exits of its members reported meanwhile turn stale.
    await sleep(delayMs, signal);
    await this.#restartGroup(child, delayMs, signal);
  }

  /** The children that restart with `child` under the strategy (empty if it is gone). */
  #groupOf(child: SupervisedChild): SupervisedChild[] {
    const index = this.#children.indexOf(child);
    if (index < 0) return [];
    if (this.strategy === "one_for_one") return [child];
    if (this.strategy === "one_for_all") return [...this.#children];
    return this.#children.slice(index);
  }

  /** Restarts `child` (with its group under the strategy) once its backoff is over. */
  async #restartGroup(child: SupervisedChild, delayMs: number, signal: AbortSignal): Promise<void> {
    if (this.#final || !this.#running || signal.aborted) return;
    const info: StartInfo = { initial: false, delayMs };
    const group = this.#groupOf(child);
    if (group.length === 0) return;
    // Siblings go down in reverse start order, then the group comes back in start order.
    for (let i = group.length - 1; i >= 0; i--) {
      const sibling = group[i];
      if (sibling === child) continue;
      if (sibling.restart === "temporary") {
        await sibling.stop("restart");
        this.#children = this.#children.filter((c) => c !== sibling);
      } else {
        await sibling.halt("restart");
      }
    }
    if (this.strategy === "one_for_one") {
      // Only this child restarts, and its start runs off the chain: a long preStart (a model
      // load) must not hold up another child's restart. The child's own lifecycle queue orders
      // the start against a later halt or stop, and a failed start comes back as an exit.
      if (this.#children.includes(child)) {
        child.start(info).catch((error) =>
          console.error(`supervisor "${this.name}" failed restarting "${child.name}":`, error)
        );
      }
      return;
    }
    for (const member of group) {
      if (this.#final || !this.#running || signal.aborted) return;
      // A stop (or halt) does not wait for a start still in progress (a hung preStart): it stops
      // the child itself, which bounds that preStart by stopTimeoutMs.
      if (this.#children.includes(member)) await untilAborted(member.start(info), signal);
    }
  }

  async #giveUp(reason: unknown, restarts: number): Promise<void> {
    this.#env.emit({
      type: "escalated",
      kind: "supervisor",
      name: this.name,
      time: Date.now(),
      reason,
      restarts,
    });
    await this.#haltChildren("gave_up");
    this.#parent.childExited(this, this.#incarnation, new EscalatedError(this.name, reason), true);
  }

  /**
   * The backoff before the restart for `child`'s exit at `exitedAt`. It grows per restart of the
   * child's crash streak, which ends once it stayed up for `withinMs` after its last restart. It
   * used to grow per restart inside the intensity window instead; that window includes the
   * backoff wait, so once delays outgrew `withinMs` it held only the latest exit, and a crash
   * loop restarted at `initialMs` forever, neither backing off to `maxMs` nor escalating.
   *
   * The streak is the child's, not the supervisor's: with one streak for all, a stable child's
   * first crash waited as long as a flapping sibling's latest restart (up to `maxMs`) and grew
   * that sibling's next delay. The members of a group restart (`one_for_all`, `rest_for_one`)
   * came back with the failed child, so they carry on its streak.
   */
  #backoffDelay(child: SupervisedChild, exitedAt: number): number {
    const backoff = this.#backoff;
    if (backoff === undefined) return 0;
    const factor = backoff.factor ?? BACKOFF_DEFAULT_FACTOR;
    const maxMs = backoff.maxMs ?? DEFAULT_BACKOFF_MAX_MS;
    const streak = this.#streaks.get(child);
    let nextMs = streak !== undefined && exitedAt - streak.restartAt <= this.#withinMs
      ? streak.nextMs
      : backoff.initialMs;
    const delayMs = Math.min(maxMs, nextMs);
    // Grown step by step rather than as initialMs * factor ** n: an endless streak overflows
    // to Infinity at worst, never to NaN (0 * Infinity).
    nextMs *= factor;
    const restartAt = exitedAt + delayMs;
    for (const member of this.#groupOf(child)) this.#streaks.set(member, { nextMs, restartAt });
    return delayMs;
  }

  #enqueue<T>(op: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(op);
    this.#chain = next.then(() => {}, () => {});
    return next;
  }
}
