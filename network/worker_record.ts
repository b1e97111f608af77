/**
 * A router's track record of its workers: the jobs each key ran to its end for this node, the
 * jobs it failed (dropped, stalled, broke its stream, sent what its receipt does not sign), and
 * the failures of each address group, so that keys made a moment ago on one host inherit that
 * host's record (review s76 wirepeer F1–F3: keys are free, and four fresh keys from one host that
 * claimed to be idle and dropped each job took every try of every job while an honest worker
 * with room ran nothing).
 *
 * The router's inference port writes it as jobs end (`network_inference_port.ts`); its worker
 * routing reads it, notes each pick, and notes the address group of each key it may pick
 * (`_worker_routing.ts`, the group of `_peer_origins.ts`, which is `connection_limits.ts`'s
 * `addressGroup`, else the connection's own); the choice weighs it (`worker_choice.ts`). One per
 * actor system (per node), as the port and the network actor of a node share one
 * ({@link workerRecordOf}).
 *
 * A key's record is its net count, jobs run to their end less jobs failed: a key that finished
 * one job and then fails each one it is given loses its standing after its next failure. A
 * group's failures are whiles, as a refusing key's are (`busy_refusals.ts`, reused): each
 * failure of any key of the group while its while ran starts none, one after it doubles it, up
 * to {@link GROUP_FAILURE_MAX_MS}. A finished job does not clear its group's while: one honest
 * key of a host must not whitewash the fresh keys beside it.
 *
 * A failure is not held against a key for good (review s76 vroute F3: an honest worker that
 * restarted with jobs in flight got no job again, beside a proven one): its net moves back one
 * toward 0 each {@link FAILURE_FORGOTTEN_MS} after its last outcome here. A key that said goodbye
 * with jobs in flight (a clean stop, `protocols/peer_goodbye.ts`) failed nothing ({@link
 * WorkerRecord.left}), unless it or its address group said more than {@link GOODBYES_EXCUSED}
 * within {@link GOODBYE_WINDOW_MS}: then each further one is a failure, so a worker that says
 * goodbye instead of dropping is still held to account.
 *
 * A connection lost under jobs with no goodbye (kill -9, power loss, a crash) looks at first like
 * a dropper's: this side cannot tell them apart when it happens, only by what the key does next
 * ({@link WorkerRecord.lost}). So the jobs one loss cut are held as one failure of the key, not
 * judged yet, while the key and its address group are within the goodbyes' allowance (a crash is
 * a stop the worker could not announce; counted in the same allowance, it gives a dropper nothing
 * a goodbye does not); its group is counted against at once, as for any failure, so a host's
 * fresh keys gain nothing by a key that dropped and never came back. The key's next outcome
 * judges it: a job it then finishes here shows it came back and works, and the loss is forgiven
 * (its group's while stays), as a goodbye would have been (review s76 routegaps R1: an
 * honest worker that crashed with two jobs in flight was ranked below strangers for an hour,
 * since its record went below 0 and a suspect is picked only when nobody else has room); a job
 * given to it after the loss that it fails or loses too, or any other failure first, makes each
 * job the loss cut a failure. Failover finishing the cut jobs elsewhere is no evidence either
 * way: it finishes a dropper's jobs too.
 *
 * This machine's loopback (`addressGroup`'s `loopback`) counts as no group: its peers are the
 * operator's own processes. Bounded memory: {@link MAX_RECORDED_KEYS} keys (records and groups);
 * past it, the oldest noted go first, but a key's record that is worth keeping (net above 0) only
 * once no record at or below 0 is left (review s76 vroute F5: 4,096 strangers' failures erased an
 * honest worker's 50 finished jobs).
 *
 * @module
 */
import type { ActorSystem } from "../actors/actor_system.ts";
import { BusyRefusals } from "./busy_refusals.ts";

/**
 * Keys remembered (their records, and their address groups): as many workers as a router keeps
 * refusals of (`MAX_BUSY_WORKERS`). About 100 bytes each.
 */
export const MAX_RECORDED_KEYS = 4_096;

/**
 * A group's first while after a failure of one of its keys: the while a key that failed a model
 * is kept off it (`REFUSED_MODEL_COOLDOWN_MS` of `_worker_routing.ts`, not imported: that module
 * reads this one), so a host's fresh keys wait as long as the key that failed would have.
 */
export const GROUP_FAILURE_FIRST_MS = 60_000;

/**
 * The longest while: keys cost nothing, so a host's record must outlast its rotation of keys;
 * an hour bounds what an honest newcomer behind the same address (a shared NAT) waits before it
 * is a clean newcomer again (meanwhile it still gets jobs no proven worker has room for).
 */
export const GROUP_FAILURE_MAX_MS = 60 * 60_000;

/**
 * How long after a key's last outcome here one of its net failures is forgotten, then one more
 * each such while: the group's longest while ({@link GROUP_FAILURE_MAX_MS}). A key back at 0 is a
 * clean stranger again, no better placed than a fresh key, which costs nothing: forgetting gives
 * a liar nothing a new key would not, and gives an honest worker that crashed with jobs in
 * flight its newcomer's turns back within hours instead of never.
 */
export const FAILURE_FORGOTTEN_MS: number = GROUP_FAILURE_MAX_MS;

/**
 * Goodbyes with jobs in flight a key, or its address group, says within {@link
 * GOODBYE_WINDOW_MS} that count as no failure: an operator restarts a node for an upgrade, and
 * may need a second try; a worker that stops more often than that while running this router's
 * jobs drops them, whatever it says first. Per group too: fresh keys of one host, each saying
 * goodbye once, share the host's allowance. A connection lost with jobs in flight and no goodbye
 * (a crash, `WorkerRecord.lost`) draws on the same allowance: a stop is a stop, announced or not.
 */
export const GOODBYES_EXCUSED = 2;

/** The window {@link GOODBYES_EXCUSED} counts in: the group's longest while, an hour. */
export const GOODBYE_WINDOW_MS: number = GROUP_FAILURE_MAX_MS;

/**
 * A connection loss of a key not judged yet ({@link WorkerRecord.lost}): the jobs it cut, when,
 * and whether the key was given a job since (it came back: a loss now is a second one).
 */
interface PendingLoss {
  jobs: number;
  at: number;
  pickedSince: boolean;
}

/** What the choice of worker weighs of one key (`worker_choice.ts`). */
export interface WorkerStanding {
  /** Jobs it ran to their end here, less the jobs it failed here (may be negative). */
  net: number;
  /** Its key failed a job here more often than it finished one, or its group failed lately. */
  suspect: boolean;
  /**
   * When this router first saw it, as a sequence number (smaller: earlier; a key never seen:
   * `Infinity`). Keys are free but time is not: once a stranger failed a job, the job's next
   * stranger is the one known longest, not the one claiming most room (`worker_choice.ts`).
   */
  since?: number;
}

/** Options of {@link WorkerRecord}. */
export interface WorkerRecordOptions {
  /** Clock in ms (default `Date.now`; tests pass a fake one). */
  now?: () => number;
}

/**
 * One router's record of its workers; see the module doc.
 *
 * @example
 * ```ts
 * import { WorkerRecord } from "./worker_record.ts";
 * const record = new WorkerRecord({ now: () => 0 });
 * record.seen("aa", "192.0.2.7");
 * record.seen("bb", "192.0.2.7");
 * record.failed("aa");
 * console.log(record.of("bb").suspect); // true: its host failed a job
 * record.completed("cc");
 * console.log(record.of("cc").net); // 1
 * ```
 */
export class WorkerRecord {
  /**
   * Hex key → its net record (jobs finished less jobs failed) and when it last changed (ms), the
   * last noted last.
   */
  readonly #net = new Map<string, { net: number; at: number }>();
  /**
   * Hex key → its connection loss not judged yet, the last noted last; past
   * {@link MAX_RECORDED_KEYS} the oldest is forgotten, as one held an hour is.
   */
  readonly #losses = new Map<string, PendingLoss>();
  /** `key:…` or `group:…` → when its goodbyes with jobs in flight came (ms), within the window. */
  readonly #goodbyes = new Map<string, number[]>();
  /** The clock (`WorkerRecordOptions.now`): failures are forgotten and goodbyes counted on it. */
  readonly #now: () => number;
  /** Hex key → the address group it was last seen from, the last noted last. */
  readonly #groups = new Map<string, string>();
  /** Hex key → when it was first seen (a sequence number), the first seen first. */
  readonly #since = new Map<string, number>();
  #seen = 0;
  readonly #groupFailures: BusyRefusals;

  /**
   * Create an empty record.
   * @param options See {@link WorkerRecordOptions}.
   */
  constructor(options: WorkerRecordOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#groupFailures = new BusyRefusals({
      firstMs: GROUP_FAILURE_FIRST_MS,
      maxMs: GROUP_FAILURE_MAX_MS,
      maxWorkers: MAX_RECORDED_KEYS,
      now: options.now,
    });
  }

  /**
   * Key `key` may be picked, from address group `group` (undefined: none known, an in-memory
   * connection or a relayed swarm peer): its failures then count against the group too.
   */
  seen(key: string, group: string | undefined): void {
    // Forgetting the oldest past the bound: an old key forgotten is only as senior as a new one.
    if (!this.#since.has(key)) remember(this.#since, key, this.#seen++);
    // This machine's own peers (a local cluster, a testnet) are the operator's processes, not a
    // stranger's host: one that crashed must not hold every other back for up to an hour.
    if (group === undefined || group === LOOPBACK_GROUP) return;
    remember(this.#groups, key, group);
  }

  /**
   * Key `key` was given a job of this node's (the routing's pick): a connection loss of its still
   * waiting to be judged ({@link lost}) is one it came back from, and the next is another.
   */
  picked(key: string): void {
    const pending = this.#losses.get(key);
    if (pending !== undefined) pending.pickedSince = true;
  }

  /** Key `key` ran a job of this node's to its end: and a loss it came back from is forgiven. */
  completed(key: string): void {
    this.#losses.delete(key);
    this.#setNet(key, this.#netOf(key) + 1);
  }

  /**
   * Key `key` failed a job of this node's: against it, and against its address group; a loss of
   * its not judged yet ({@link lost}) counts now too, each job it cut a failure.
   */
  failed(key: string): void {
    this.#judgeLoss(key);
    this.#fail(key, 1);
  }

  /**
   * Key `key`'s connection was lost under a job of this node's with no goodbye (closed or timed
   * out, not cut for frames it sent): call once per job lost. The jobs of one loss are held as
   * one failure (and one against its address group, at once) until the key's next outcome judges
   * them (see the module doc): forgiven by a job it finishes here, each a failure once it fails
   * another or loses a job given to it after the loss. A first loss past the goodbyes' allowance
   * of the key or its group
   * ({@link GOODBYES_EXCUSED} in {@link GOODBYE_WINDOW_MS}, shared with goodbyes) is a failure
   * per job at once, as is a loss once the held one is over {@link FAILURE_FORGOTTEN_MS} old.
   * @returns Whether it counted as a failure now.
   */
  lost(key: string): boolean {
    const pending = this.#pendingLoss(key);
    if (pending !== undefined && !pending.pickedSince) {
      pending.jobs++; // another job of the same loss
      return false;
    }
    // A second loss after it came back, finishing nothing between: it drops what it is given.
    if (pending !== undefined || this.#overAllowance(key)) {
      this.failed(key);
      return true;
    }
    remember(this.#losses, key, { jobs: 1, at: this.#now(), pickedSince: false });
    // Against its address group at once, as a failure is: a host whose key dropped a job and
    // never came back makes its fresh keys suspect (the key's own record is judged later).
    this.#groupFailed(key);
    return false;
  }

  /** `key`'s loss waiting to be judged, if one is (one held past its while is forgotten). */
  #pendingLoss(key: string): PendingLoss | undefined {
    const pending = this.#losses.get(key);
    if (pending === undefined || this.#now() - pending.at < FAILURE_FORGOTTEN_MS) return pending;
    this.#losses.delete(key);
    return undefined;
  }

  /**
   * Count `key`'s loss waiting to be judged, if any, as a failure per job it cut (its group was
   * counted against when it came).
   */
  #judgeLoss(key: string): void {
    const pending = this.#pendingLoss(key);
    if (pending === undefined) return;
    this.#losses.delete(key);
    this.#setNet(key, this.#netOf(key) - pending.jobs);
  }

  /** `failures` against `key`, and one against its address group. */
  #fail(key: string, failures: number): void {
    this.#setNet(key, this.#netOf(key) - failures);
    this.#groupFailed(key);
  }

  /** A failure against `key`'s address group, if it has one. */
  #groupFailed(key: string): void {
    const group = this.#groups.get(key);
    if (group !== undefined) this.#groupFailures.refused(group);
  }

  /**
   * Key `key` said goodbye (`peer_goodbye.ts`) with jobs of this node's in flight: call once per
   * goodbye, however many jobs it cut. No failure while it and its address group said at most
   * {@link GOODBYES_EXCUSED} within {@link GOODBYE_WINDOW_MS}; past that, a failure
   * ({@link failed}).
   * @returns Whether it counted as a failure.
   */
  left(key: string): boolean {
    const over = this.#overAllowance(key);
    if (over) this.failed(key);
    return over;
  }

  /**
   * Note a stop with jobs in flight of `key` now (a goodbye, or a loss with none): whether it or
   * its address group stopped more than {@link GOODBYES_EXCUSED} times within the window.
   */
  #overAllowance(key: string): boolean {
    const group = this.#groups.get(key);
    return [`key:${key}`, ...(group === undefined ? [] : [`group:${group}`])]
      .map((name) => this.#goodbye(name) > GOODBYES_EXCUSED)
      .some((x) => x);
  }

  /** Note a goodbye of `name` now: how many it said within the window, this one included. */
  #goodbye(name: string): number {
    const now = this.#now();
    const times = (this.#goodbyes.get(name) ?? []).filter((t) => now - t < GOODBYE_WINDOW_MS);
    // More than the allowance is never read: the list stays that short.
    times.push(now);
    remember(this.#goodbyes, name, times.slice(-(GOODBYES_EXCUSED + 1)));
    return times.length;
  }

  /** `key`'s net now: a net failure forgotten each {@link FAILURE_FORGOTTEN_MS} since it changed. */
  #netOf(key: string): number {
    const entry = this.#net.get(key);
    if (entry === undefined) return 0;
    if (entry.net >= 0) return entry.net;
    const forgotten = Math.floor((this.#now() - entry.at) / FAILURE_FORGOTTEN_MS);
    return Math.min(0, entry.net + forgotten);
  }

  /**
   * Set `key`'s net as the newest entry; past the bound, the oldest at or below 0 goes first,
   * the oldest above 0 only when none is left.
   */
  #setNet(key: string, net: number): void {
    this.#net.delete(key);
    this.#net.set(key, { net, at: this.#now() });
    if (this.#net.size <= MAX_RECORDED_KEYS) return;
    for (const [old, entry] of this.#net) {
      if (entry.net <= 0) return void this.#net.delete(old);
    }
    this.#net.delete(this.#net.keys().next().value!);
  }

  /**
   * What is known of `key` now (a key never seen: net 0, suspect only by its group); a loss not
   * judged yet counts as one failure of the key.
   */
  of(key: string): WorkerStanding {
    const pending = this.#pendingLoss(key) !== undefined;
    const net = this.#netOf(key) - (pending ? 1 : 0);
    const group = this.#groups.get(key);
    const groupFailed = group !== undefined && this.#groupFailures.isAskedLast(group);
    return {
      net,
      // A key back at 0 by its own loss, from a record above it, is judged by that record and
      // its next outcome, not by the while its loss started for its group: else an honest worker
      // that had finished one job and crashed waited out its group's while for its next turn.
      suspect: net < 0 || (net === 0 && groupFailed && !pending),
      since: this.#since.get(key) ?? Infinity,
    };
  }
}

/** Set `key` to `value` as the newest entry of `map`, dropping the oldest past the bound. */
function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > MAX_RECORDED_KEYS) map.delete(map.keys().next().value!);
}

/** `addressGroup`'s name for this machine's loopback (`connection_limits.ts`). */
const LOOPBACK_GROUP = "loopback";

const perSystem = new WeakMap<ActorSystem, WorkerRecord>();

/**
 * The {@link WorkerRecord} of the node running `system`, made on first use: its inference port
 * writes it, its network actor's routing reads it.
 */
export function workerRecordOf(system: ActorSystem): WorkerRecord {
  let record = perSystem.get(system);
  if (record === undefined) perSystem.set(system, record = new WorkerRecord());
  return record;
}
