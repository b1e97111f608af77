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
 * ({@link WorkerRecord.lost}). So the jobs one loss cut are held, not judged yet, while the key
 * and its address group are within the goodbyes' allowance (a crash is a stop the worker could
 * not announce; counted in the same allowance, it gives a dropper nothing a goodbye does not);
 * its group is counted against at once, as for any failure, so a host's fresh keys gain nothing
 * by a key that dropped and never came back. Every job one close cut gets one verdict (the jobs
 * of a close fail with one error, the loss's event). While held, every job it cut counts against
 * the key's net (a key that cut 8 jobs is proven only by 9 finished), and as one failure for
 * suspicion: an honest worker that had finished a job and crashed is a clean stranger, with a
 * newcomer's turn to show it came back (review s76 routegaps R1: below 0, a suspect is picked
 * only when nobody else has room, and it was ranked below strangers for an hour). The key's
 * outcomes judge it: each job it finishes that it was given on a connection opened after the
 * loss forgives one job the loss cut (its group's while stays; one short job does not erase many
 * long ones: review s77 vroute2 F1); a job given to it there that it loses too (a second crash
 * after it came back, before it made up the first: a dropper's next drop looks the same, so it is
 * a failure, even within the allowance), or any other failure first, makes each job still held a
 * failure; a loss still held after {@link FAILURE_FORGOTTEN_MS} is judged the same way, its
 * failures forgotten from then on as any are (review s77 vroute2 F2: forgotten whole, a closed
 * socket was the cheapest way to fail). A loss of another of the key's connections, one open
 * before the held loss came, before the key came back, is the same stop seen twice: held with it
 * (review s77 vroute2 F4). Failover finishing the cut jobs elsewhere is no evidence either way:
 * it finishes a dropper's jobs too.
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
 * (a crash, `WorkerRecord.lost`) draws on the same allowance, once per close: a stop is a stop,
 * announced or not. Keys with no address group that are relayed share one group's allowance
 * ({@link SeenVia}).
 */
export const GOODBYES_EXCUSED = 2;

/** The window {@link GOODBYES_EXCUSED} counts in: the group's longest while, an hour. */
export const GOODBYE_WINDOW_MS: number = GROUP_FAILURE_MAX_MS;

/**
 * A connection loss of a key not judged yet ({@link WorkerRecord.lost}): the stops it holds (one
 * crash may close several of the key's connections, each seen as its own event), the jobs they
 * cut still held, when the first came, and what the key was given since.
 */
interface HeldLoss {
  /** Cut jobs still held: each one a failure once judged, or forgiven by one job finished. */
  jobs: number;
  /** When its first event came (ms): judged {@link FAILURE_FORGOTTEN_MS} later if still held. */
  at: number;
  /**
   * Its place among losses ({@link WorkerRecord}'s `#lossSeq`): a connection first seen at or
   * after it opened after the loss, one seen before it was open when the crash came.
   */
  seq: number;
  /** The key was picked on a connection opened after the loss: it came back. */
  back: boolean;
  /** Picks on connections opened after the loss not matched yet by a job it finished. */
  credits: number;
  /** Where it ended: still held, judged (its jobs failures), or forgiven whole. */
  state: "held" | "judged" | "forgiven";
}

/** What the routing knows of one of a key's connections when it notes it ({@link WorkerRecord.seen}). */
export interface SeenVia {
  /**
   * The connection it may be picked on: a loss is forgiven, and a loss after it is a second one,
   * only by picks on a connection first seen after the loss (one open before it carried no
   * "coming back": review s77 vroute2 F4).
   */
  connection?: WeakKey;
  /**
   * The group its stops count in when it has no address group: the one group every relayed
   * swarm peer is placed in (`PeerEntry.placement`, as storage places them), so fresh relayed
   * keys share one allowance of stops (review s77 vroute2 F5). Its failures do not make the
   * other relayed keys suspect: an honest relayed newcomer is not a stranger's host.
   */
  stopGroup?: string;
}

/** What the choice of worker weighs of one key (`worker_choice.ts`). */
export interface WorkerStanding {
  /**
   * Jobs it ran to their end here, less the jobs it failed here and the jobs a loss of its not
   * judged yet cut (may be negative).
   */
  net: number;
  /**
   * Its key failed a job here more often than it finished one (a loss not judged yet counts as
   * one failure here), or its group failed lately.
   */
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
   * {@link MAX_RECORDED_KEYS} the oldest is forgotten.
   */
  readonly #losses = new Map<string, HeldLoss>();
  /**
   * A loss's event (the error its connection's jobs failed with: one per close) → its key and
   * the loss it was held in, or `failure` when it counted as one at once: every job one close
   * cut gets one verdict (review s77 vroute2 F3), as a goodbye's do (`#goodbyes` of the port).
   */
  readonly #events = new WeakMap<WeakKey, { key: string; loss: HeldLoss | "failure" }>();
  /** A connection → the loss sequence when the routing first noted it ({@link SeenVia}). */
  readonly #connections = new WeakMap<WeakKey, number>();
  /** Losses held so far: orders them against the connections first seen. */
  #lossSeq = 0;
  /** `key:…` or `group:…` → when its goodbyes with jobs in flight came (ms), within the window. */
  readonly #goodbyes = new Map<string, number[]>();
  /** The clock (`WorkerRecordOptions.now`): failures are forgotten and goodbyes counted on it. */
  readonly #now: () => number;
  /** Hex key → the address group it was last seen from, the last noted last. */
  readonly #groups = new Map<string, string>();
  /** Hex key → the group its stops count in where it has no address group ({@link SeenVia}). */
  readonly #stopGroups = new Map<string, string>();
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
   * @param via The connection it may be picked on, and the group its stops count in where it
   *   has no address group ({@link SeenVia}).
   */
  seen(key: string, group: string | undefined, via: SeenVia = {}): void {
    // Forgetting the oldest past the bound: an old key forgotten is only as senior as a new one.
    if (!this.#since.has(key)) remember(this.#since, key, this.#seen++);
    const { connection, stopGroup } = via;
    if (connection !== undefined && !this.#connections.has(connection)) {
      this.#connections.set(connection, this.#lossSeq);
    }
    // This machine's own peers (a local cluster, a testnet) are the operator's processes, not a
    // stranger's host: one that crashed must not hold every other back for up to an hour.
    if (group === LOOPBACK_GROUP) return;
    if (group === undefined) {
      if (stopGroup !== undefined) remember(this.#stopGroups, key, stopGroup);
      return;
    }
    remember(this.#groups, key, group);
  }

  /**
   * Key `key` was given a job of this node's (the routing's pick) on `connection`: where that
   * connection opened after a loss of its still held ({@link lost}), it came back from it; the
   * job, once finished, forgives one job the loss cut, and a loss of it is a second one.
   */
  picked(key: string, connection?: WeakKey): void {
    const held = this.#heldLoss(key);
    if (held === undefined) return;
    // A connection the routing never noted is one it has not seen before: opened since.
    const seq = connection === undefined
      ? this.#lossSeq
      : this.#connections.get(connection) ?? this.#lossSeq;
    if (seq < held.seq) return; // open when the crash came: not the key coming back
    held.back = true;
    held.credits++;
  }

  /**
   * Key `key` ran a job of this node's to its end: and one job of a loss it came back from is
   * forgiven, where it was given a job on a connection opened since that no finished job matched
   * yet (one finished short job does not erase a loss of many long ones: review s77 vroute2 F1).
   * The port does not say which pick a finished job was: one given before the loss may take the
   * place of one given since, which then, lost, is a second loss, and, finished, forgives nothing
   * more, so a key gains no forgiveness by it beyond its picks since.
   */
  completed(key: string): void {
    const held = this.#heldLoss(key);
    if (held !== undefined && held.credits > 0) {
      held.credits--;
      held.jobs--;
      if (held.jobs === 0) this.#endLoss(key, held, "forgiven");
    }
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
   * out, not cut for frames it sent): call once per job lost, with the `event` the job failed
   * with (the connection's error: one per close). Every job of one event gets one verdict. A
   * loss is held (its group counted against at once) until the key's outcomes judge it (see the
   * module doc): each job a job it then finishes forgives, that it was given on a connection
   * opened after the loss; each job a failure once it fails another, loses a job given to it
   * after the loss (a second crash after it came back, before it finished as many jobs as the
   * first cut, is judged a failure: this side cannot tell it from a dropper's next drop), or the
   * loss is still held {@link FAILURE_FORGOTTEN_MS} after it came. A loss of a connection that
   * was open before the held one came, before the key came back, is the same stop seen twice:
   * held with it. A new stop past the goodbyes' allowance of the key or its group
   * ({@link GOODBYES_EXCUSED} in {@link GOODBYE_WINDOW_MS}, shared with goodbyes) is a failure
   * per job at once.
   * @returns Whether it counted as a failure now.
   */
  lost(key: string, event: WeakKey): boolean {
    const known = this.#events.get(event);
    if (known !== undefined && known.key === key) return this.#sameEvent(key, event, known.loss);
    const held = this.#heldLoss(key);
    if (held !== undefined && !held.back) {
      // Another of its connections, open when the crash came, seen closing: the same stop.
      held.jobs++;
      this.#events.set(event, { key, loss: held });
      return false;
    }
    // A new stop, counted in the allowance whatever follows, as each goodbye is.
    const over = this.#overAllowance(key);
    if (held !== undefined || over) {
      this.#events.set(event, { key, loss: "failure" });
      this.failed(key);
      return true;
    }
    this.#hold(key, event);
    // Against its address group at once, as a failure is: a host whose key dropped a job and
    // never came back makes its fresh keys suspect (the key's own record is judged later).
    this.#groupFailed(key);
    return false;
  }

  /** Another job cut by `event`, whose first job's verdict was `loss`: the same verdict. */
  #sameEvent(key: string, event: WeakKey, loss: HeldLoss | "failure"): boolean {
    if (loss !== "failure" && loss.state === "held") {
      loss.jobs++;
      return false;
    }
    // Its loss was forgiven whole before this job of it was seen: held anew, no new stop.
    if (loss !== "failure" && loss.state === "forgiven") {
      this.#hold(key, event);
      return false;
    }
    this.#fail(key, 1); // its loss judged, or a failure at once: this job too
    return true;
  }

  /** Hold one job of `key` cut by `event` as a new loss. */
  #hold(key: string, event: WeakKey): void {
    const held: HeldLoss = {
      jobs: 1,
      at: this.#now(),
      seq: ++this.#lossSeq,
      back: false,
      credits: 0,
      state: "held",
    };
    remember(this.#losses, key, held);
    this.#events.set(event, { key, loss: held });
  }

  /**
   * `key`'s loss still held, if one is; one held {@link FAILURE_FORGOTTEN_MS} is judged, its jobs
   * failures from then on, forgotten as any failure is (review s77 vroute2 F2: deleted whole, a
   * closed socket was the cheapest way to fail).
   */
  #heldLoss(key: string): HeldLoss | undefined {
    const held = this.#losses.get(key);
    if (held === undefined || this.#now() - held.at < FAILURE_FORGOTTEN_MS) return held;
    const judgedAt = held.at + FAILURE_FORGOTTEN_MS;
    this.#endLoss(key, held, "judged");
    this.#setNet(key, this.#netOf(key, judgedAt) - held.jobs, judgedAt);
    return undefined;
  }

  /** End `key`'s held loss `held` as `state`. */
  #endLoss(key: string, held: HeldLoss, state: "judged" | "forgiven"): void {
    held.state = state;
    this.#losses.delete(key);
  }

  /**
   * Count `key`'s loss still held, if any, as a failure per job it cut (its group was counted
   * against when it came).
   */
  #judgeLoss(key: string): void {
    const held = this.#heldLoss(key);
    if (held === undefined) return;
    this.#endLoss(key, held, "judged");
    this.#setNet(key, this.#netOf(key) - held.jobs);
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
   * its address group (else the group its stops count in, {@link SeenVia}) stopped more than
   * {@link GOODBYES_EXCUSED} times within the window.
   */
  #overAllowance(key: string): boolean {
    const group = this.#groups.get(key) ?? this.#stopGroups.get(key);
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

  /**
   * `key`'s net at `at` (default now): a net failure forgotten each {@link FAILURE_FORGOTTEN_MS}
   * since it changed.
   */
  #netOf(key: string, at: number = this.#now()): number {
    const entry = this.#net.get(key);
    if (entry === undefined) return 0;
    if (entry.net >= 0) return entry.net;
    const forgotten = Math.floor(Math.max(0, at - entry.at) / FAILURE_FORGOTTEN_MS);
    return Math.min(0, entry.net + forgotten);
  }

  /**
   * Set `key`'s net, as of `at` (default now), as the newest entry; past the bound, the oldest
   * at or below 0 goes first, the oldest above 0 only when none is left.
   */
  #setNet(key: string, net: number, at: number = this.#now()): void {
    this.#net.delete(key);
    this.#net.set(key, { net, at });
    if (this.#net.size <= MAX_RECORDED_KEYS) return;
    for (const [old, entry] of this.#net) {
      if (entry.net <= 0) return void this.#net.delete(old);
    }
    this.#net.delete(this.#net.keys().next().value!);
  }

  /**
   * What is known of `key` now (a key never seen: net 0, suspect only by its group). A loss not
   * judged yet counts every job it cut in the net, so a key holding one is proven only by as
   * many finished jobs more; for suspicion it counts as one failure, so an honest worker that
   * had finished a job and crashed with several in flight is a clean stranger, with a
   * newcomer's turn to show it came back.
   */
  of(key: string): WorkerStanding {
    const held = this.#heldLoss(key);
    const judged = this.#netOf(key);
    const suspicion = judged - (held === undefined ? 0 : 1);
    const group = this.#groups.get(key);
    const groupFailed = group !== undefined && this.#groupFailures.isAskedLast(group);
    return {
      net: judged - (held?.jobs ?? 0),
      // A key back at 0 by its own loss, from a record above it, is judged by that record and
      // its next outcome, not by the while its loss started for its group: else an honest worker
      // that had finished one job and crashed waited out its group's while for its next turn.
      suspect: suspicion < 0 || (suspicion === 0 && groupFailed && held === undefined),
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
