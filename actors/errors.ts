/**
 * Typed errors of the actor runtime.
 *
 * Every failure a caller of an {@link ActorRef} can observe is one of these classes, each with a
 * stable `code`, so a log line, a test and a remote peer all name the same condition. They all
 * extend {@link ActorError}, itself a {@link VeriflowError}.
 *
 * @module
 */

import { VeriflowError } from "../protocols/errors.ts";

/** Base class of the actor runtime's errors; `actor` names the actor or supervisor involved. */
export class ActorError extends VeriflowError {
  /** Name of the actor (or supervisor, or system) the error is about. */
  readonly actor: string;

  /**
   * Creates the error.
   *
   * @param code Stable machine-readable code.
   * @param actor Name of the actor concerned.
   * @param message Human-readable explanation.
   * @param options Standard error options (`cause`).
   */
  constructor(code: string, actor: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.actor = actor;
  }
}

/** An `ask` got no answer within its timeout. Code `ask_timeout`. */
export class AskTimeoutError extends ActorError {
  /** The timeout that expired, in milliseconds. */
  readonly timeoutMs: number;

  /**
   * Creates the error.
   *
   * @param actor Name of the asked actor.
   * @param timeoutMs The timeout that expired.
   */
  constructor(actor: string, timeoutMs: number) {
    super("ask_timeout", actor, `ask to "${actor}" timed out after ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/** An `ask` was cancelled by its caller's `AbortSignal`. Code `ask_aborted`; `cause` is the signal's reason. */
export class AskAbortedError extends ActorError {
  /**
   * Creates the error.
   *
   * @param actor Name of the asked actor.
   * @param reason The abort signal's reason.
   */
  constructor(actor: string, reason: unknown) {
    super("ask_aborted", actor, `ask to "${actor}" was aborted`, { cause: reason });
  }
}

/**
 * The actor crashed while the message was being handled or was waiting in its mailbox.
 * Code `actor_crashed`; `reason` (also `cause`) is what the actor threw.
 */
export class ActorCrashedError extends ActorError {
  /** What the actor threw (or the rejection reason of its handler's promise). */
  readonly reason: unknown;

  /**
   * Creates the error.
   *
   * @param actor Name of the crashed actor.
   * @param reason What it threw.
   */
  constructor(actor: string, reason: unknown) {
    super("actor_crashed", actor, `actor "${actor}" crashed: ${describeReason(reason)}`, {
      cause: reason,
    });
    this.reason = reason;
  }
}

/**
 * The actor is stopped (or was stopped, or restarted because of a sibling, before it handled
 * the message). Code `actor_stopped`.
 */
export class ActorStoppedError extends ActorError {
  /**
   * Creates the error.
   *
   * @param actor Name of the stopped actor (or system).
   * @param detail Why it stopped, for the message (`"shutdown"`, `"restart"`, ...).
   */
  constructor(actor: string, detail = "stopped") {
    super("actor_stopped", actor, `actor "${actor}" is stopped (${detail})`);
  }
}

/**
 * A mailbox with the `fail` (or, for asks, `drop`) overflow policy was full, or a `backpressure`
 * one had `MAX_WAITING_SENDERS` senders waiting already. Code `mailbox_full`.
 */
export class MailboxFullError extends ActorError {
  /** The mailbox capacity that was reached. */
  readonly capacity: number;

  /**
   * Creates the error.
   *
   * @param actor Name of the actor whose mailbox is full.
   * @param capacity Its capacity.
   */
  constructor(actor: string, capacity: number) {
    super("mailbox_full", actor, `mailbox of "${actor}" is full (capacity ${capacity})`);
    this.capacity = capacity;
  }
}

/**
 * A supervisor exceeded its restart intensity and gave up; this is the reason its parent sees.
 * Code `escalated`; `reason` is the crash that tipped it over.
 */
export class EscalatedError extends ActorError {
  /** The last child failure the supervisor could not absorb. */
  readonly reason: unknown;

  /**
   * Creates the error.
   *
   * @param supervisor Name of the supervisor that gave up.
   * @param reason The failure that exceeded its intensity.
   */
  constructor(supervisor: string, reason: unknown) {
    super(
      "escalated",
      supervisor,
      `supervisor "${supervisor}" exceeded its restart intensity: ${describeReason(reason)}`,
      { cause: reason },
    );
    this.reason = reason;
  }
}

/**
 * A lifecycle hook (`preStart` or `postStop`) did not finish within `stopTimeoutMs` while its
 * actor was stopping, and was abandoned. Code `hook_timeout`; carried by `hook_failed` events.
 */
export class HookTimeoutError extends ActorError {
  /** The hook that was abandoned. */
  readonly hook: "preStart" | "postStop";
  /** How long it was given, in milliseconds. */
  readonly timeoutMs: number;

  /**
   * Creates the error.
   *
   * @param actor Name of the actor whose hook hung.
   * @param hook Which hook.
   * @param timeoutMs How long it was given.
   */
  constructor(actor: string, hook: "preStart" | "postStop", timeoutMs: number) {
    super(
      "hook_timeout",
      actor,
      `${hook} of "${actor}" did not finish within ${timeoutMs} ms and was abandoned`,
    );
    this.hook = hook;
    this.timeoutMs = timeoutMs;
  }
}

/** A name is already registered in this actor system. Code `name_taken`. */
export class NameTakenError extends ActorError {
  /**
   * Creates the error.
   *
   * @param name The name that is already in use.
   */
  constructor(name: string) {
    super("name_taken", name, `the name "${name}" is already registered`);
  }
}

/** A name is not acceptable (empty, or not a string). Code `invalid_name`. */
export class InvalidNameError extends ActorError {
  /**
   * Creates the error.
   *
   * @param name The rejected name.
   */
  constructor(name: unknown) {
    super("invalid_name", String(name), `invalid actor name: ${JSON.stringify(name)}`);
  }
}

/** Renders a crash reason for an error message without throwing on odd values. */
export function describeReason(reason: unknown): string {
  if (reason instanceof Error) return `${reason.name}: ${reason.message}`;
  try {
    return typeof reason === "string" ? reason : JSON.stringify(reason) ?? String(reason);
  } catch {
    return String(reason);
  }
}
