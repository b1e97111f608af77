/**
 * Which worker a router sends a job to, as a pure function over what the router knows of its
 * peers (their hellos, this node's ledger, its own requests in flight), so the rule can be read
 * and tested in one place:
 *
 * 1. **Eligible**: serves the job's model; not convicted in this node's ledger; not excluded
 *    (a worker that just failed this job).
 * 2. **Has capacity**: a free slot or queue place, counting the larger of its hello's running +
 *    queued jobs and this node's jobs in flight to it (a hello lags a burst of jobs this router
 *    just sent; its other requests — a receipt announcement, a catch-up's receipts, a proof
 *    fetch — are no load on its model and do not count). When none has, every eligible worker stays in (the job queues there, or
 *    is refused with `too_many_jobs`).
 * 3. **Standing**: a worker whose free stake in this node's ledger covers the job's worst-case
 *    lock (`WorkerNeeds.lock`, `_job_stake_lock.ts`: it can back the receipt, so validators will
 *    record and pay it) before one whose free stake does not; without a lock given, any free
 *    stake. A receipt locks `slashMultiplier ×` its reward, prompt tokens included: ranked
 *    "backed" for any free stake, a worker of small stake (or a busy one at the default stake)
 *    did the work and had its receipt refused `insufficient_stake`, unpaid (review s78 vprompt
 *    F2). A worker not backed for the job is still chosen where no backed one is eligible, as an
 *    unstaked one always was: it refuses a job it cannot back before the work
 *    (`node/_stake_backed_port.ts`), and the router asks the next. The free stake is less the
 *    locks of this node's own jobs sent to it and not ended (`WorkerCandidate.held`): read from
 *    the ledger alone, a burst of N jobs all went to a worker whose stake backed one, and N − 1
 *    were refused there, a round trip each, or a 503 where nobody else had the model (stop 80).
 * 4. **Track record**: a *proven* worker — one that ran more jobs to their end for this node
 *    than it failed (`worker_record.ts`), or, on a router that keeps a ledger, one with earned
 *    credit there of at least `PROVEN_CREDIT_FLOOR` (balance: finished, unchallenged work), no
 *    net failures here and no suspect address group — before a
 *    *stranger* (a key with neither); a *suspect* stranger — its key failed here, or a key of its
 *    address group did lately (`worker_record.ts`: keys are free, a host is not) — after every
 *    other. What a worker has done outranks what its hello claims: four fresh keys that claimed
 *    to be idle and dropped each job took every try of every job ahead of a busy honest worker
 *    with room (review s76 wirepeer F1–F3), and a pledge of stake is free to any new key, so
 *    stake alone (rule 3) proves nothing. Claims of load (rules 5–7) decide among workers of
 *    like standing.
 *
 *    A newcomer must still get work, or no new node ever joins: on a *newcomer's turn* (the
 *    router grants at most one pick in `NEWCOMER_EVERY`, `_worker_routing.ts`) a clean stranger
 *    with a free slot comes before the proven workers, the one this router has known longest
 *    first (not the one claiming most room: fresh keys claim to be idle). And a job never gives a second try to a
 *    stranger while a proven worker has room once a stranger failed it (`strangerFailed`: the
 *    router's turn is not granted to it, and stake shown does not put a stranger first), so a host of fresh liars costs a job
 *    at most one failed try, which the failover recovers (`failover.ts`), and costs at most one
 *    job in `NEWCOMER_EVERY` even that. Where no proven worker has room, a job that lost a try
 *    to a stranger goes next to the stranger this router has known longest, before claims of
 *    load: a host that makes fresh keys for each job does not outrank a worker that was there
 *    before them.
 * 5. **A free slot**: a worker where the job starts at once (its running + queued jobs, or this
 *    node's jobs in flight to it, below its hello's `slots`) before one where it would wait in
 *    the queue, however less loaded: a queued job waits for a whole generation to end. The slots
 *    are the jobs the worker really runs side by side (its models' batch seats, `node_hello.ts`):
 *    a worker that seats 8 and runs 5 takes the job before one that seats 1 and runs 1.
 * 6. **Locality**: when the job names an input by CID (`protocols/job_input.ts`), one of that
 *    CID's storage holders first: it reads the input from its own disk, where another fetches it
 *    from them. The router computes the holders as its storage places chunks (rendezvous over its
 *    storage peers and itself, `NetworkActor`), and sets `holdsInput` for them.
 * 7. **Load**: the least loaded — the larger of its hello's running + queued jobs and this
 *    node's jobs in flight to it (hellos lag; our own count does not).
 *
 * A worker connected more than once (a TCP connection each way, a swarm one) is a candidate per
 * connection, and this node's jobs in flight to it are those on all of them: counted per
 * connection, a worker with one slot looked free on its second connection with a job running
 * from the first, and a peer that opened more connections took that many more jobs.
 * 8. **Credit**: the higher ledger balance, then the better net record here.
 *
 * Ties keep the candidates' order (the order peers connected).
 *
 * Workers a hello's claim of room cannot be believed of, because they lately refused a job as
 * full, are passed to it as excluded by the router's port and chosen among only when no other
 * is eligible (`busy_refusals.ts`, `network_inference_port.ts`).
 *
 * @module
 */
import { hasCapacity, type PeerLoad } from "../protocols/peer_hello.ts";
import { DEFAULT_MAX_TOKENS } from "../protocols/job_token_bounds.ts";
import type { WorkerStanding } from "./worker_record.ts";
import { freeStake } from "../proof/_ledger_amounts.ts";

/** What the router knows of one peer that serves inference. */
export interface WorkerCandidate {
  /** Hex public key. */
  key: string;
  /** CIDs of the models it serves. */
  models: readonly string[];
  /** Slashed in this node's ledger. */
  convicted: boolean;
  /** Its last hello's load, if it sent one. */
  load?: PeerLoad;
  /** Jobs this node has in flight to it on this connection (summed over the key's). */
  inFlight: number;
  /** Its account in this node's ledger, if this node keeps one. */
  standing?: { stake: number; locked: number; balance: number };
  /**
   * The worst-case locks (`_job_stake_lock.ts`) of the jobs this node sent it that have not ended
   * here: their receipts are not in `standing` yet, and will lock its free stake there.
   */
  held?: number;
  /** Whether it holds the job's input CID (a storage holder of it). */
  holdsInput?: boolean;
  /** Its record at this router (`worker_record.ts`); absent: none (a stranger, not suspect). */
  record?: WorkerStanding;
}

/** What the job needs. */
export interface WorkerNeeds {
  /** The job's model CID; absent: any model. */
  model?: string;
  /** Hex keys not to pick. */
  exclude?: readonly string[];
  /** A newcomer's turn: a clean stranger with a free slot before the proven (rule 4). */
  newcomerTurn?: boolean;
  /**
   * A stranger failed the job already (or failed here lately and is excluded as asked last): no
   * other stranger while a proven worker has room, and among strangers the one known longest
   * first (rule 4).
   */
  strangerFailed?: boolean;
  /**
   * The most stake the job's receipt can lock in this node's ledger (`_job_stake_lock.ts`): a
   * worker is backed for it (rule 3) only when its free stake there is at least this. Absent:
   * any free stake backs it.
   */
  lock?: number;
}

/**
 * Least ledger balance that makes a key with no record here proven (rule 4): four receipts of
 * the default size (`DEFAULT_MAX_TOKENS` tokens at the default price of 1 credit a token,
 * `proof/economics.ts`). One credit is a one-token receipt a fresh key can assign to itself and
 * have finalized in one challenge window: with any balance counting, fresh keys holding 1 took
 * the first try of 16 of 16 jobs ahead of an honest worker holding 500,000 (review s76 vroute
 * F2). A floor of several whole jobs' work makes each such key cost real work first.
 */
export const PROVEN_CREDIT_FLOOR: number = 4 * DEFAULT_MAX_TOKENS;

/**
 * Whether `c` is proven (rule 4): it ran more jobs to their end here than it failed, or it has
 * earned credit in this node's ledger and no net failures here.
 *
 * @example
 * ```ts
 * import { isProven } from "./worker_choice.ts";
 * console.log(isProven({ record: { net: 2, suspect: false } })); // true
 * console.log(isProven({ standing: { stake: 1, locked: 0, balance: 0 } })); // false
 * ```
 */
export function isProven(c: Pick<WorkerCandidate, "record" | "standing">): boolean {
  const net = c.record?.net ?? 0;
  if (net > 0) return true;
  // Credit counts only for a key with no net failure here and no suspect address group: what it
  // did at this router outweighs what other routers paid it (review s76 vroute F2).
  return net === 0 && c.record?.suspect !== true &&
    (c.standing?.balance ?? 0) >= PROVEN_CREDIT_FLOOR;
}

/**
 * The best candidate for a job by the module's rules, or `undefined` when none is eligible.
 *
 * @example
 * ```ts
 * import { chooseWorker } from "./worker_choice.ts";
 * const busy = { running: 4, queued: 0, slots: 4, queueLimit: 0 };
 * const idle = { running: 0, queued: 0, slots: 4, queueLimit: 0 };
 * const pick = chooseWorker([
 *   { key: "aa", models: ["m"], convicted: false, load: busy, inFlight: 0 },
 *   { key: "bb", models: ["m"], convicted: false, load: idle, inFlight: 0 },
 * ], { model: "m" });
 * console.log(pick?.key); // bb
 * ```
 */
export function chooseWorker<C extends WorkerCandidate>(
  candidates: readonly C[],
  needs: WorkerNeeds,
): C | undefined {
  const exclude = new Set(needs.exclude ?? []);
  const sent = new Map<string, number>();
  for (const c of candidates) sent.set(c.key, (sent.get(c.key) ?? 0) + c.inFlight);
  const busyness = (c: WorkerCandidate) => busynessOf(c, sent.get(c.key) ?? c.inFlight);
  const eligible = candidates.filter((c) =>
    !c.convicted && !exclude.has(c.key) && c.models.length > 0 &&
    (needs.model === undefined || c.models.includes(needs.model))
  );
  const free = eligible.filter((c) =>
    c.load === undefined || hasCapacity({ ...c.load, running: busyness(c), queued: 0 })
  );
  let pool = free.length > 0 ? free : eligible;
  if (needs.strangerFailed) {
    // A job a stranger failed already goes to a proven worker with room, whatever stake
    // another stranger shows (rule 4).
    const provenFree = free.filter(isProven);
    if (provenFree.length > 0) pool = provenFree;
  }
  let best: C | undefined;
  let bestScore: number[] = [];
  for (const c of pool) {
    const score = scoreOf(
      c,
      busyness(c),
      needs.newcomerTurn === true,
      needs.strangerFailed === true,
      needs.lock ?? 0,
    );
    if (best === undefined || better(score, bestScore)) {
      best = c;
      bestScore = score;
    }
  }
  return best;
}

/** Lexicographic score, smaller is better. */
function scoreOf(
  c: WorkerCandidate,
  busyness: number,
  newcomerTurn: boolean,
  strangerFailed: boolean,
  lock: number,
): number[] {
  const backed = isBacked(c, lock);
  // No hello yet: its slots are unknown, and it is not taken for full.
  const queues = c.load !== undefined && busyness >= c.load.slots;
  const tier = recordTier(c, newcomerTurn && !queues);
  // A job that lost a try to a stranger already, with no proven worker with room: the stranger
  // known longest next, not the one claiming most room (fresh keys each job). So on a newcomer's
  // turn among clean strangers: fresh keys claiming 0 running took every turn from an honest
  // newcomer that said it ran a job (review s76 vroute F4).
  const bySeniority = strangerFailed || (newcomerTurn && tier === 0 && !isProven(c));
  return [
    backed ? 0 : 1,
    tier,
    bySeniority ? (c.record?.since ?? Infinity) : 0,
    queues ? 1 : 0,
    c.holdsInput ? 0 : 1,
    busyness,
    -(c.standing?.balance ?? 0),
    -(c.record?.net ?? 0),
  ];
}

/**
 * Whether `c`'s free stake in this node's ledger, less what this node's jobs in flight to it hold
 * (`held`), backs a receipt locking `lock` (rule 3): some free stake, and at least `lock` of it.
 * A worker this node's ledger has no account of is not.
 *
 * @example
 * ```ts
 * import { isBacked } from "./worker_choice.ts";
 * const standing = { stake: 1_000, locked: 900, balance: 0 };
 * console.log(isBacked({ standing }, 100)); // true
 * console.log(isBacked({ standing }, 101)); // false
 * ```
 */
export function isBacked(c: Pick<WorkerCandidate, "standing" | "held">, lock: number): boolean {
  if (c.standing === undefined) return false;
  const free = freeStake(c.standing) - (c.held ?? 0);
  return free > 0 && free >= lock;
}

/**
 * Rule 4's order: proven 0, clean stranger 1, suspect stranger 2; on a newcomer's turn
 * (`turn`: for a stranger with a free slot) the clean stranger 0 and the proven 1.
 */
function recordTier(c: WorkerCandidate, turn: boolean): number {
  if (isProven(c)) return turn ? 1 : 0;
  if (c.record?.suspect === true) return 2;
  return turn ? 0 : 1;
}

/**
 * Jobs at the worker as this router best knows: its hello's count, or what it sent since
 * (`inFlight`: on all of the worker's connections).
 */
function busynessOf(c: WorkerCandidate, inFlight: number): number {
  return Math.max(inFlight, c.load ? c.load.running + c.load.queued : 0);
}

function better(a: number[], b: number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false; // a tie keeps the earlier candidate
}
