/**
 * The actor cell: everything the runtime keeps for one named actor across its incarnations
 * (mailbox, current instance, lifecycle), and {@link LocalActorRef}, the handle given out.
 *
 * Life of a cell: `start` builds an instance from the factory and runs `preStart`; the drain
 * loop then feeds it messages one at a time. An incarnation ends by crash (the handler threw),
 * normal exit (`ctx.stop()`), halt (the supervisor restarts it with siblings) or final stop.
 * Messages queued when an incarnation ends end with it: asks are rejected (crashed or stopped),
 * tells are discarded, because they were addressed to state that no longer exists. Messages sent
 * while no incarnation runs wait in the mailbox for the next one. Lifecycle operations are
 * serialized on one promise chain so a stop can never interleave with a half-done start.
 *
 * @module
 */

import {
  type Actor,
  type ActorContext,
  type ChildSpec,
  LaterReply,
  type RestartPolicy,
} from "./actor.ts";
import type { ActorRef, AskOptions } from "./actor_ref.ts";
import type { ActorSystem, ActorTreeNode } from "./actor_system.ts";
import type { StopReason } from "./events.ts";
import {
  type ChildParent,
  type RuntimeEnv,
  settleWithin,
  type StartInfo,
  type SupervisedChild,
} from "./_common.ts";
import {
  ActorCrashedError,
  ActorStoppedError,
  AskAbortedError,
  AskTimeoutError,
  HookTimeoutError,
} from "./errors.ts";
import { isAdmitted, Mailbox } from "./mailbox.ts";
import type { DeadlineQueue, Expirable } from "./_ask_deadlines.ts";
import { SupervisorCore } from "./_supervisor_core.ts";
import { setImmediate } from "node:timers";

/** No incarnation runs: before the first start, or between incarnations. */
const IDLE = 0;
/** Factory and `preStart` are running; messages queue. */
const STARTING = 1;
/** Messages are being handled. */
const RUNNING = 2;
/** Finally stopped; the mailbox is closed. */
const STOPPED = 3;

/** The answer channel of one ask; settles once, then releases its deadline and abort listener. */
export class PendingReply implements Expirable {
  #resolve: (value: unknown) => void;
  #reject: (error: unknown) => void;
  settled = false;
  deadlines: DeadlineQueue | undefined = undefined;
  signal: AbortSignal | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;
  readonly #actor: string;
  readonly #timeoutMs: number;

  constructor(
    actor: string,
    timeoutMs: number,
    resolve: (value: unknown) => void,
    reject: (error: unknown) => void,
  ) {
    this.#actor = actor;
    this.#timeoutMs = timeoutMs;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  resolve(value: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.#cleanup();
    this.#resolve(value);
  }

  reject(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.#cleanup();
    this.#reject(error);
  }

  expire(): void {
    this.reject(new AskTimeoutError(this.#actor, this.#timeoutMs));
  }

  #cleanup(): void {
    this.deadlines?.release();
    if (this.onAbort !== undefined) this.signal!.removeEventListener("abort", this.onAbort);
  }
}

/** The {@link ActorRef} implementation for actors of this process. */
export class LocalActorRef<M> implements ActorRef<M> {
  readonly #cell: ActorCell<M>;

  constructor(cell: ActorCell<M>) {
    this.#cell = cell;
  }

  get name(): string {
    return this.#cell.name;
  }

  tell(message: M): Promise<void> {
    return this.#cell.post(message, undefined);
  }

  ask<R = unknown>(message: M, options?: AskOptions): Promise<R> {
    return this.#cell.ask<R>(message, options);
  }

  toString(): string {
    return `ActorRef(${this.#cell.name})`;
  }
}

/** One named actor under a parent; see the module docs. */
export class ActorCell<M> implements SupervisedChild, ChildParent {
  readonly name: string;
  readonly kind = "actor" as const;
  readonly restart: RestartPolicy;
  readonly ref: LocalActorRef<M>;
  readonly #spec: ChildSpec<M>;
  readonly #env: RuntimeEnv;
  readonly #parent: ChildParent;
  readonly #mailbox: Mailbox<M, PendingReply>;
  #state = IDLE;
  #incarnation = 0;
  /** Bumped whenever an incarnation starts or ends; async callbacks from an older epoch are stale. */
  #epoch = 0;
  #instance: Actor<M> | undefined = undefined;
  #ctx: ActorContext<M> | undefined = undefined;
  #controller: AbortController | undefined = undefined;
  #linked: SupervisorCore | undefined = undefined;
  #scheduled = false;
  #busy = false;
  #current: Promise<void> | undefined = undefined;
  #currentReply: PendingReply | undefined = undefined;
  #exitRequested = false;
  /** Linked children gave up while preStart ran: the incarnation fails once preStart returns. */
  #linkedFailure: { reason: unknown } | undefined = undefined;
  #final = false;
  #ops: Promise<void> = Promise.resolve();
  #restarts = 0;
  readonly #drainBound = () => this.#drain();

  constructor(
    env: RuntimeEnv,
    spec: ChildSpec<M>,
    parent: ChildParent,
    defaultRestart: RestartPolicy,
  ) {
    if (typeof spec?.factory !== "function") {
      throw new TypeError(`child spec "${spec?.name}" needs a factory function`);
    }
    this.name = spec.name;
    this.restart = spec.restart ?? defaultRestart;
    this.#spec = spec;
    this.#env = env;
    this.#parent = parent;
    this.#mailbox = new Mailbox<M, PendingReply>(spec.name, spec.mailbox);
    this.ref = new LocalActorRef(this);
  }

  get incarnation(): number {
    return this.#incarnation;
  }

  // ---- message path (hot) -------------------------------------------------------------------

  post(message: M, reply: PendingReply | undefined): Promise<void> {
    const pushed = this.#mailbox.push(message, reply);
    if (this.#state === RUNNING && !this.#scheduled && !this.#busy) {
      this.#scheduled = true;
      // A microtask, not a macrotask: a lone ask is answered without a trip through the event
      // loop. Long runs still yield every `drainBatch` messages (see #drain).
      queueMicrotask(this.#drainBound);
    }
    return pushed;
  }

  ask<R>(message: M, options: AskOptions | undefined): Promise<R> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(new AskAbortedError(this.name, signal.reason));
    const timeoutMs = options?.timeoutMs ?? this.#env.askTimeoutMs;
    if (!(timeoutMs >= 0)) {
      return Promise.reject(new RangeError(`ask timeoutMs must be >= 0, got ${timeoutMs}`));
    }
    let resolve!: (value: unknown) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<R>((res, rej) => {
      resolve = res as (value: unknown) => void;
      reject = rej;
    });
    const reply = new PendingReply(this.name, timeoutMs, resolve, reject);
    if (timeoutMs !== Infinity) {
      const deadlines = this.#env.deadlines.queueFor(timeoutMs);
      reply.deadlines = deadlines;
      deadlines.add(reply);
    }
    if (signal !== undefined) {
      reply.signal = signal;
      reply.onAbort = () => reply.reject(new AskAbortedError(this.name, signal.reason));
      signal.addEventListener("abort", reply.onAbort, { once: true });
    }
    const pushed = this.post(message, reply);
    if (!isAdmitted(pushed)) pushed.then(undefined, (error) => reply.reject(error));
    return promise;
  }

  #drain(): void {
    // `#scheduled` stays true while draining so that messages the handler sends to itself do
    // not schedule a second, redundant drain; every exit below clears it. Once a final stop is
    // requested nothing more is handled: its queued step rejects what is left.
    if (this.#state !== RUNNING || this.#busy || this.#final) {
      this.#scheduled = false;
      return;
    }
    if (this.#exitRequested) {
      // ctx.stop() came while no message was in hand (see #makeContext): end before the next one.
      this.#scheduled = false;
      this.#exitNormally();
      return;
    }
    const mailbox = this.#mailbox;
    const instance = this.#instance!;
    const ctx = this.#ctx!;
    let budget = this.#env.drainBatch;
    while (mailbox.size > 0) {
      if (budget-- === 0) {
        // Yield to the event loop (timers, I/O, other actors) between batches.
        setImmediate(this.#drainBound);
        return;
      }
      const message = mailbox.shift();
      const reply = mailbox.lastReply;
      let result: unknown;
      try {
        result = instance.receive(message, ctx);
      } catch (error) {
        this.#scheduled = false;
        this.#crash(error, reply);
        return;
      }
      if (result instanceof LaterReply) {
        // Answered when its work settles; the next message is handled meanwhile.
        if (reply !== undefined) {
          result.then((v) => reply.resolve(v), (e) => reply.reject(e));
        }
      } else if (
        result !== null && typeof result === "object" &&
        typeof (result as PromiseLike<unknown>).then === "function"
      ) {
        this.#scheduled = false;
        this.#awaitHandler(result as PromiseLike<unknown>, reply);
        return;
      } else if (reply !== undefined) reply.resolve(result);
      // The handler ended this incarnation: ctx.stop(), or a final stop of itself (e.g.
      // `ctx.system.stop(ctx.name)`), whose queued step then rejects what is still queued.
      if (this.#exitRequested || this.#final) {
        this.#scheduled = false;
        if (!this.#final) this.#exitNormally();
        return;
      }
    }
    this.#scheduled = false;
  }

  #awaitHandler(pending: PromiseLike<unknown>, reply: PendingReply | undefined): void {
    this.#busy = true;
    this.#currentReply = reply;
    const epoch = this.#epoch;
    const signal = this.#controller!.signal;
    this.#current = Promise.resolve(pending).then(
      (value) => {
        reply?.resolve(value);
        if (epoch !== this.#epoch) return;
        this.#busy = false;
        // A final stop is pending (this message had its grace): its queued step ends the
        // incarnation, stopping linked children and running postStop.
        if (this.#final) return;
        if (this.#exitRequested) this.#exitNormally();
        else if (this.#mailbox.size > 0 && !this.#scheduled) {
          this.#scheduled = true;
          this.#drain();
        }
      },
      (error) => {
        if (epoch !== this.#epoch || this.#final) {
          // The incarnation was ended, or is being stopped, from outside while this ran: a
          // handler failing now (typically because ctx.signal aborted) is the stop's doing, not
          // a crash. Its ask gets the stop's error; the stop (not #crash) ends the incarnation.
          // A stale epoch after a crash (ctx.signal aborted with the crash) already answered.
          const reason = signal.reason;
          reply?.reject(
            reason instanceof ActorStoppedError ? reason : new ActorCrashedError(this.name, error),
          );
          if (epoch === this.#epoch) this.#busy = false;
          return;
        }
        this.#busy = false;
        this.#crash(error, reply);
      },
    );
    // The callbacks above do not throw; this only keeps a future bug from becoming an
    // unhandled rejection that would take the whole process down.
    this.#current.catch((error) => console.error(`actor "${this.name}" internal error:`, error));
  }

  // ---- incarnation endings --------------------------------------------------------------------

  /**
   * Ends the incarnation as crashed. `inFlight` is a handler still running when the crash came
   * from outside (linked children gave up): it gets stopTimeoutMs, as under a halt or stop,
   * before postStop runs and the parent hears of the exit, so neither postStop nor the next
   * incarnation overlaps it (one message at a time holds across incarnations too).
   */
  #crash(
    reason: unknown,
    reply: PendingReply | undefined,
    inFlight: Promise<void> | undefined = undefined,
  ): void {
    const incarnation = this.#incarnation;
    const crashed = new ActorCrashedError(this.name, reason);
    reply?.reject(crashed);
    this.#epoch++;
    this.#state = IDLE;
    this.#controller?.abort(crashed);
    const discarded = this.#mailbox.clear((_m, r) => r?.reject(crashed));
    this.#env.emit({
      type: "crashed",
      kind: "actor",
      name: this.name,
      time: Date.now(),
      reason,
      discarded,
    });
    const notify = () => this.#parent.childExited(this, incarnation, reason, true);
    this.#enqueue(async () => {
      // ctx.signal aborted above, so a signal-aware handler ends quickly; a deaf one is abandoned.
      if (inFlight !== undefined) await settleWithin(inFlight, this.#env.stopTimeoutMs);
      await this.#finishIncarnation();
    }).then(notify, notify);
  }

  #exitNormally(): void {
    const incarnation = this.#incarnation;
    this.#epoch++;
    this.#state = IDLE;
    const stopped = new ActorStoppedError(this.name, "normal");
    this.#controller?.abort(stopped);
    this.#mailbox.clear((_m, r) => r?.reject(stopped));
    this.#env.emit({
      type: "stopped",
      kind: "actor",
      name: this.name,
      time: Date.now(),
      reason: "normal",
    });
    const notify = () => this.#parent.childExited(this, incarnation, undefined, false);
    this.#enqueue(() => this.#finishIncarnation()).then(notify, notify);
  }

  /** Stops linked children, then runs `postStop` on the ended instance. */
  async #finishIncarnation(): Promise<void> {
    const instance = this.#instance;
    const ctx = this.#ctx;
    const linked = this.#linked;
    this.#instance = undefined;
    this.#linked = undefined;
    this.#busy = false;
    this.#current = undefined;
    this.#currentReply = undefined;
    if (linked !== undefined) await linked.stop("shutdown");
    if (instance?.postStop !== undefined && ctx !== undefined) {
      try {
        // Bounded like the in-flight message: a hung postStop must not wedge restarts or shutdown.
        if (!await this.#awaitHook(instance.postStop(ctx), undefined)) {
          this.#hookFailed(
            "postStop",
            new HookTimeoutError(this.name, "postStop", this.#env.stopTimeoutMs),
          );
        }
      } catch (reason) {
        this.#hookFailed("postStop", reason);
      }
    }
  }

  /**
   * Waits for what a lifecycle hook returned, but at most `stopTimeoutMs` counted from when
   * `signal` aborts (the incarnation is being stopped), or from now without a signal. Resolves
   * true once it finished, false when abandoned; rejects with what the hook rejected with.
   */
  #awaitHook(outcome: void | Promise<void>, signal: AbortSignal | undefined): Promise<boolean> {
    if (
      outcome === undefined || outcome === null ||
      typeof (outcome as PromiseLike<void>).then !== "function"
    ) {
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined = undefined;
      const startClock = () => {
        timer = setTimeout(() => resolve(false), this.#env.stopTimeoutMs);
      };
      const done = () => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", startClock);
      };
      if (signal === undefined || signal.aborted) startClock();
      else signal.addEventListener("abort", startClock, { once: true });
      Promise.resolve(outcome).then(
        () => {
          done();
          resolve(true);
        },
        (error) => {
          done();
          reject(error);
        },
      );
    });
  }

  #hookFailed(hook: "preStart" | "postStop", reason: unknown): void {
    this.#env.emit({ type: "hook_failed", hook, name: this.name, time: Date.now(), reason });
  }

  /**
   * Ends a running incarnation from outside (halt or stop); waits for an in-flight handler.
   * Resolves whether one was running. The caller emits `stopped`: a final stop only once the
   * name is free, so a listener may take it over at once.
   */
  async #endFromOutside(error: ActorStoppedError): Promise<boolean> {
    if (this.#state === IDLE || this.#state === STOPPED) return false;
    this.#epoch++;
    this.#state = IDLE;
    this.#controller?.abort(error);
    this.#mailbox.clear((_m, r) => r?.reject(error));
    const current = this.#busy ? this.#current : undefined;
    if (current !== undefined) {
      // Let the message in hand finish (its ask gets its real answer) but never wait forever.
      const finished = await settleWithin(current, this.#env.stopTimeoutMs);
      if (!finished) this.#currentReply?.reject(error);
    }
    await this.#finishIncarnation();
    return true;
  }

  // ---- SupervisedChild ------------------------------------------------------------------------

  start(info: StartInfo): Promise<void> {
    return this.#enqueue(() => this.#start(info));
  }

  async #start(info: StartInfo): Promise<void> {
    if (this.#final || this.#state !== IDLE) return;
    const incarnation = ++this.#incarnation;
    const epoch = ++this.#epoch;
    this.#exitRequested = false;
    this.#linkedFailure = undefined;
    this.#state = STARTING;
    const controller = new AbortController();
    this.#controller = controller;
    const ctx = this.#makeContext(controller.signal, epoch);
    this.#ctx = ctx;
    try {
      const instance = this.#spec.factory();
      this.#instance = instance;
      if (instance.preStart !== undefined) {
        // Unbounded (a model load may take long) until a halt or stop aborts ctx.signal: from then
        // on it gets stopTimeoutMs, like an in-flight message, so a hung preStart cannot wedge
        // the halt or stop (nor the supervisor and shutdown waiting on it).
        if (!await this.#awaitHook(instance.preStart(ctx), controller.signal)) {
          const timedOut = new HookTimeoutError(this.name, "preStart", this.#env.stopTimeoutMs);
          this.#hookFailed("preStart", timedOut);
          throw timedOut; // only a halt or stop aborts ctx.signal while starting: see below
        }
      }
      // Halted while preStart ran: this incarnation must not take messages (the halt would end
      // it mid-message). A stop lets it start and ends it from its own queued step instead.
      if (controller.signal.aborted && !this.#final) throw controller.signal.reason;
      // Children it spawned gave up meanwhile (see childExited): a failed preStart.
      // (Set by childExited during the await: the cast undoes narrowing from the reset above.)
      const linkedFailure = this.#linkedFailure as { reason: unknown } | undefined;
      if (linkedFailure !== undefined && epoch === this.#epoch) throw linkedFailure.reason;
    } catch (reason) {
      if (epoch !== this.#epoch) return;
      if (controller.signal.aborted) {
        // Halted or stopped while starting (nothing else aborts ctx.signal before the incarnation
        // runs): a preStart failing now is the halt's or stop's doing, no crash, and the queued
        // halt or stop reports it. Messages queued for this incarnation end with it.
        const ended = controller.signal.reason;
        this.#epoch++;
        this.#state = IDLE;
        this.#mailbox.clear((_m, r) => r?.reject(ended));
        await this.#finishIncarnation();
        // A first start cut by a halt is no failure of the spawn: the child keeps its place and
        // whoever halted it (a group restart, its supervisor's restart) starts it again.
        if (info.initial && this.#final) {
          throw new ActorStoppedError(this.name, "stopped while starting");
        }
        return;
      }
      this.#epoch++;
      this.#state = IDLE;
      const crashed = new ActorCrashedError(this.name, reason);
      controller.abort(crashed);
      // Messages queued for this incarnation end with it, as after a crash in receive.
      const discarded = this.#mailbox.clear((_m, r) => r?.reject(crashed));
      this.#env.emit({
        type: "crashed",
        kind: "actor",
        name: this.name,
        time: Date.now(),
        reason,
        discarded,
      });
      await this.#finishIncarnation();
      if (info.initial) throw crashed;
      this.#parent.childExited(this, incarnation, reason, true);
      return;
    }
    if (epoch !== this.#epoch) return;
    this.#state = RUNNING;
    if (incarnation === 1) {
      this.#env.emit({ type: "started", kind: "actor", name: this.name, time: Date.now() });
    } else {
      this.#restarts++;
      this.#env.emit({
        type: "restarted",
        kind: "actor",
        name: this.name,
        time: Date.now(),
        incarnation,
        delayMs: info.delayMs,
      });
    }
    if (this.#exitRequested) this.#exitNormally();
    else if (this.#mailbox.size > 0 && !this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#drainBound);
    }
  }

  halt(reason: StopReason): Promise<void> {
    const error = new ActorStoppedError(this.name, reason);
    // A start in progress is cut short now, as a stop does: the halt is queued behind it, and a
    // preStart that ends on ctx.signal (a model load) would otherwise never end, nor would the
    // supervisor restart or shutdown waiting on this halt. Aborting also starts its stopTimeoutMs.
    const cutsStart = this.#state === STARTING && this.#controller?.signal.aborted === false;
    if (cutsStart) this.#controller!.abort(error);
    return this.#enqueue(async () => {
      const ended = await this.#endFromOutside(error);
      // Or the start ended without running (see #start); a stop queued meanwhile reports it instead.
      if (ended || (cutsStart && !this.#final)) this.#emitStopped(reason);
    });
  }

  /** The `stopped` event of an incarnation ended by a halt or stop. */
  #emitStopped(reason: StopReason): void {
    this.#env.emit({ type: "stopped", kind: "actor", name: this.name, time: Date.now(), reason });
  }

  stop(reason: StopReason): Promise<void> {
    const error = new ActorStoppedError(this.name, reason);
    if (!this.#final) {
      this.#final = true;
      // Close at once (not after queued lifecycle work) so no new message slips in, and abort
      // the running incarnation so a signal-aware preStart or handler can finish quickly.
      this.#mailbox.close(error);
      this.#controller?.abort(error);
    }
    const stopped = this.#enqueue(async () => {
      if (this.#state === STOPPED) return;
      await this.#endFromOutside(error);
      this.#mailbox.clear((_m, r) => r?.reject(error));
      this.#state = STOPPED;
      // The name is free before `stopped` goes out: a listener that replaces the actor under its
      // name (a watchdog) got NameTakenError when the event came first.
      this.#env.registry.unregister(this.name, this.ref);
      this.#emitStopped(reason);
    });
    // A crash or normal exit that came after this call but before the step above ran (a handler
    // that stopped itself and then threw, a `crashed` listener calling system.stop) queued its
    // postStop and linked-children stop behind that step: the stop (and a shutdown waiting on
    // it) is not over until those ran too.
    return stopped.then(() => this.#ops);
  }

  tree(): ActorTreeNode {
    const state = this.#state;
    return {
      kind: "actor",
      name: this.name,
      status: state === RUNNING
        ? "running"
        : state === STARTING
        ? "starting"
        : state === STOPPED
        ? "stopped"
        : this.#incarnation === 0
        ? "new"
        : "down",
      restart: this.restart,
      restarts: this.#restarts,
      mailbox: {
        size: this.#mailbox.size,
        capacity: this.#mailbox.capacity,
        overflow: this.#mailbox.overflow,
        waiting: this.#mailbox.waiting,
        dropped: this.#mailbox.dropped,
      },
      children: this.#linked?.childTrees() ?? [],
    };
  }

  // ---- linked children (ctx.spawn) ------------------------------------------------------------

  owns(name: string): boolean {
    return this.#linked?.owns(name) ?? false;
  }

  stopDescendant(name: string): Promise<boolean> {
    return this.#linked?.stopDescendant(name) ?? Promise.resolve(false);
  }

  childExited(
    child: SupervisedChild,
    _incarnation: number,
    reason: unknown,
    crashed: boolean,
  ): void {
    // Only the linked-children supervisor reports here, and only when it gave up.
    if (child !== this.#linked || !crashed) return;
    if (this.#state === STARTING) {
      // preStart spawned them and is still running: the incarnation fails when it returns.
      this.#linkedFailure ??= { reason };
      return;
    }
    if (this.#state !== RUNNING) return;
    // The message in hand belongs to the crashing incarnation: its ask fails now, and the
    // handler's eventual result is ignored (its epoch is stale after #crash). #crash waits for
    // the handler itself (bounded) before postStop and the restart; #busy stays set until then.
    if (this.#busy) this.#crash(reason, this.#currentReply, this.#current);
    else this.#crash(reason, undefined);
  }

  #spawnLinked<C>(spec: ChildSpec<C>, epoch: number): Promise<ActorRef<C>> {
    if (epoch !== this.#epoch || this.#final) {
      return Promise.reject(new ActorStoppedError(this.name, "incarnation ended"));
    }
    if (this.#linked === undefined) {
      this.#linked = new SupervisorCore(
        this.#env,
        {
          name: `${this.name}#linked`,
          strategy: "one_for_one",
        },
        this,
        { registered: false, defaultRestart: "temporary", announce: false },
      );
      this.#linked.startEmpty();
    }
    return this.#linked.spawn(spec);
  }

  #makeContext(signal: AbortSignal, epoch: number): ActorContext<M> {
    const system: ActorSystem = this.#env.system;
    return {
      self: this.ref,
      name: this.name,
      system,
      signal,
      spawn: <C>(spec: ChildSpec<C>) => this.#spawnLinked(spec, epoch),
      stop: () => {
        if (epoch !== this.#epoch) return;
        this.#exitRequested = true;
        // No message in hand (called from a timer or stream callback): nothing would otherwise
        // get to the request until the next message, which the ending incarnation would handle.
        // A drain ends it first. In a handler or preStart, its end is checked when it returns.
        if (this.#state === RUNNING && !this.#busy && !this.#scheduled) {
          this.#scheduled = true;
          queueMicrotask(this.#drainBound);
        }
      },
    };
  }

  #enqueue(op: () => Promise<void>): Promise<void> {
    const next = this.#ops.then(op);
    this.#ops = next.then(undefined, () => {});
    return next;
  }
}
