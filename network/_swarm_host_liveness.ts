/**
 * Whether the swarm host, once up, still answers: a ping every third of the hang timeout, and a
 * host whose ping went unanswered for that long, over enough of this node's own checks, killed
 * (its exit reports the swarm down and restarts it). Any line on the host's stdout counts as an
 * answer ({@link SwarmHostLiveness.heardAt}).
 *
 * Owned and used by `swarm_host.ts` (`SwarmHost`) only, one per `SwarmHost` across the host's
 * restarts. Not part of the public API.
 *
 * @module
 */
import type { SwarmHostOptions } from "./swarm_host.ts";

/**
 * How long a ping to a host that is up may go unanswered (it answers at once) before the host
 * is taken for hung, killed and restarted. A stuck event loop used to leave the node with a
 * swarm that delivered nothing, reported up, for good.
 */
const HANG_TIMEOUT_MS = 30_000;
/**
 * The liveness checks per hang timeout (one every third of it), and how many of them a ping
 * must have gone unanswered through before the host is taken for hung. Counted in checks as
 * well as time: after the node's own event loop stalled (a long synchronous step, a process
 * stopped and continued, a starved machine), the host's answer waits in the pipe until the
 * node reads it, and time alone took a host that had answered every ping for hung (review s54).
 */
const LIVENESS_CHECKS = 3;

/** The liveness check of the running swarm host. */
export class SwarmHostLiveness {
  readonly #options: Pick<SwarmHostOptions, "hangTimeoutMs" | "log">;
  readonly #send: (message: Record<string, unknown>) => Promise<void>;
  /** Asks the running host, once it is up, whether it still answers. */
  #livenessTimer: ReturnType<typeof setInterval> | undefined;
  /** When the running host last wrote a line on its stdout (`performance.now()`). */
  heardAt = 0;

  /**
   * @param options The host's options: `hangTimeoutMs` and `log`.
   * @param send Writes a message to the running host's stdin.
   */
  constructor(
    options: Pick<SwarmHostOptions, "hangTimeoutMs" | "log">,
    send: (message: Record<string, unknown>) => Promise<void>,
  ) {
    this.#options = options;
    this.#send = send;
  }

  /** Ask the running host, now up, whether it still answers; kill it when it does not. */
  watch(child: Deno.ChildProcess): void {
    clearInterval(this.#livenessTimer);
    const hangMs = this.#options.hangTimeoutMs ?? HANG_TIMEOUT_MS;
    this.heardAt = performance.now();
    /** When the ping not answered yet was sent (undefined: none is outstanding). */
    let askedAt: number | undefined;
    /** Checks that found that ping still unanswered. */
    let missed = 0;
    this.#livenessTimer = setInterval(() => {
      const now = performance.now();
      if (askedAt !== undefined && this.heardAt >= askedAt) askedAt = undefined; // answered
      if (askedAt === undefined) {
        askedAt = now;
        missed = 0;
        this.#send({ op: "ping" }).catch(() => {}); // a write that fails: the host died
        return;
      }
      // Unanswered: hung once it has been so for hangMs, over enough of this node's own checks
      // for an answer that came while this node was busy to have been read (LIVENESS_CHECKS).
      if (++missed < LIVENESS_CHECKS || now - askedAt < hangMs) return;
      clearInterval(this.#livenessTimer);
      this.#options.log?.(`the swarm host did not answer in ${hangMs / 1000} s; stopping it`);
      try {
        child.kill("SIGKILL"); // its exit reports the swarm down and restarts it
      } catch {
        // already gone
      }
    }, hangMs / LIVENESS_CHECKS);
  }

  /** Stop asking (the host exited, or is being closed). */
  stop(): void {
    clearInterval(this.#livenessTimer);
  }
}
