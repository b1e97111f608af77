/**
 * What this node's own storage audits hold against its peers, and its file: the (holder, chunk)
 * pairs a holder failed (placed last for that chunk), the rounds it failed audits in (strikes),
 * the holders placed last for every chunk (demoted), and when a penalized holder left the peer
 * set. `ReplicaRecords` (`_replica_records.ts`) consults and updates it; the StorageActor opens it
 * from `<store>/`{@link AUDIT_PENALTIES_FILE} so that a restart of the node (or a rebuild of its
 * replicated store) does not forget it. Kept in memory only, a restart put a holder that had
 * failed its audits back in rank, and it was given its share of the next put at once (stop 75).
 *
 * **Rounds across a restart.** Strikes and demotions are counted in this node's audit rounds. The
 * count is this node's whole life's, not one process's: it is kept in the file, so a demotion
 * has as many rounds left after a restart as it had before. The time the node is down counts no
 * rounds, as any time it audits nobody: a restart neither shortens a demotion (a fresh count
 * would have ended it early, a wall clock would have let it run out while the node was down) nor
 * extends it. The file is written at the end of each round, with that round's strikes; a crash
 * between a round's end and that write loses the round, so the demotion ends one round later,
 * never earlier.
 *
 * **On disk**: one JSON object, rewritten whole (`writeFileDurably`: temporary file, `fsync`,
 * rename, owner-only), so it is either the old state or the new one, never torn:
 *
 * ```
 * {"format":"audit-penalties","version":1,"check":<sha-256 hex of the state's JSON>,
 *  "state":{"round":n,"failed":[[peer,key]…],"strikes":[[peer,[round…]]…],
 *           "demoted":[[peer,until]…],"departed":[[peer,ms]…]}}
 * ```
 *
 * **A file this code did not write is not trusted**: one larger than
 * {@link MAX_AUDIT_PENALTIES_FILE_BYTES}, not a regular file, whose check does not match, or whose
 * values are out of the ranges this code writes (a strike after the round, a demotion longer than
 * {@link DEMOTION_ROUNDS}, more entries than the bounds) is set aside, untouched, to
 * `<file>.rejected-<time>`, and one of another version (a newer node's, before a downgrade) to
 * `<file>.v<version>-<time>`; the record starts empty and the log says so. That fails safe the way
 * a restart used to: the holders are judged again by the next audits, and the verdicts stay in
 * the ledger. The ledger sets a damaged tail aside the same way (`ledger.log.torn-*`).
 *
 * @module
 */
import { removeTemporaries, syncDirectory, writeFileDurably } from "../proof/_durable_file.ts";
import { unusedPath } from "../proof/_unused_path.ts";
import { sha256Hex } from "../protocols/hash.ts";
import { keepToOwner } from "../protocols/owner_only.ts";
import { basename, dirname } from "node:path";

/** File name of the record in the store directory (`<data>/store/audit-penalties.json`). */
export const AUDIT_PENALTIES_FILE = "audit-penalties.json";

/**
 * Audit rounds, out of the last {@link STRIKE_WINDOW_ROUNDS} of this node's, in which a holder
 * failed an audit before it is placed last for every chunk: three, so one audit an honest holder
 * missed (it was unreachable while its connection was still up: `no_response`) or one lost chunk
 * costs it the chunks it failed, not its standing; a holder that keeps little fails round after
 * round (one keeping a fraction k of its chunks passes a round's four with probability k⁴).
 */
export const DEMOTION_STRIKES = 3;

/** The recent rounds {@link DEMOTION_STRIKES} are counted in. */
export const STRIKE_WINDOW_ROUNDS = 8;

/**
 * Audit rounds a holder stays placed last for every chunk after its latest strike: a day at the
 * default round every 10 minutes (`storage.auditIntervalMs`). Rounds, not time, so a node that
 * audits nobody (stopped, no peers) does not forgive anyone meanwhile, and a test needs no clock.
 * A holder placed last is still asked for the copies it was given (a stand-in), so one that fails
 * on keeps itself demoted.
 */
export const DEMOTION_ROUNDS = 144;

/**
 * Most (holder, chunk) pairs remembered as failed in an audit of this node's; past it the oldest
 * is forgotten and that holder is placed in its rank again for that chunk (the next audit of it
 * judges it again). 65 536, the bound of the missed writes and unserved reads
 * (`_replica_records.ts`): a few MiB however much the node audits.
 */
export const MAX_FAILED_AUDITS = 65_536;

/**
 * Most holders with strikes or a demotion remembered; past it the one struck longest ago is
 * forgotten. A node has tens of storage peers: 4096 is far past any honest network, and keeps a
 * swarm of throw-away keys that each fail one audit from growing the record (and its file) without
 * bound.
 */
export const MAX_PENALIZED_PEERS = 4096;

/**
 * Most departures remembered, and read back: one per penalized peer (of a failed pair, struck, or
 * demoted), which the bounds above cap. The writer forgets a departure once its peer has nothing
 * left against it, and past this bound the peer that left longest ago (review s76 vstore F4: 80,000
 * holders that each admitted a loss and left wrote a departure list the reader refused, and the
 * whole record, a real demotion with it, was set aside at the next start).
 */
const MAX_DEPARTURES = MAX_FAILED_AUDITS + 2 * MAX_PENALIZED_PEERS;

/**
 * Longest peer id or chunk key recorded and accepted from the file, characters: ids are 64 hex
 * digits and keys about 60 characters; a longer string is no entry this code writes. The same
 * check ({@link isName}) refuses one when it would be recorded, so the writer never writes what the
 * reader refuses (review s76 vstore F4).
 */
const MAX_NAME_CHARS = 256;

/**
 * Largest file read back: 32 MiB. The bounds above allow about 16 MiB at most (65 536 pairs of a
 * 64-digit id and a key of about 60 characters, a departure for each of up to 73 728 penalized
 * peers, 4096 holders with up to 8 strikes, 4096 demotions), so a larger file is none this code
 * wrote, and is set aside unread rather than held in memory.
 */
export const MAX_AUDIT_PENALTIES_FILE_BYTES: number = 32 * 1024 * 1024;

/** Name of the format, the file's `format` field. */
const FORMAT = "audit-penalties";

/** Version written and read. */
const VERSION = 1;

/** Options of {@link AuditPenalties.open}. */
export interface AuditPenaltiesOptions {
  /** Where a set-aside file or a failed write is reported. */
  log?: (line: string) => void;
  /** The clock that names a set-aside file, ms since the epoch. Default `Date.now`. */
  now?: () => number;
}

/** The departed-holder clock of the given record (`GivenChunks.now`, `retentionRanOut`). */
export interface DepartureClock {
  /** The time now, ms. */
  now(): number;
  /** Whether a holder that left at `since` has been away for the retention. */
  retentionRanOut(since: number): boolean;
}

/** The state as the file holds it. */
interface PenaltyState {
  round: number;
  failed: [string, string][];
  strikes: [string, number[]][];
  demoted: [string, number][];
  departed: [string, number][];
}

/**
 * What this node's audits hold against its peers (see the module doc): in memory with
 * `new AuditPenalties()`, kept in a file with {@link AuditPenalties.open}.
 */
export class AuditPenalties {
  /**
   * `<peer id> <key>` of each chunk a holder failed an audit of this node's on, until a write of
   * it to that holder succeeds (or it proves it in a repair), or it has been away for the departed
   * retention; oldest first, at most {@link MAX_FAILED_AUDITS}. The pair is what makes one loss
   * one verdict: the holder is not asked for that chunk again while it stands.
   */
  readonly #failed = new Set<string>();
  /**
   * The same pairs by peer id, so forgetting a holder costs its own pairs (a scan of every pair per
   * departed holder took 1.3 s at 4,096 of them and 75 s at 32,768, the node stalled meanwhile:
   * review s76 vstore F3). A peer is here while it has a pair.
   */
  readonly #failedOf = new Map<string, Set<string>>();
  /** Per peer, the audit rounds ({@link round}) it failed an audit in, the latest last. */
  readonly #strikes = new Map<string, number[]>();
  /** Per peer placed last for every chunk, the round after which it is placed in rank again. */
  readonly #demoted = new Map<string, number>();
  /** Per penalized peer out of the peer set, when it left (the given record's clock). */
  readonly #departed = new Map<string, number>();
  /** Audit rounds ended over this node's life (see the module doc): the clock of strikes. */
  #round = 0;
  /** Where the record is kept; `null`: in memory only. */
  #path: string | null = null;
  #log: ((line: string) => void) | undefined;
  /** Changed since the last write. */
  #dirty = false;
  #writing: Promise<void> = Promise.resolve();
  /** A holder id the file could not hold was refused, and logged (once: a caller's ids repeat). */
  #saidUnrecordable = false;

  /**
   * The record kept in the file at `path`: read from it (none yet: empty), or empty with the file
   * set aside when it is damaged, foreign or of another version (see the module doc).
   *
   * @param path The file (the StorageActor uses `<store>/`{@link AUDIT_PENALTIES_FILE}).
   * @param options Where problems are logged, the clock naming a set-aside file.
   * @returns The record.
   *
   * @example
   * ```ts
   * import { AuditPenalties, DEMOTION_STRIKES } from "./audit_penalties.ts";
   * const path = `${await Deno.makeTempDir()}/audit-penalties.json`;
   * const penalties = await AuditPenalties.open(path);
   * for (let i = 0; i < DEMOTION_STRIKES; i++) {
   *   penalties.failedAudit("a1b2", ["bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"]);
   *   penalties.auditRoundEnded();
   * }
   * await penalties.close();
   * (await AuditPenalties.open(path)).demoted("a1b2"); // true
   * ```
   */
  static async open(path: string, options?: AuditPenaltiesOptions): Promise<AuditPenalties> {
    const penalties = new AuditPenalties();
    penalties.#log = options?.log;
    // A write its process died in left a temporary file beside it.
    await removeTemporaries(dirname(path), (name) => name === basename(path));
    const read = await readState(path);
    if ("state" in read) {
      penalties.#restore(read.state);
      keepToOwner(path); // a copy restored with the umask's mode
    } else if (read.problem !== undefined) {
      const now = (options?.now ?? Date.now)();
      const stamp = new Date(now).toISOString().replaceAll(":", "-");
      const aside = await unusedPath(`${path}.${read.label ?? "rejected"}-${stamp}`);
      try {
        await Deno.rename(path, aside);
        await syncDirectory(dirname(path));
      } catch (error) {
        // A read-only store: left as it is, never written over; the record lives in memory.
        options?.log?.(
          `storage: ${path} ${read.problem}, and setting it aside failed (${String(error)}): ` +
            `left untouched; this node's audits' penalties are kept in memory only`,
        );
        return penalties;
      }
      options?.log?.(
        `storage: ${path} ${read.problem}: set it aside, untouched, as ${aside}; this node's ` +
          `audits hold nothing against any peer until they fail again (the verdicts stay in ` +
          `the ledger)`,
      );
    }
    penalties.#path = path;
    return penalties;
  }

  /** Audit rounds ended over this node's life: the clock of strikes and demotions. */
  get round(): number {
    return this.#round;
  }

  /** Whether no peer is penalized at all (placement needs no reordering). */
  get empty(): boolean {
    return this.#failed.size === 0 && this.#demoted.size === 0;
  }

  /**
   * This node audited `peerId` and it failed on `keys`: it is placed last for each of them, and a
   * strike counts against it for this round; with {@link DEMOTION_STRIKES} in the last
   * {@link STRIKE_WINDOW_ROUNDS} rounds it is placed last for every chunk for
   * {@link DEMOTION_ROUNDS} rounds.
   *
   * @param peerId The holder.
   * @param keys The chunks it failed (storage keys).
   */
  failedAudit(peerId: string, keys: readonly string[]): void {
    if (!this.#recordable(peerId)) return;
    for (const key of keys) this.#markFailed(peerId, key);
    const strikes = (this.#strikes.get(peerId) ?? [])
      .filter((round) => round > this.#round - STRIKE_WINDOW_ROUNDS && round !== this.#round);
    strikes.push(this.#round);
    this.#strikes.delete(peerId); // re-set as the latest struck
    this.#strikes.set(peerId, strikes);
    if (strikes.length >= DEMOTION_STRIKES) {
      this.#demoted.delete(peerId); // re-set as the latest demoted
      this.#demoted.set(peerId, this.#round + DEMOTION_ROUNDS);
    }
    this.#bound();
    this.#dirty = true;
  }

  /**
   * `peerId` holds no copy of `key`, by its own word or its silence: placed last for it as for a
   * failed audit, without a strike. (An id or key the file cannot hold, empty, with a space or over
   * 256 characters, is not recorded here nor in {@link failedAudit}: ids on the network are 64 hex
   * digits; only a library caller's own `StoragePeer` ids can be such.)
   *
   * @param peerId The holder.
   * @param key The chunk (storage key).
   */
  markFailed(peerId: string, key: string): void {
    if (!this.#recordable(peerId)) return;
    this.#markFailed(peerId, key);
    this.#dirty = true;
  }

  /**
   * `peerId` holds a good copy of `key` again (a write of it succeeded): no longer placed last
   * for it.
   *
   * @param peerId The holder.
   * @param key The chunk (storage key).
   */
  holdsAgain(peerId: string, key: string): void {
    const entry = pair(peerId, key);
    if (!this.#failed.has(entry)) return;
    this.#dropFailed(entry);
    this.#dirty = true;
  }

  /**
   * Whether `peerId` failed this node's audit of `key` and holds no good copy of it since.
   *
   * @param peerId The holder.
   * @param key The chunk (storage key).
   * @returns Whether it is placed last for it.
   */
  failedAuditOf(peerId: string, key: string): boolean {
    return this.#failed.has(pair(peerId, key));
  }

  /**
   * Whether `peerId` is placed last for every chunk.
   *
   * @param peerId The holder.
   * @returns Whether it is demoted.
   */
  demoted(peerId: string): boolean {
    return this.#demoted.has(peerId);
  }

  /**
   * An audit round of this node's ended: strikes age, demotions that ran out end, and the record
   * is written (with this round's strikes: see the module doc).
   */
  auditRoundEnded(): void {
    this.#round++;
    for (const [id, until] of this.#demoted) {
      if (until < this.#round) {
        this.#demoted.delete(id);
        this.#settle(id);
      }
    }
    for (const [id, strikes] of this.#strikes) {
      if (strikes[strikes.length - 1] <= this.#round - STRIKE_WINDOW_ROUNDS) {
        this.#strikes.delete(id);
        this.#settle(id);
      }
    }
    this.#dirty = true;
    void this.flush();
  }

  /**
   * The peer set is now `ids`. A penalized peer that left starts its departure on `clock`; one
   * away for the retention is forgotten (also when this call brings it back); one back in time
   * keeps what it earned.
   *
   * @param ids The current peer set.
   * @param clock The given record's clock, so penalties and that record are forgotten together.
   */
  setPeers(ids: ReadonlySet<string>, clock: DepartureClock): void {
    const now = clock.now();
    // A peer in two of these is met twice; its departure is set once.
    for (const penalized of [this.#failedOf.keys(), this.#strikes.keys(), this.#demoted.keys()]) {
      for (const id of penalized) {
        if (!ids.has(id) && !this.#departed.has(id)) {
          this.#departed.set(id, now);
          this.#dirty = true;
        }
      }
    }
    for (const [id, since] of this.#departed) {
      if (clock.retentionRanOut(since)) this.#forget(id);
      else if (ids.has(id)) this.#departed.delete(id); // back in time: it keeps what it earned
      else continue;
      this.#dirty = true;
    }
    // Reached only if the bounds above change apart: one departure per penalized peer fits.
    for (const id of this.#departed.keys()) {
      if (this.#departed.size <= MAX_DEPARTURES) break;
      this.#forget(id); // the one that left longest ago
      this.#dirty = true;
    }
  }

  /**
   * Write the record if it changed since the last write (whole, atomically and durably). Never
   * rejects: a failed write is logged, and the next one writes the whole record again.
   */
  flush(): Promise<void> {
    this.#writing = this.#writing.then(() => this.#write());
    return this.#writing;
  }

  /** Write what changed, at the owner's stop (the StorageActor's `postStop`). */
  async close(): Promise<void> {
    await this.flush();
  }

  async #write(): Promise<void> {
    const path = this.#path;
    if (path === null || !this.#dirty) return;
    this.#dirty = false;
    const state = JSON.stringify(this.#state());
    const file = `{"format":${JSON.stringify(FORMAT)},"version":${VERSION},` +
      `"check":"${sha256Hex(new TextEncoder().encode(state))}","state":${state}}\n`;
    try {
      await writeFileDurably(path, new TextEncoder().encode(file));
    } catch (error) {
      this.#dirty = true;
      this.#log?.(
        `storage: writing ${path} failed (${String(error)}); the audits' penalties are kept in ` +
          `memory and written again after the next round`,
      );
    }
  }

  #state(): PenaltyState {
    return {
      round: this.#round,
      failed: [...this.#failed].map((key) => {
        const space = key.indexOf(" ");
        return [key.slice(0, space), key.slice(space + 1)];
      }),
      strikes: [...this.#strikes].map(([id, rounds]) => [id, [...rounds]]),
      demoted: [...this.#demoted],
      departed: [...this.#departed],
    };
  }

  #restore(state: PenaltyState): void {
    this.#round = state.round;
    for (const [id, key] of state.failed) this.#markFailed(id, key);
    for (const [id, rounds] of state.strikes) this.#strikes.set(id, rounds);
    for (const [id, until] of state.demoted) this.#demoted.set(id, until);
    // A file of 421e82f can hold departures of peers with nothing left against them: not kept.
    for (const [id, since] of state.departed) {
      if (this.#penalizes(id)) this.#departed.set(id, since);
    }
  }

  /**
   * Whether `id` can be recorded: the reader's own check ({@link isName}), so that what is
   * written is read back. Refused: logged once.
   */
  #recordable(id: string): boolean {
    if (isName(id)) return true;
    if (!this.#saidUnrecordable) {
      this.#saidUnrecordable = true;
      this.#log?.(
        `storage: a holder id ${JSON.stringify(id.slice(0, 64))}${id.length > 64 ? "…" : ""} ` +
          `(empty, with a space, or over ${MAX_NAME_CHARS} characters) cannot be kept in the ` +
          `audits' record: its failed audits are not held against it (said once)`,
      );
    }
    return false;
  }

  #markFailed(peerId: string, key: string): void {
    if (!isName(key)) return; // storage keys are CIDs: another key is no chunk this node audits
    const entry = pair(peerId, key);
    this.#failed.delete(entry); // re-added as the latest
    this.#failed.add(entry);
    let ofPeer = this.#failedOf.get(peerId);
    if (ofPeer === undefined) this.#failedOf.set(peerId, ofPeer = new Set());
    ofPeer.add(entry);
    for (const oldest of this.#failed) {
      if (this.#failed.size <= MAX_FAILED_AUDITS) break;
      this.#dropFailed(oldest);
    }
  }

  /** Forget the failed pair `entry` (both indexes), and its peer's departure if it was its last. */
  #dropFailed(entry: string): void {
    this.#failed.delete(entry);
    const peerId = entry.slice(0, entry.indexOf(" "));
    const ofPeer = this.#failedOf.get(peerId);
    ofPeer?.delete(entry);
    if (ofPeer?.size === 0) {
      this.#failedOf.delete(peerId);
      this.#settle(peerId);
    }
  }

  /** Whether this node holds a failed audit, a strike or a demotion against `id`. */
  #penalizes(id: string): boolean {
    return this.#failedOf.has(id) || this.#strikes.has(id) || this.#demoted.has(id);
  }

  /**
   * `id` may have nothing left against it: then its departure goes too, so departures stay one per
   * penalized peer ({@link MAX_DEPARTURES}).
   */
  #settle(id: string): void {
    if (!this.#penalizes(id)) this.#departed.delete(id);
  }

  /**
   * Forget the strikes of the holders struck longest ago, and the demotions of those demoted
   * longest ago, past {@link MAX_PENALIZED_PEERS} each.
   */
  #bound(): void {
    for (const map of [this.#strikes, this.#demoted]) {
      for (const id of map.keys()) {
        if (map.size <= MAX_PENALIZED_PEERS) break;
        map.delete(id);
        this.#settle(id);
      }
    }
  }

  /** Forget what this node's audits found against `id`: its own pairs, not a scan of all. */
  #forget(id: string): void {
    for (const entry of this.#failedOf.get(id) ?? []) this.#failed.delete(entry);
    this.#failedOf.delete(id);
    this.#strikes.delete(id);
    this.#demoted.delete(id);
    this.#departed.delete(id);
  }
}

/** A `<peer id> <key>` pair. */
function pair(peerId: string, key: string): string {
  return `${peerId} ${key}`;
}

/**
 * What the file at `path` holds: its state; nothing (no file yet); or why it is not trusted, and
 * the label of its set-aside name (`rejected`, or `v<n>` for another version).
 */
async function readState(
  path: string,
): Promise<{ state: PenaltyState } | { problem?: string; label?: string }> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return {};
    throw error;
  }
  if (!info.isFile) return { problem: "is not a regular file" };
  if (info.size > MAX_AUDIT_PENALTIES_FILE_BYTES) {
    return {
      problem: `is ${info.size} bytes, more than any this node writes ` +
        `(${MAX_AUDIT_PENALTIES_FILE_BYTES})`,
    };
  }
  let file: unknown;
  try {
    file = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(await Deno.readFile(path)));
  } catch {
    return { problem: "is damaged (not JSON)" };
  }
  if (!isRecord(file) || file.format !== FORMAT) {
    return { problem: `is not an ${FORMAT} file` };
  }
  if (file.version !== VERSION) {
    const version = file.version;
    const label = typeof version === "number" && Number.isSafeInteger(version) && version >= 0
      ? `v${version}`
      : "rejected";
    return {
      problem: `is in version ${JSON.stringify(version)} of the ${FORMAT} format, which this ` +
        `node does not read (it reads version ${VERSION})`,
      label,
    };
  }
  const state = JSON.stringify(file.state);
  if (
    typeof file.check !== "string" || state === undefined ||
    sha256Hex(new TextEncoder().encode(state)) !== file.check
  ) {
    return { problem: "is damaged (its check does not match)" };
  }
  const problem = stateProblem(file.state);
  if (problem !== undefined) return { problem: `holds ${problem}, which this node never writes` };
  return { state: file.state as PenaltyState };
}

/** Why `value` is not a state this code writes; `undefined` when it is one. */
function stateProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return "no state";
  const { round, failed, strikes, demoted, departed } = value;
  if (!isCount(round)) return "a round count that is no count";
  const struck = (rounds: unknown) =>
    Array.isArray(rounds) && rounds.length > 0 && rounds.length <= STRIKE_WINDOW_ROUNDS &&
    rounds.every((r, i) => isCount(r) && r <= round && (i === 0 || r > rounds[i - 1]));
  const lasting = (until: unknown) =>
    isCount(until) && until >= round && until <= round + DEMOTION_ROUNDS;
  const lists = [
    ["failed-audit", failed, MAX_FAILED_AUDITS, isName, "a chunk key that is no key"],
    ["strike", strikes, MAX_PENALIZED_PEERS, struck, "a strike after the round it names"],
    [
      "demotion",
      demoted,
      MAX_PENALIZED_PEERS,
      lasting,
      `one longer than ${DEMOTION_ROUNDS} rounds`,
    ],
    ["departure", departed, MAX_DEPARTURES, isCount, "a time that is no count"],
  ] as const;
  for (const [name, list, max, ok, notOk] of lists) {
    const why = listProblem(list, max, ok, notOk);
    if (why !== undefined) return `a bad ${name} list (${why})`;
  }
  return undefined;
}

/**
 * Why `list` is not a list of at most `max` `[id, value]` pairs, each `value` passing `ok`
 * (`notOk` says what a failing one is); `undefined` when it is one. Says which part failed: a long
 * id was reported as a demotion too long (review s76 vstore F4).
 */
function listProblem(
  list: unknown,
  max: number,
  ok: (value: unknown) => boolean,
  notOk: string,
): string | undefined {
  if (!Array.isArray(list)) return "not a list";
  if (list.length > max) return `${list.length} entries, more than ${max}`;
  for (const entry of list) {
    if (!Array.isArray(entry) || entry.length !== 2) return "an entry that is not a pair";
    if (!isName(entry[0])) {
      return `an id that is empty, has a space or is over ${MAX_NAME_CHARS} characters`;
    }
    if (!ok(entry[1])) return notOk;
  }
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * An id or key this code records and reads back (see {@link MAX_NAME_CHARS}): checked where one is
 * recorded and where the file is read, so the two agree.
 */
function isName(value: unknown): boolean {
  return typeof value === "string" && value.length > 0 && value.length <= MAX_NAME_CHARS &&
    !value.includes(" ");
}
