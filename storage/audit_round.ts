/**
 * Which holders a storage node audits in one round, on which chunks (`actors/storage_actor.ts`
 * runs the rounds on a timer, `storage.auditIntervalMs`): for each of its storage peers, up to
 * {@link AUDIT_CHUNKS_PER_HOLDER} chunks drawn uniformly from its record of what it gave that peer
 * (`given_chunks.ts`), among those the peer still counts as a copy of (a holder or a stand-in by
 * the rendezvous placement), with a CSPRNG so no holder can tell which it will be asked for
 * ({@link planFromGiven}). Each chunk a holder was given is as likely to be asked as any other,
 * so one that dropped a fraction f of them escapes a round with probability at most about
 * (1-f)^4, whatever files they came from: a round that picked 8 files uniformly, then chunks among
 * them, let a holder that dropped one large file (91 % of its chunks) escape 96 % of rounds
 * (review s81 store, F2). A chunk the node never gave a peer (it was down, or joined later) is
 * not asked: the auditor could not blame it for lacking one (`audit.ts`, `never_given`). A few
 * files picked at random are still listed each round, for what their holders were never given
 * ({@link planPlacementChecks}).
 *
 * @module
 */
import type { AuditFailure, AuditResult } from "./audit.ts";
import type { RepairReport } from "./replicated_store.ts";
import type { StoragePeer } from "./storage_peer.ts";
import type { IndexedChunks } from "./_indexed_keys.ts";
import { sample, secureBelow } from "./_crypto_sample.ts";
import {
  type AuditSweeps,
  SWEEP_CHUNKS_PER_ROUND,
  SWEEP_CHUNKS_PER_ROUND_ALL,
} from "./audit_sweeps.ts";
import { MAX_PROVE_CIDS } from "../protocols/storage_messages.ts";

/**
 * Files sampled per round for the placement checks ({@link planPlacementChecks}): each costs
 * listing its blocks (its manifest or DAG nodes read). Audits draw from the record of what each
 * holder was given instead ({@link planFromGiven}).
 */
export const AUDIT_FILES_PER_ROUND = 8;
/**
 * Chunks asked of each holder per round (each costs the auditor one verified reference copy,
 * 256 KiB at most, and the holder one read), drawn uniformly from what it was given and still
 * counts for ({@link planFromGiven}): a holder that dropped a fraction f of those passes one round
 * with probability at most about (1-f)^4, and rounds compound.
 */
export const AUDIT_CHUNKS_PER_HOLDER = 4;
/**
 * Chunks of a holder's record a round draws at most, {@link AUDIT_CHUNKS_PER_HOLDER} times this,
 * to find the ones it still counts as a copy of: each costs a rendezvous ranking. A holder that
 * counts for fewer than 1 in 16 of the chunks it was given (the peer set changed much since) may
 * be asked fewer than {@link AUDIT_CHUNKS_PER_HOLDER} in a round.
 */
export const AUDIT_DRAWS_PER_HOLDER = 16;

/**
 * Blocks a round ranks between two turns of the event loop: ranking is a hash per peer per block
 * (20,000 blocks among 10 peers took ~3 s here), so a round over large files yields as holder
 * repair does.
 */
const RANK_SLICE = 512;

/** No stand-ins: one array for every block that has none. */
const NO_PEERS: readonly StoragePeer[] = [];

/** Where a round's plan reads the placement and the record of what was given. */
export interface AuditPlanSources {
  /** The peers that should hold `cid` (the rendezvous placement over the current peers). */
  holders(cid: string): readonly StoragePeer[];
  /**
   * The peers past the holders that were given `cid` (`ReplicatedStore.standIns`): a stand-in
   * for a full holder holds one of its r copies and is audited like a holder; without this
   * nobody ever asked it. Default none.
   */
  standIns?(cid: string): readonly StoragePeer[];
  /** Whether this node gave (or saw prove) `cid` to the peer with id `peerId`. */
  wasGiven(peerId: string, cid: string): boolean;
  /** This node's own holder id, never audited by itself. */
  selfId?: string;
  /** Uniform integers in [0, n); default from `crypto.getRandomValues`. */
  randomBelow?: (n: number) => number;
}

/** One holder and the chunks to ask it. */
export interface AuditAssignment {
  /** The holder. */
  peer: StoragePeer;
  /** Chunks to ask it for (storage keys), at most {@link AUDIT_CHUNKS_PER_HOLDER}. */
  cids: string[];
}

/**
 * The round's assignments over `chunks` (the storage keys of the sampled files): for each
 * holder other than this node, and each stand-in past the holders, up to `perHolder` chunks it
 * should hold and was given. A round plans so only where it has no record of what each peer was
 * given ({@link planFromGiven}): a holder's chances here depend on which files were sampled.
 */
export function planAuditRound(
  chunks: Iterable<string>,
  sources: AuditPlanSources,
  perHolder = AUDIT_CHUNKS_PER_HOLDER,
): AuditAssignment[] {
  const byHolder = new Map<string, { peer: StoragePeer; cids: string[] }>();
  for (const cid of new Set(chunks)) {
    for (const peer of [...sources.holders(cid), ...sources.standIns?.(cid) ?? []]) {
      if (peer.id === sources.selfId || !sources.wasGiven(peer.id, cid)) continue;
      let entry = byHolder.get(peer.id);
      if (entry === undefined) byHolder.set(peer.id, entry = { peer, cids: [] });
      entry.cids.push(cid);
    }
  }
  const randomBelow = sources.randomBelow ?? secureBelow;
  return [...byHolder.values()].map(({ peer, cids }) => ({
    peer,
    cids: sample(cids, perHolder, randomBelow),
  }));
}

/**
 * The round's assignments drawn from the record of what each holder was given (`given`): for
 * each of `peers` other than this node, up to `perHolder` chunks uniformly among those in its
 * record that it still counts as a copy of (a holder or a stand-in of the chunk, and given it),
 * with at most `perHolder` × {@link AUDIT_DRAWS_PER_HOLDER} draws (a rendezvous ranking each): a
 * round's work is bounded by the peer count, not by the files or their size. Each chunk a holder
 * counts for is as likely to be asked as any other, so one that dropped a fraction f of them
 * escapes with probability at most about (1-f)^4 (review s81 store, F2: sampling files first let
 * a holder that dropped one large file escape most rounds). A peer with none is not audited.
 *
 * @example
 * ```ts
 * import { planFromGiven } from "./audit_round.ts";
 * import type { StoragePeer } from "./storage_peer.ts";
 * const peer = (id: string) => ({ id }) as StoragePeer;
 * const plan = planFromGiven([peer("a"), peer("b")], (id) => id === "a" ? ["k1", "k2"] : [], {
 *   holders: () => [peer("a"), peer("b")],
 *   wasGiven: () => true,
 * }); // [{ peer: a, cids: ["k2", "k1"] }] (in a random order)
 * ```
 */
export function planFromGiven(
  peers: readonly StoragePeer[],
  given: (peerId: string) => IndexedChunks,
  sources: AuditPlanSources,
  perHolder = AUDIT_CHUNKS_PER_HOLDER,
): AuditAssignment[] {
  const randomBelow = sources.randomBelow ?? secureBelow;
  const out: AuditAssignment[] = [];
  for (const peer of peers) {
    if (peer.id === sources.selfId) continue;
    const counts = (cid: string) =>
      sources.wasGiven(peer.id, cid) &&
      [...sources.holders(cid), ...sources.standIns?.(cid) ?? NO_PEERS].some((p) =>
        p.id === peer.id
      );
    // A partial Fisher–Yates over its record, read by position and never copied (review s81
    // vaudit, F4: a copy of every peer's whole record each round): the positions swapped so far
    // are kept aside (`moved`), at most one per draw. Draws without replacement, each uniform
    // among those not drawn yet, so the ones kept are uniform among those that count.
    const record = given(peer.id);
    const n = record.length;
    const moved = new Map<number, string>();
    const at = (i: number) => moved.get(i) ?? record.at(i)!;
    const cids: string[] = [];
    const draws = Math.min(n, perHolder * AUDIT_DRAWS_PER_HOLDER);
    for (let i = 0; i < draws && cids.length < perHolder; i++) {
      const j = i + randomBelow(n - i);
      const drawn = at(j);
      moved.set(j, at(i)); // position i is never read again
      if (counts(drawn)) cids.push(drawn);
    }
    if (cids.length > 0) out.push({ peer, cids });
  }
  return out;
}

/**
 * The chunks among `chunks` that some holder other than this node should hold but was never
 * given (nor proved), up to `perHolder` per holder, drawn like {@link planAuditRound}'s: nobody
 * can blame that holder for lacking one, and an owner that crashed between a put's quorum and its
 * remaining copies leaves the chunk below r copies until it is checked. A round repairs them (a
 * proof from each holder, a copy where one lacks it), and what a holder proves or is given is
 * recorded. A holder that joins or comes back, and a pin another process made here, get all of
 * theirs at once from holder repair's catch-up (`HolderRepair.catchUp`, review s79 F1): this is
 * the safety net behind it, a few a round.
 */
export function planPlacementChecks(
  chunks: Iterable<string>,
  sources: AuditPlanSources,
  perHolder = AUDIT_CHUNKS_PER_HOLDER,
): string[] {
  const byHolder = new Map<string, string[]>();
  for (const cid of new Set(chunks)) {
    for (const id of unplacedHolders(cid, sources) ?? []) {
      let cids = byHolder.get(id);
      if (cids === undefined) byHolder.set(id, cids = []);
      cids.push(cid);
    }
  }
  const randomBelow = sources.randomBelow ?? secureBelow;
  const out = new Set<string>();
  for (const cids of byHolder.values()) {
    for (const cid of sample(cids, perHolder, randomBelow)) out.add(cid);
  }
  return [...out];
}

/**
 * The ids of the holders of `cid` other than this node that were never given it (nor proved it),
 * by the given-chunks log; `undefined` when every holder was. What {@link planPlacementChecks}
 * samples a few of per round, and what holder repair's catch-up (`holder_repair.ts`,
 * `HolderRepair.catchUp`) checks all of, once, when a holder joins or a pin appears here that this
 * node did not write.
 *
 * @example
 * ```ts
 * import { unplacedHolders } from "./audit_round.ts";
 * import type { StoragePeer } from "./storage_peer.ts";
 * const peer = (id: string) => ({ id }) as StoragePeer;
 * const missing = unplacedHolders("bafk…", {
 *   holders: () => [peer("a"), peer("b"), peer("c")],
 *   wasGiven: (peerId) => peerId === "b",
 *   selfId: "a",
 * }); // Set {"c"}
 * ```
 */
export function unplacedHolders(
  cid: string,
  sources: Pick<AuditPlanSources, "holders" | "wasGiven" | "selfId">,
): Set<string> | undefined {
  let out: Set<string> | undefined;
  for (const peer of sources.holders(cid)) {
    if (peer.id === sources.selfId || sources.wasGiven(peer.id, cid)) continue;
    (out ??= new Set()).add(peer.id);
  }
  return out;
}

/** What one audit round did ({@link runAuditRound}). */
export interface AuditRoundReport {
  /** Files whose chunks were sampled. */
  files: number;
  /** Holders audited. */
  holders: number;
  /** Chunks asked, over all holders. */
  chunks: number;
  /** Holders that failed on at least one chunk (each a signed verdict, recorded). */
  failedHolders: number;
  /** Chunks some holder failed on (storage keys): repaired before the round ends. */
  failedChunks: string[];
  /** Chunks a round could not judge (no reference copy, or never given). */
  unjudged: number;
  /**
   * Chunks checked because a holder was never given them ({@link planPlacementChecks}),
   * repaired with the failed ones.
   */
  unplaced: number;
  /** Copies written by the repair of the failed and unplaced chunks. */
  repaired: number;
  /** Files that could not be listed and holders that could not be audited (tried next round). */
  errors: number;
}

/** What {@link runAuditRound} works with. */
export interface AuditRoundDeps extends AuditPlanSources {
  /**
   * The node's replicated files (their roots), of which a round samples a few for the placement
   * checks ({@link planPlacementChecks}), and, without {@link givenTo} and {@link peers}, for the
   * audits ({@link planAuditRound}).
   */
  roots: readonly string[];
  /**
   * The storage peers a round audits, each on chunks drawn from its record
   * ({@link planFromGiven}, with {@link givenTo}). Default none: the audits are planned over the
   * sampled files' chunks ({@link planAuditRound}), where a holder's chances depend on which files
   * its chunks came from.
   */
  peers?: readonly StoragePeer[];
  /** The storage keys of a file's blocks. */
  blocksOf(root: string): Promise<string[]>;
  /**
   * The peer with id `peerId` as the peer set has it now, or `undefined` once it has left. A round
   * asks each holder at its turn through this: planned at the start, a holder that left meanwhile
   * (an orderly restart) was challenged on the connection it had left behind and signed a
   * `no_response` verdict for an honest departure, which holder repair already handles (review
   * s62); one back on a new connection is asked on that one. Default: the peer as planned.
   */
  peer?(peerId: string): StoragePeer | undefined;
  /**
   * Audit `peer` on `cids` (signing a verdict on failure: `StorageAuditor`), sampling `sampleSize`
   * of them (default the auditor's own: {@link AUDIT_CHUNKS_PER_HOLDER}); a sweep asks for all.
   */
  audit(peer: StoragePeer, cids: string[], sampleSize?: number): Promise<AuditResult>;
  /**
   * The sweeps of holders that failed an audit (`audit_sweeps.ts`), kept by the caller from one
   * round to the next: a holder that fails in a round starts one over {@link givenTo}, and each
   * round checks the next chunks of each, at most {@link SWEEP_CHUNKS_PER_ROUND} of one and
   * {@link SWEEP_CHUNKS_PER_ROUND_ALL} of all. Default none: sampling only.
   */
  sweeps?: AuditSweeps;
  /**
   * The chunks (storage keys) the peer with id `peerId` was recorded as given: what a round draws
   * its audits from ({@link peers}), and a sweep goes through. Default none.
   */
  givenTo?(peerId: string): readonly string[];
  /**
   * The same record read by position, without a copy (`GivenChunks.recordOf`): what a round draws
   * from when given, so its work stays bounded by the peer count (review s81 vaudit, F4).
   * Default: {@link givenTo}.
   */
  givenRecord?(peerId: string): IndexedChunks;
  /**
   * Whether the record of what the peer with id `peerId` was given is still kept (it is here, or
   * away for less than the departed-holder retention: `GivenChunks.retained`). A sweep of one
   * whose record was dropped is dropped with it. Default: kept.
   */
  retained?(peerId: string): boolean;
  /**
   * Whether the peer with id `peerId` failed this node's audit of `cid` and holds no good copy of
   * it since (`ReplicatedStore.failedAuditOf`): a sweep does not ask it again, so one loss is one
   * verdict also where every peer is a holder (peers ≤ r). Default: never.
   */
  failedAuditOf?(peerId: string, cid: string): boolean;
  /**
   * The peer with id `peerId`, swept after it showed a loss, went silent on a sweep challenge:
   * `cids`, the rest of its slice, no longer count as its copies (`ReplicatedStore.unproven`: placed
   * last for them, no strike, no verdict), and are repaired with the round's failures. Default
   * none: the rest is asked at a later round.
   */
  unproven?(peerId: string, cids: readonly string[]): void;
  /** Restore r copies of `cids`. */
  repair(cids: string[]): Promise<RepairReport>;
  /** Aborted: the round stops after the holder being audited (the node is stopping). */
  signal?: AbortSignal;
}

/**
 * One round: plan (each peer's chunks drawn from its record: {@link planFromGiven}; without one,
 * among the sampled files' chunks: {@link planAuditRound}), audit each holder in turn, then repair
 * the chunks any holder failed on, so a lost copy is restored as soon as it is found, and a few
 * of the sampled files' chunks that some holder was never given ({@link planPlacementChecks}), so
 * a copy never placed is.
 */
export async function runAuditRound(deps: AuditRoundDeps): Promise<AuditRoundReport> {
  const report: AuditRoundReport = {
    files: 0,
    holders: 0,
    chunks: 0,
    failedHolders: 0,
    failedChunks: [],
    unjudged: 0,
    unplaced: 0,
    repaired: 0,
    errors: 0,
  };
  const chunks: string[] = [];
  for (const root of sample(deps.roots, AUDIT_FILES_PER_ROUND, deps.randomBelow)) {
    try {
      // One push per block, not `push(...blocks)`: an argument per block overflowed the stack
      // past ~125,000 blocks (a 32 GB file), and such a file was never audited.
      for (const block of await deps.blocksOf(root)) chunks.push(block);
      report.files++;
    } catch {
      report.errors++; // unreadable now (its holders away): the next round may pick it
    }
  }
  // Each block ranked once for both plans, a slice at a time: planned in one go, a round held the
  // event loop (HTTP, actors, token streams) for seconds and ranked every block twice.
  const placement = new Map<
    string,
    { holders: readonly StoragePeer[]; standIns: readonly StoragePeer[] }
  >();
  for (const cid of chunks) {
    if (placement.has(cid)) continue;
    placement.set(cid, { holders: deps.holders(cid), standIns: deps.standIns?.(cid) ?? NO_PEERS });
    if (placement.size % RANK_SLICE === 0) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (deps.signal?.aborted) return report;
    }
  }
  const placed: AuditPlanSources = {
    ...deps,
    holders: (cid) => placement.get(cid)?.holders ?? NO_PEERS,
    standIns: (cid) => placement.get(cid)?.standIns ?? NO_PEERS,
  };
  const failed = new Set<string>();
  const plan = deps.peers !== undefined && deps.givenTo !== undefined
    ? planFromGiven(deps.peers, deps.givenRecord ?? deps.givenTo, deps)
    : planAuditRound(chunks, placed);
  for (const { peer: planned, cids } of plan) {
    if (deps.signal?.aborted) return report;
    const peer = deps.peer === undefined ? planned : deps.peer(planned.id);
    if (peer === undefined) {
      report.errors++; // it left: not reached (its record of what it was given is kept)
      continue;
    }
    let result: AuditResult;
    try {
      result = await deps.audit(peer, cids);
    } catch {
      report.errors++;
      continue;
    }
    report.holders++;
    report.chunks += result.sampled.length;
    report.unjudged += result.unjudged.length;
    if (result.failures.length > 0) report.failedHolders++;
    if (result.failures.some(showsLoss)) deps.sweeps?.start(peer, deps.givenTo?.(peer.id) ?? []);
    for (const failure of result.failures) failed.add(failure.cid);
  }
  if (deps.sweeps !== undefined) await sweep(deps, deps.sweeps, report, failed);
  report.failedChunks = [...failed];
  const unplaced = planPlacementChecks(chunks, placed).filter((cid) => !failed.has(cid));
  report.unplaced = unplaced.length;
  if (deps.signal?.aborted) return report;
  const repair = [...report.failedChunks, ...unplaced];
  if (repair.length > 0) report.repaired = (await deps.repair(repair)).repaired;
  return report;
}

/**
 * Check the next chunks of the holders being swept (a holder that failed an audit:
 * `audit_sweeps.ts`), those of which each still counts as a copy (a holder or a stand-in, given
 * it, and not already failed by it), a challenge of {@link MAX_PROVE_CIDS} at a time; what it
 * fails is added to `failed`, repaired with the round's. The round's sweeps share
 * {@link SWEEP_CHUNKS_PER_ROUND_ALL} chunks: each sweep in turn takes an equal part of what is
 * left, at most {@link SWEEP_CHUNKS_PER_ROUND}. A holder not reached (this side's fault) keeps its
 * slice for a later round; one that goes silent has the rest of its slice re-placed unproven.
 */
async function sweep(
  deps: AuditRoundDeps,
  sweeps: AuditSweeps,
  report: AuditRoundReport,
  failed: Set<string>,
): Promise<void> {
  const pending = sweeps.pending();
  let budget = SWEEP_CHUNKS_PER_ROUND_ALL;
  for (const [turn, planned] of pending.entries()) {
    if (deps.signal?.aborted || budget <= 0) return;
    if (deps.retained?.(planned.id) === false) {
      sweeps.drop(planned.id); // its record is gone (away past its retention): so is its sweep
      continue;
    }
    const peer = deps.peer === undefined ? planned : deps.peer(planned.id);
    if (peer === undefined) continue; // away: its sweep waits (its record is kept a while)
    const counts = (cid: string) =>
      deps.wasGiven(peer.id, cid) && deps.failedAuditOf?.(peer.id, cid) !== true &&
      [...deps.holders(cid), ...deps.standIns?.(cid) ?? []].some((p) => p.id === peer.id);
    // An equal part of what is left among this sweep and those after it (rounded up, so the
    // budget is spent; one whose holder is away leaves its part to the next).
    const share = Math.min(SWEEP_CHUNKS_PER_ROUND, Math.ceil(budget / (pending.length - turn)));
    const slice = sweeps.take(peer.id, share, counts);
    budget -= slice.length;
    for (let at = 0; at < slice.length; at += MAX_PROVE_CIDS) {
      const challenge = slice.slice(at, at + MAX_PROVE_CIDS);
      if (deps.signal?.aborted) return sweeps.putBack(peer, slice.slice(at));
      let result: AuditResult;
      try {
        result = await deps.audit(peer, challenge, challenge.length);
      } catch {
        report.errors++;
        sweeps.putBack(peer, slice.slice(at)); // not reached: the rest at a later round
        break;
      }
      report.chunks += result.sampled.length;
      report.unjudged += result.unjudged.length;
      for (const failure of result.failures) failed.add(failure.cid);
      if (result.failures.length > 0 && !result.failures.some(showsLoss)) {
        // It stopped answering mid-sweep. Asked on, each challenge of the rest would be signed
        // `no_response`, against a holder that may hold them all; put back, a holder that lost
        // chunks and went silent on every sweep challenge (their size tells them from a round's
        // sample) had one challenge a round repaired, 6 rounds where a plain liar took 2 (review
        // s75 verify, finding 2). It has shown a loss: the rest of its slice is not counted as its
        // copies, re-placed without a proof or a verdict, and its sweep goes on next round.
        const rest = slice.slice(at + MAX_PROVE_CIDS);
        if (deps.unproven === undefined) sweeps.putBack(peer, rest);
        else if (rest.length > 0) {
          deps.unproven(peer.id, rest);
          for (const cid of rest) failed.add(cid);
        }
        break;
      }
    }
  }
}

/**
 * Whether a failure shows the holder lacks what it was given: it answered, without a right proof.
 * `no_response` shows nothing of the kind (an honest holder unreachable for a round gets it), so
 * it starts no sweep: holder repair and demotion deal with a holder that keeps not answering.
 */
function showsLoss(failure: AuditFailure): boolean {
  return failure.reason !== "no_response";
}
