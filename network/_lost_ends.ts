/**
 * The lost-end store of a forwarding node's `NetworkInferencePort`: the forwarded jobs whose
 * every token the client got and whose worker's `end` event (its receipt) was lost with the
 * connection ({@link LostEnd}), remembered within bounds ({@link MAX_LOST_ENDS},
 * {@link MAX_LOST_ENDS_PER_WORKER}, {@link MAX_LOST_END_BYTES}) for the challenge window, and the
 * asks for their receipts (`inference.get_receipt`) on a later connection, dialling a worker by
 * its key when it does not come back by itself (`reach`, {@link MAX_LOST_END_DIALS} at once). A
 * receipt that comes is handed back to the port, which checks it as it would have been with the
 * end event and hands it to its validator with the assignment (`docs/PROTOCOL.md`, "Failover";
 * reviews s59, s60). Given a folder, it keeps them on disk too (`_lost_end_files.ts`) and asks
 * for those it finds there when it starts: in memory only, a router that restarted forgot every
 * receipt it still had to ask for, and those honest workers went unpaid (review s64). Used only
 * by `network_inference_port.ts`, which re-exports its constants; moved out of it (review s60),
 * not rewritten.
 *
 * @module
 */
import type { ActorRef } from "../actors/actor_ref.ts";
import type { Connection } from "../protocols/connection.ts";
import { jobBytes, jobId, type TextJob } from "../protocols/job.ts";
import type { JobSummary } from "../inference/inference_port.ts";
import type { JobAssignment } from "../protocols/assignment.ts";
import { toHex } from "../protocols/hash.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import {
  INFERENCE_PROTOCOL,
  ReceiptRequestMessage,
  UNKNOWN_JOB,
} from "../protocols/inference_messages.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";
import type { NetworkMessage, ReachAnswer } from "./network_actor.ts";
import type { RelayedOutput } from "./failover.ts";
import { LostEndFiles, type StoredLostEnd } from "./_lost_end_files.ts";
import type { PromptTokenSeen } from "./_prompt_token_claim.ts";

/**
 * Most forwarded jobs a node remembers at once whose every token its client got and whose
 * worker's `end` event (its receipt) was lost with the connection ({@link LostEnd}). When they
 * are all taken, a new one takes the place of the oldest job of the worker that holds the most,
 * if that worker holds more than the new one's would; else it is not remembered, and its worker
 * is paid nowhere, as before. So a worker with few lost ends keeps them: 8 keys that each drop
 * 8 ends (every slot, before review s60) take none from a ninth key's first 7, and only 64 keys
 * with one each (or more) leave a newcomer no room.
 */
export const MAX_LOST_ENDS = 64;
/** Most of them for one worker key, so one worker that drops its ends does not fill the rest. */
export const MAX_LOST_ENDS_PER_WORKER = 8;
/**
 * Most bytes they hold together (each its job, kept to announce with the receipt, and the text
 * its client got, to check the receipt against): 4 MiB, nine of the largest jobs.
 */
export const MAX_LOST_END_BYTES = 4 * 1024 * 1024;
/**
 * How long one is remembered: the challenge window. The worker's own announcement put its
 * receipt in the ledgers, unassigned, about when it was signed; an assignment that comes after
 * the window closed there pays nothing.
 */
export const LOST_END_KEEP_MS = DEFAULT_ECONOMICS.challengeWindowMs;
/**
 * The first ask for its receipt comes this long after the loss (a worker dialling back in
 * needs a moment), and each next one twice as long after, at most {@link LOST_END_MAX_ASK_MS}:
 * about 25 asks a job over the window, a lookup each and a request when the worker is connected.
 */
export const LOST_END_FIRST_ASK_MS = 1_000;
/** See {@link LOST_END_FIRST_ASK_MS}. */
export const LOST_END_MAX_ASK_MS = 30_000;
/**
 * A worker whose connection this many asks in a row found closed is dialled by its key (the
 * NetworkActor's `reach`, Hyperswarm's DHT): it may never dial this node back (it reconnected
 * elsewhere, or only this node can dial it), and before review s60 it was then never asked. The
 * first ask (1 s after the loss) leaves it its moment to dial back itself.
 */
export const LOST_END_DIAL_AFTER_ASKS = 2;
/**
 * How long one dial of a lost end's worker lasts (the swarm reconnects within it), and the
 * least time between two: the asks of one worker share one dial, released once none of its
 * lost ends is left. About 10 dials over the challenge window, against its 25 asks; nothing is
 * dialled without a swarm (`reach` does nothing there).
 */
export const LOST_END_DIAL_MS = 60_000;
/**
 * Most workers dialled at once for lost ends: a quarter of the NetworkActor's bound on dials
 * (`MAX_DIALS`, `dial_by_key.ts`), so that jobs dropped by many keys never take the dials its
 * validator needs to fetch a challenged worker's proof. Past it a worker is only asked if it is
 * connected, and dialled at a later ask.
 */
export const MAX_LOST_END_DIALS = 8;
/** Who holds this node's dials of lost ends' workers (`reach`, `release_reach`). */
const LOST_END_DIAL_HOLDER = "lost-end";

/**
 * The system's timers, each unref'd: an ask for a lost end's receipt, due within the challenge
 * window, must not keep a node's process alive after it stopped.
 */
const BACKGROUND_TIMERS: ConnectionTimers = {
  now: () => SYSTEM_TIMERS.now(),
  setTimeout: (callback, ms) => {
    const id = SYSTEM_TIMERS.setTimeout(callback, ms) as number;
    Deno.unrefTimer(id);
    return id;
  },
  clearTimeout: (handle) => SYSTEM_TIMERS.clearTimeout(handle),
};

/**
 * A forwarded job whose every token its client got and whose worker's `end` event, with its
 * receipt, was lost with the worker's connection: the worker did all the work and is paid only
 * through this node's assignment, so this node asks it for the receipt (`inference.get_receipt`)
 * on a later connection and, if it is for exactly what the client got, signs nothing new but
 * releases the assignment with it as for a normal end (`docs/PROTOCOL.md`, "Failover").
 */
interface LostEnd {
  job: TextJob;
  jobId: string;
  worker: Uint8Array;
  /** What the client got: the receipt must be for exactly these tokens and this text. */
  relayed: RelayedOutput;
  /** The client's summary (its `done`), the receipt checked as if it had come with it. */
  summary: JobSummary;
  assignment: JobAssignment;
  /**
   * What the port saw of the worker's `start`, its receipt's prompt count checked against it;
   * absent for one read back from a version-1 file.
   */
  seen?: PromptTokenSeen;
  bytes: number;
  /** Past this (on the port's clock) it is forgotten. */
  until: number;
  /** The same time in unix ms: what is kept on disk, where the port's clock means nothing. */
  expiresAt: number;
  /** The wait before the next ask. */
  waitMs: number;
  /** The next ask's timer. */
  timer?: unknown;
  /** Asks in a row that found the worker's connection closed ({@link LOST_END_DIAL_AFTER_ASKS}). */
  unreached: number;
}

/** What a {@link LostEnds} store works with. */
export interface LostEndsOptions {
  /** The node's NetworkActor: `connection_to` a lost end's worker, `reach` and `release_reach`. */
  network: ActorRef<NetworkMessage>;
  /** The clock of the asks: the worker ports' (tests pass a fake one; default the system's). */
  timers?: ConnectionTimers;
  /** How long a lookup in the network actor may take. */
  lookupTimeoutMs: number;
  /**
   * The folder to keep the lost ends in as well (`<dataDir>/lost-ends`, `LOST_ENDS_DIR`), read
   * back when the store starts. Absent: memory only, and a restart forgets them.
   */
  dir?: string;
  /** Unix ms now: when a kept lost end expires across a restart (default `Date.now`). */
  wallClock?: () => number;
  /**
   * Check a lost end's receipt that came (in `summary`) as it would have been with the end event,
   * and hand it on: the port's own check, which also keeps a worker whose receipt fails off the
   * model. `seen`: what {@link LostEnds.remember} was given of the worker's `start` (undefined for
   * a lost end kept on disk before it was).
   */
  checked: (
    summary: JobSummary,
    job: TextJob,
    worker: Uint8Array,
    relayed: RelayedOutput,
    assignment: JobAssignment,
    seen: PromptTokenSeen | undefined,
  ) => unknown;
}

/** The lost ends of one forwarding port (see the module docs). */
export class LostEnds {
  readonly #network: ActorRef<NetworkMessage>;
  readonly #lookupTimeoutMs: number;
  readonly #checked: LostEndsOptions["checked"];
  /** The clock of the asks for lost ends: the worker ports' (tests pass a fake one). */
  readonly #timers: ConnectionTimers;
  /** Jobs whose worker's end event was lost after the last token, by job id ({@link LostEnd}). */
  readonly #lostEnds = new Map<string, LostEnd>();
  #lostEndBytes = 0;
  /**
   * Workers of lost ends dialled by key, by hex key: until when (the port's clock) no new dial is
   * asked for ({@link LOST_END_DIAL_MS}, {@link MAX_LOST_END_DIALS}).
   */
  readonly #lostEndDials = new Map<string, number>();
  /** Where they are kept on disk too (none: memory only). */
  readonly #files?: LostEndFiles;
  readonly #wallClock: () => number;
  /**
   * Settles once the lost ends kept on disk are read back and their asks armed (at once without
   * a folder). A folder that cannot be read leaves the store as it is: memory only until then.
   */
  readonly loaded: Promise<void>;

  /**
   * Create the store, empty, or with the lost ends kept in its folder, once {@link loaded}.
   * @param options What it works with ({@link LostEndsOptions}).
   */
  constructor(options: LostEndsOptions) {
    this.#network = options.network;
    this.#lookupTimeoutMs = options.lookupTimeoutMs;
    this.#checked = options.checked;
    this.#timers = options.timers ?? BACKGROUND_TIMERS;
    this.#wallClock = options.wallClock ?? Date.now;
    if (options.dir !== undefined) this.#files = new LostEndFiles(options.dir);
    this.loaded = this.#load().catch(() => {});
  }

  /**
   * Read back the lost ends kept on disk (a restart): each not expired is remembered again within
   * the bounds, for what is left of its window, and asked for from its first wait.
   */
  async #load(): Promise<void> {
    if (this.#files === undefined) return;
    const wall = this.#wallClock();
    for (const stored of await this.#files.all(wall)) {
      if (this.#lostEnds.has(jobId(stored.job))) continue;
      const lost = this.#lostEnd(stored, this.#timers.now() + stored.expiresAt - wall);
      if (this.#keep(lost)) this.#askLater(lost);
      else this.#files.remove(lost.jobId).catch(() => {});
    }
  }

  /**
   * Write nothing more to the folder: resolves once the lost ends kept there were read back and
   * every write and removal asked before has ended (`LostEndFiles.close`); lost ends remembered
   * after are kept in memory only, as without a folder. The port calls it as its node stops,
   * with its assigned-jobs file's close. Idempotent; never rejects; at once without a folder.
   */
  async close(): Promise<void> {
    await this.loaded;
    await this.#files?.close();
  }

  /**
   * Remember a job whose end event was lost after its last token ({@link LostEnd}), within
   * the bounds ({@link MAX_LOST_ENDS}, {@link MAX_LOST_ENDS_PER_WORKER},
   * {@link MAX_LOST_END_BYTES}: when they are full, in place of the oldest job of the worker that
   * holds the most, if it holds more than this one's worker would; else it is not remembered,
   * and its worker is paid nowhere), and ask its worker for the receipt later. `seen`: what the
   * port saw of the worker's `start` (its count, the window it stated), kept with it (on disk too)
   * so the late receipt is checked as the end event's would have been (review s79 vlate F5: only
   * the count was kept, and the receipt was held to the prompt's bytes).
   */
  remember(
    job: TextJob,
    worker: Uint8Array,
    relayed: RelayedOutput,
    summary: JobSummary,
    assignment: JobAssignment,
    seen: PromptTokenSeen,
  ): void {
    const expiresAt = this.#wallClock() + LOST_END_KEEP_MS;
    const stored = { job, worker, relayed, summary, assignment, expiresAt, seen };
    const lost = this.#lostEnd(stored, this.#timers.now() + LOST_END_KEEP_MS);
    if (this.#lostEnds.has(lost.jobId) || !this.#keep(lost)) return;
    this.#files?.save(stored).catch(() => {}); // not written: kept in memory only, as before
    this.#askLater(lost);
  }

  /**
   * Whether the receipt of job `id` is still owed here (remembered, not yet answered, refused or
   * forgotten): the port refuses a retry of it meanwhile (`_assigned_jobs.ts`).
   */
  has(id: string): boolean {
    return this.#lostEnds.has(id);
  }

  /** A lost end of `stored`, forgotten past `until` on the port's clock, not asked yet. */
  #lostEnd(stored: StoredLostEnd, until: number): LostEnd {
    const { job, relayed } = stored;
    return {
      ...stored,
      jobId: jobId(job), // what the worker's start named (checked), and its receipt must
      bytes: jobBytes(job) + 3 * (relayed.output?.length ?? 0), // UTF-8: 3 bytes a unit
      until,
      waitMs: LOST_END_FIRST_ASK_MS,
      unreached: 0,
    };
  }

  /**
   * Take `lost` into the store if the bounds let it in (in place of the oldest of the worker that
   * holds the most, when full): whether it was.
   */
  #keep(lost: LostEnd): boolean {
    const ofWorker = this.#lostEndsOf(toHex(lost.worker)).length;
    if (ofWorker >= MAX_LOST_ENDS_PER_WORKER || lost.bytes > MAX_LOST_END_BYTES) return false;
    while (
      this.#lostEnds.size >= MAX_LOST_ENDS ||
      this.#lostEndBytes + lost.bytes > MAX_LOST_END_BYTES
    ) {
      const place = this.#lostEndToYield(ofWorker);
      if (place === undefined) return false; // every worker holds as few as this one: none yields
      this.#forgetLostEnd(place);
    }
    this.#lostEnds.set(lost.jobId, lost);
    this.#lostEndBytes += lost.bytes;
    return true;
  }

  /** The lost ends of worker `key` (hex), oldest first. */
  #lostEndsOf(key: string): LostEnd[] {
    return [...this.#lostEnds.values()].filter((l) => toHex(l.worker) === key);
  }

  /**
   * The lost end that yields its place to a new one whose worker holds `held` now: the oldest of
   * the worker that holds the most (of those, the one with the oldest), if it holds more than
   * `held + 1`, what the new one's worker would then hold; else none. Fewer lost ends a worker
   * has, the surer they are kept: keys that drop their ends fill the store only against each
   * other, and an honest worker's one is taken only when every key holds one.
   */
  #lostEndToYield(held: number): LostEnd | undefined {
    const byWorker = new Map<string, LostEnd[]>();
    for (const lost of this.#lostEnds.values()) { // oldest first: so is each worker's list
      const key = toHex(lost.worker);
      byWorker.set(key, [...byWorker.get(key) ?? [], lost]);
    }
    let most: LostEnd[] = [];
    for (const ends of byWorker.values()) if (ends.length > most.length) most = ends;
    return most.length > held + 1 ? most[0] : undefined;
  }

  /** Ask for `lost`'s receipt after its wait, unless that would be past its time: forget it. */
  #askLater(lost: LostEnd): void {
    if (this.#timers.now() + lost.waitMs > lost.until) {
      this.#forgetLostEnd(lost);
      return;
    }
    lost.timer = this.#timers.setTimeout(() => void this.#askForReceipt(lost), lost.waitMs);
    lost.waitMs = Math.min(2 * lost.waitMs, LOST_END_MAX_ASK_MS);
  }

  /** Forget `lost`: its ask is not made, and its worker's dial ends with its last lost end. */
  #forgetLostEnd(lost: LostEnd): void {
    if (this.#lostEnds.get(lost.jobId) !== lost) return;
    this.#lostEnds.delete(lost.jobId);
    this.#lostEndBytes -= lost.bytes;
    this.#timers.clearTimeout(lost.timer);
    this.#files?.remove(lost.jobId).catch(() => {});
    this.#releaseDial(lost.worker);
  }

  /** End this node's dial of `worker` (if any) once none of its lost ends is left. */
  #releaseDial(worker: Uint8Array): void {
    const key = toHex(worker);
    if (!this.#lostEndDials.has(key) || this.#lostEndsOf(key).length > 0) return;
    this.#lostEndDials.delete(key);
    this.#network.tell({ type: "release_reach", key: worker, holder: LOST_END_DIAL_HOLDER })
      .catch(() => {});
  }

  /**
   * Have the NetworkActor dial `worker` by its key for {@link LOST_END_DIAL_MS}, unless a dial of
   * it asked for here has not run its time yet, or {@link MAX_LOST_END_DIALS} others have not.
   * A dial refused by the NetworkActor's own bound (`"full"`), or not answered, is asked for
   * again at the next ask; one with nothing to dial (no swarm, or connected now) is not before
   * its time.
   */
  async #dial(worker: Uint8Array): Promise<void> {
    const key = toHex(worker);
    const now = this.#timers.now();
    // A worker's entry stays until its last lost end is forgotten (it holds the dial's release).
    const running = [...this.#lostEndDials.values()].filter((until) => until > now).length;
    const until = this.#lostEndDials.get(key);
    if (until !== undefined && until > now) return;
    if (running >= MAX_LOST_END_DIALS) return;
    this.#lostEndDials.set(key, now + LOST_END_DIAL_MS); // before the await: asks run at once
    const answer = await this.#network.ask<ReachAnswer>(
      { type: "reach", key: worker, forMs: LOST_END_DIAL_MS, holder: LOST_END_DIAL_HOLDER },
      { timeoutMs: this.#lookupTimeoutMs },
    ).catch(() => undefined);
    if (this.#lostEndsOf(key).length === 0) {
      this.#releaseDial(worker); // its last lost end went meanwhile (answered, or yielded)
    } else if (answer === "full" || answer === undefined) this.#lostEndDials.set(key, now);
  }

  /**
   * Ask `lost`'s worker, if it is connected again, for the receipt whose end event was lost.
   * Not connected at {@link LOST_END_DIAL_AFTER_ASKS} asks in a row: dialled by its key
   * ({@link #dial}), and the connection that comes up asked at the next. None yet (not
   * connected, no answer, or none kept: its prover may still be signing): asked again later. One
   * that answers `unknown_job` has no trace of the job (restarted, and never signed it: review
   * s79 crash F4): it is forgotten at once, so its client's retry runs rather than be refused as
   * owed for the rest of the window. A worker that says so falsely only forgoes its own pay.
   * One that comes is checked as it would have been with the end event ({@link #checked}:
   * signer, job, the text and the number of tokens the client got) and, if it holds, goes to the
   * validator with the assignment; else it is refused, nothing is announced, the worker is kept
   * off the model as for any receipt that fails, and the job forgotten.
   */
  async #askForReceipt(lost: LostEnd): Promise<void> {
    if (this.#lostEnds.get(lost.jobId) !== lost) return;
    const connection = await this.#network.ask<Connection | undefined>(
      { type: "connection_to", key: lost.worker, protocol: INFERENCE_PROTOCOL.name },
      { timeoutMs: this.#lookupTimeoutMs },
    ).catch(() => undefined);
    if (this.#lostEnds.get(lost.jobId) !== lost) return; // yielded its place meanwhile
    const open = connection?.isClosed === false ? connection : undefined;
    lost.unreached = open === undefined ? lost.unreached + 1 : 0;
    if (lost.unreached >= LOST_END_DIAL_AFTER_ASKS) await this.#dial(lost.worker);
    const answer = open === undefined
      ? undefined
      : await open.request(ReceiptRequestMessage, { jobId: lost.jobId }).catch(() => undefined);
    if (this.#lostEnds.get(lost.jobId) !== lost) return; // yielded its place meanwhile
    if (answer?.receipt == null && answer?.reason === UNKNOWN_JOB) {
      this.#forgetLostEnd(lost); // never will: the retry runs
      return;
    }
    if (answer?.receipt == null) {
      this.#askLater(lost);
      return;
    }
    this.#forgetLostEnd(lost);
    const { error: _lost, ...summary } = lost.summary;
    this.#checked(
      { ...summary, finishReason: lost.relayed.lastToken!, receipt: answer.receipt },
      lost.job,
      lost.worker,
      lost.relayed,
      lost.assignment,
      lost.seen,
    );
  }
}
