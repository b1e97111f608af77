/**
 * What a stop signal (Ctrl-C's SIGINT, SIGTERM, or SIGHUP) means to a running `cli.ts start`: the
 * first asks for a graceful stop (start-up interrupted, or the node drained), a second one forces
 * the exit. A copy of the first that arrives within {@link DUPLICATE_SIGNAL_MS} is not a second
 * one: `deno task` and `npx` forward the terminal's SIGINT to the node, which also gets it from
 * the terminal itself, so one Ctrl-C routinely arrives twice.
 *
 * @module
 */

/**
 * Signals closer together than this are one. A forwarded copy arrives within milliseconds of
 * the original; a person pressing Ctrl-C again takes longer than this to mean it.
 */
export const DUPLICATE_SIGNAL_MS = 300;

/** What to do about a signal: nothing (a copy), stop gracefully, or exit now. */
export type StopAction = "ignore" | "stop" | "force";

/** Reads successive stop signals (see the module doc). */
export class StopSignals {
  #now: () => number;
  #lastAt: number | undefined;
  #count = 0;

  /**
   * Create it.
   *
   * @param now A monotonic clock in milliseconds (`performance.now` in the CLI).
   */
  constructor(now: () => number) {
    this.#now = now;
  }

  /** Whether a graceful stop was asked for. */
  get stopping(): boolean {
    return this.#count > 0;
  }

  /** What the signal arriving now means. */
  next(): StopAction {
    const now = this.#now();
    if (this.#lastAt !== undefined && now - this.#lastAt < DUPLICATE_SIGNAL_MS) return "ignore";
    this.#lastAt = now;
    this.#count++;
    return this.#count === 1 ? "stop" : "force";
  }
}

/**
 * The signals that ask a command to stop on `os`: SIGINT (Ctrl-C), SIGTERM (what systemd, Docker
 * and `kill` send) and SIGHUP (the terminal or SSH session the command runs in was closed: left
 * to its default, it killed a node at once, with no drain and no shutdown checkpoint, where
 * SIGTERM drains). On Windows, SIGINT and SIGBREAK (Ctrl-Break): Deno before 2.7.6 could listen
 * for nothing else there (registering SIGTERM threw), and its later SIGHUP there is the console
 * window closing, after which Windows ends the process within seconds whatever it listens for.
 */
export function stopSignalNames(os: typeof Deno.build.os = Deno.build.os): Deno.Signal[] {
  return os === "windows" ? ["SIGINT", "SIGBREAK"] : ["SIGINT", "SIGTERM", "SIGHUP"];
}

/**
 * Call `listener` on each of the process's stop signals ({@link stopSignalNames}); returns a
 * function that stops listening. While a listener is registered, the signal no longer kills the
 * process: the command stops itself.
 */
export function listenForStopSignals(listener: () => void): () => void {
  const names = stopSignalNames();
  for (const name of names) Deno.addSignalListener(name, listener);
  return () => {
    for (const name of names) Deno.removeSignalListener(name, listener);
  };
}

/** Options of {@link HeldStopSignals}. */
export interface HeldStopSignalsOptions {
  /** A monotonic clock in milliseconds (`performance.now` in the CLI). */
  now: () => number;
  /** A second stop signal before anyone took the held one over: the command is to exit now. */
  onForce: () => void;
  /** Registers the process's listener (default {@link listenForStopSignals}). */
  listen?: (listener: () => void) => () => void;
}

/**
 * Stop signals heard before the code that acts on them has loaded. `cli.ts start` listens from
 * its first instant, while it loads the node's modules and reads its configuration (about a
 * second), and hands what it heard to the listener its life cycle registers later
 * ({@link HeldStopSignals.onStopSignal}). Unheard, a Ctrl-C in that second killed the process
 * without a word, and where the process had inherited SIGINT as ignored (started with `&` from a
 * script, which then sends `kill -INT`) it was lost: the node came up and ran. A second signal
 * before the hand-over exits at once ({@link HeldStopSignalsOptions.onForce}), as a second
 * Ctrl-C during start-up does.
 */
export class HeldStopSignals {
  #signals: StopSignals;
  #onForce: () => void;
  #stopListening: () => void;
  #listener: (() => void) | undefined;
  #held = false;

  /**
   * Start listening.
   *
   * @param options The clock, what a second signal does, how to listen.
   */
  constructor(options: HeldStopSignalsOptions) {
    this.#signals = new StopSignals(options.now);
    this.#onForce = options.onForce;
    this.#stopListening = (options.listen ?? listenForStopSignals)(() => this.#heard());
  }

  /** Whether a stop signal was heard that no listener has taken over yet. */
  get held(): boolean {
    return this.#held;
  }

  /**
   * An `onStopSignal` for the command's own life cycle: `listener` is called at once for a
   * signal heard so far, then on each signal until the returned function is called.
   */
  readonly onStopSignal = (listener: () => void): () => void => {
    this.#listener = listener;
    if (this.#held) {
      this.#held = false;
      listener();
    }
    return () => {
      if (this.#listener === listener) this.#listener = undefined;
    };
  };

  /** Stop listening to the process's signals. */
  close(): void {
    this.#listener = undefined;
    this.#stopListening();
  }

  #heard(): void {
    if (this.#listener !== undefined) return this.#listener();
    const action = this.#signals.next();
    if (action === "stop") this.#held = true;
    else if (action === "force") this.#onForce();
  }
}
