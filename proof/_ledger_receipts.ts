/**
 * Recording an inference receipt: what a receipt brought to the ledger is
 * ({@link receiptDecision}), decided in the writer's turn on what is recorded then — a new
 * pending receipt, its assignment arriving late, equivocation (a second, different receipt of
 * the same worker for the job: slashed on arrival), a job its requester assigned twice
 * ({@link doubleAssignment}: neither paid), a receipt refused because another worker's
 * receipt holds its job inside its window, kept as its worker's claim (`unrecorded_claim`,
 * `_ledger_unrecorded.ts`), one refused for want of stake, kept as its worker's claim too
 * (`_ledger_stake_refused.ts`), or a refusal. `Ledger.recordReceipt` writes what it
 * decides; `Ledger.receiptRefusal` asks it and writes nothing (`ledger.ts`). Not part of the
 * public API.
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import type { Receipt } from "../protocols/receipt.ts";
import { verifyAssignment } from "../protocols/assignment.ts";
import { isTokenWidth, MIN_COMMITMENT_CHUNK_SIZE } from "./commitment.ts";
import type { LedgerEntryKind } from "./ledger_entry.ts";
import { InsufficientStakeError, LedgerRejectedError } from "./ledger_errors.ts";
import { type ReceiptRecord, roundCredits } from "./ledger_state.ts";
import {
  equivocationSlash,
  freeStake,
  type LedgerView,
  lockOf,
  rewardOf,
  slashable,
} from "./_ledger_amounts.ts";
import { claimBody, unrecordedClaimEntry, unrecordedEquivocation } from "./_ledger_unrecorded.ts";
import { lateAssignment, takesAssignment } from "./_ledger_late_assignment.ts";
import { stakeRefusedClaim } from "./_ledger_stake_refused.ts";
import { encodeCanonical } from "../protocols/cbor.ts";
import { sha256Hex } from "../protocols/hash.ts";
import {
  cancelledReceiptKey,
  pairableKey,
  type PairedClaim,
  streamFraudKey,
} from "./ledger_index.ts";
import { steeringCover, steeringTakenLocks } from "./_ledger_steering.ts";

/**
 * What recording `receipt` (`check`: its signature verified) is, decided when called, on what
 * is recorded then: the entry to write, or a refusal thrown (see `Ledger.recordReceipt`).
 */
export function receiptDecision(
  view: LedgerView,
  receipt: Receipt,
  check: { receiptId: string },
  options: { assignment?: unknown; uncredited?: string },
): () => { kind: LedgerEntryKind; body: Record<string, unknown> } {
  const worker = toHex(receipt.worker);
  const reward = rewardOf(view, receipt);
  const locked = lockOf(view, reward);
  const assignment = options.assignment;
  const assigned = verifyAssignment(assignment, { jobId: receipt.jobId, worker: receipt.worker });
  const requester = assigned ? toHex(assignment.requester) : null;
  return () => {
    // A worker convicted here of streaming this job's tokens wrong is not paid for the job
    // (`stream_fraud`): recorded and judged as any receipt, credited nothing, even assigned (a
    // worker whose connection dropped after a last token it made up gets its assignment, and its
    // receipt asked for later).
    const streamConvicted = view.index.proofSettled(streamFraudKey(receipt.jobId, worker));
    const uncredited = options.uncredited ?? (streamConvicted ? "stream_convicted" : undefined);
    const credit = assigned && uncredited === undefined ? reward : 0;
    const firstId = view.index.jobReceipt(receipt.jobId);
    const first = firstId === undefined ? undefined : view.record(firstId);
    const mine = first !== undefined && first.worker === worker ? first : undefined;
    // The pair's other half, come before: a third claim must be one of the two, or it is
    // equivocation, slashed by the larger of the three claims (review s81 vpair F1). Read once,
    // here, and handed to `cancelledPair`.
    const paired = mine === undefined ? undefined : view.index.cancelledPair(mine.receiptId);
    // The worker's finished receipt and its cancelled one over the first k of the same tokens
    // (its requester's client cancelled after the worker's end): one claim, not equivocation.
    const pair = mine === undefined ? undefined : cancelledPair(view, mine, receipt, paired);
    // Another receipt of this worker for a job it already has one recorded for, claiming
    // other work (another output or token count): two signed answers to one job. Its own
    // signatures convict it; the first receipt is slashed (or, if already paid, its stake is
    // cut as much), by the larger of the two claims (`equivocationSlash`).
    if (
      first !== undefined && first.receiptId !== check.receiptId && first.worker === worker &&
      !view.index.equivocated(receipt.jobId) && pair === undefined
    ) {
      const claim = view.index.claim(receipt.jobId);
      // The same claim signed twice (fingerprints' last bits) is not equivocation: it is
      // refused below, not paid twice.
      // Pending evidence of this ledger's owner's steering conviction: the cut took its lock
      // already, so only what the larger claim adds is cut now, as for a proof of the other
      // claim (`steeringCover`, `_ledger_accusations.ts`). Stop 80: the conviction then this
      // receipt took 80 + 800 where this receipt first took 800.
      const cover = steeringCover(view, first);
      const larger = Math.max(locked, paired?.locked ?? 0);
      const slashed = cover === undefined ? equivocationSlash(view, first, larger) : roundCredits(
        equivocationSlash(view, first, larger, steeringTakenLocks(view, worker)) -
          slashable(view, first),
      );
      if (
        claim !== undefined &&
        (claim.outputHash !== receipt.outputHash || claim.tokens !== receipt.tokenCount) &&
        (first.status !== "fraud" || slashed > 0)
      ) {
        // Assigned, while the record it contradicts holds the job without an assignment: the
        // requester assigned the job to this worker, and the entry records that on the record
        // (`requester`; convicted, it earns nothing), so another worker's assigned receipt is a
        // double assignment, not a takeover (stop 63).
        const assignedTo = requester !== null && takesAssignment(view, first) ? { requester } : {};
        return {
          kind: "equivocation",
          body: {
            jobId: receipt.jobId,
            receiptId: first.receiptId,
            second: receipt as unknown as Record<string, unknown>,
            slashed,
            ...assignedTo,
            // What of the steering conviction's cut the first receipt's slash is (the index
            // takes it from there, and keeps it for a later proof's share).
            ...(cover === undefined ? {} : { steering: cover }),
          },
        };
      }
    }
    // Another worker's receipt holds the job, and a claim of this worker's for it is kept here
    // (a double assignment's second receipt, one convicted unrecorded, one the job was taken
    // from, one refused while the job was held): another claim is its equivocation all the
    // same. Assigned, with the job's recorded receipt assigned to another worker, it is a double
    // assignment too: the holder loses its credit in the same entry, as where this receipt came
    // before its worker's other claim (stop 63). With no receipt holding the job, the claim was
    // kept refused for want of stake: the job passes to it, convicted (`holdsJob`), assigned if
    // this receipt came assigned, as where this receipt was recorded first (stop 64).
    const againstKept = unrecordedEquivocation(view, receipt, check.receiptId, locked, first);
    if (againstKept !== undefined) {
      if (requester === null) return againstKept;
      if (first === undefined) return { ...againstKept, body: { ...againstKept.body, requester } };
      // Assigned, the holder recorded without an assignment: as an assigned receipt takes such
      // a job (`supersedes`, below), the job passes to the worker's convicted claim, assigned
      // to it (`requester`; it earns nothing). Else the assignment was lost with the entry, and
      // the holder's own assignment coming later was paid (or a third worker's assigned receipt
      // took the job over), where in every other order the job was a double assignment and
      // neither was (stop 63 red team).
      if (first.requester === undefined) {
        return { ...againstKept, body: { ...againstKept.body, requester } };
      }
      const twice = doubleAssignment(first, receipt, assignment);
      if (twice === undefined) return againstKept;
      const { receiptId, uncredited } = twice.body;
      return {
        ...againstKept,
        body: { ...againstKept.body, doubleAssignment: { receiptId, assignment, uncredited } },
      };
    }
    if (receipt.kind === "text" && receipt.commitment.chunkSize < MIN_COMMITMENT_CHUNK_SIZE) {
      // Not recorded, so never paid: no fraud proof against it would reach the other ledgers.
      throw new LedgerRejectedError(
        "receipt_rejected",
        `the commitment has ${receipt.commitment.chunkSize} positions per chunk, fewer than ${MIN_COMMITMENT_CHUNK_SIZE}`,
      );
    }
    if (receipt.kind === "text" && !isTokenWidth(receipt.commitment.tokenBytes)) {
      // Not recorded, so never paid: no proof data opens a commitment of another width, so
      // no fraud proof could convict it (review s46: the checker threw on its openings).
      throw new LedgerRejectedError(
        "receipt_rejected",
        `the commitment packs tokens ${receipt.commitment.tokenBytes} bytes wide, not 2 or 4`,
      );
    }
    const existing = view.record(check.receiptId);
    if (existing !== undefined) {
      // Recorded before without its assignment: the requester's announcement came second.
      // Meanwhile another worker's assigned receipt took the job from it: the requester
      // assigned the job twice, and this ends as if both had come with their assignments
      // (below): the one holding the job loses its credit while open, this one earns nothing.
      if (requester !== null && first !== undefined && first.receiptId !== check.receiptId) {
        const twice = doubleAssignment(first, receipt, assignment);
        if (twice !== undefined) return twice;
        throw new LedgerRejectedError(
          "job_already_recorded",
          "another receipt for this job is already recorded",
        );
      }
      // Left unpaid by the owner's own undecided challenge, it takes its assignment all the
      // same, earning nothing here: as if the assigned copy had come first, the job is
      // assigned here (another worker's assigned receipt for it is a double assignment, not a
      // takeover of the job), and the owner passes the assigned receipt on, once, to the
      // ledgers that hear it only through it and pay it (review s48: they never heard it).
      // Convicted inside its window, it takes its assignment too, earning nothing: the job is
      // assigned here, so another worker's assigned receipt is a double assignment (stop 63).
      // Evidence of a steering conviction is never paid, whenever its assignment comes.
      // Whether the owner could check it was decided at intake, where it was drawn or not:
      // recorded uncredited (its model was not here), it earns nothing whatever the owner
      // holds when its assignment comes; recorded checkable, it is credited even if the
      // model has left since (review s47: the late announcement decided both ways).
      // One of a cancelled pair: the job is paid the k tokens, whichever half the assignment came
      // with (review s81 vpair F3: the finished one's paid n after its bare cancelled one).
      const late = requester === null
        ? undefined
        : lateAssignment(view, existing, requester, paired?.reward ?? reward);
      if (late !== undefined) return late;
      throw new LedgerRejectedError("duplicate_receipt", "receipt already recorded");
    }
    // Assigned to the worker whose own receipt holds the job without an assignment (the same
    // claim signed again, or another claim once the job's equivocation is settled): the
    // assignment names the job and the worker, not a receipt, so it is recorded on that record,
    // and pays it if this is the work it records (same output, token count and lock; still
    // once: this receipt is not recorded). Else an assigned receipt of another worker would
    // later take the job over and be paid, where in every other order the job was assigned
    // twice and neither was (stop 63).
    if (requester !== null && first !== undefined && first.worker === worker) {
      const claim = view.index.claim(receipt.jobId);
      const same = claim?.outputHash === receipt.outputHash &&
        claim.tokens === receipt.tokenCount && first.locked === locked;
      // One of a cancelled pair: the job is paid the cancelled receipt's k tokens, whichever of
      // the two holds it (`cancelledPair`).
      const paid = pair !== undefined ? pair.reward : same ? paired?.reward ?? reward : undefined;
      if (pair === undefined || paired !== undefined) {
        const late = lateAssignment(view, first, requester, paid, check.receiptId);
        if (late !== undefined) return late;
      }
    }
    // The pair's other half, first heard: kept, the job paid its k tokens once.
    if (pair !== undefined && paired === undefined && first !== undefined) {
      return pairEntry(
        view,
        first,
        receipt,
        { receiptId: check.receiptId, locked, requester },
        pair,
      );
    }
    // An assigned receipt takes the job from another worker's receipt recorded without one: a
    // copier that re-signed the worker's announced receipt under its own key and got here
    // first cannot be assigned the job (only the requester the job names can sign that), so
    // it keeps its record (and its lock) but not the job's one payment.
    const supersedes = first !== undefined && requester !== null && first.worker !== worker &&
      first.requester === undefined;
    // Two workers' receipts for one job, each with a valid assignment: the requester (the one
    // key the job names) signed two contradicting assignments, say to take a worker's output
    // for a key of its own. Neither is paid, whichever came first: the first loses its credit
    // while it is open (a paid receipt stays paid), the second is not recorded. One entry per
    // job keeps the evidence (the second receipt and its assignment).
    if (
      first !== undefined && requester !== null && first.worker !== worker &&
      first.requester !== undefined
    ) {
      const twice = doubleAssignment(first, receipt, assignment, {
        receiptId: check.receiptId,
        locked,
      });
      if (twice !== undefined) return twice;
    }
    if (firstId !== undefined && !supersedes) {
      // Another worker's receipt holds the job, inside its window: this one is kept as its
      // worker's claim for the job (once per job and staked worker; nothing locked or
      // credited), then refused.
      const kept = unrecordedClaimEntry(view, receipt, check.receiptId, locked, first);
      if (kept !== undefined) return kept;
      // One payment per job: the same work re-signed with other timings, signed again under
      // another key, or answered again from a cache is not paid twice.
      throw new LedgerRejectedError(
        "job_already_recorded",
        "another receipt for this job is already recorded",
      );
    }
    const acc = view.state.account(worker);
    const free = roundCredits(acc.stake - acc.locked);
    // A key that never staked gets nothing recorded, whatever its lock: a receipt of 0 tokens
    // locks 0 and earns 0, and was recorded all the same, a log entry for any made-up key (stop
    // 63 red team). Refused for want of stake, it is held until the worker's pledge comes, as
    // any receipt whose pledge is late (`ValidatorActor`). A staked worker's is kept as its
    // claim for the job first (`_ledger_stake_refused.ts`: once per job, within its stake), so
    // its other claim for the job is its equivocation, as where this one was recorded (stop 64).
    if (locked > free || !view.state.hasStaked(worker)) {
      const kept = stakeRefusedClaim(view, receipt, check.receiptId, locked);
      if (kept !== undefined) return kept;
      throw new InsufficientStakeError(locked, free);
    }
    return {
      kind: "receipt",
      body: {
        receiptId: check.receiptId,
        jobId: receipt.jobId,
        model: receipt.model,
        worker,
        tokens: receipt.tokenCount,
        outputHash: receipt.outputHash,
        credit,
        requester,
        locked,
        pendingUntil: view.now() + view.economics.challengeWindowMs,
        ...(uncredited === undefined ? {} : { uncredited }),
        // So the worker's finished receipt for the job, coming later, is its pair, one claim
        // (`cancelledReceiptKey`).
        ...(receipt.end === undefined ? {} : { end: receipt.end }),
        // What it signed besides its end, count and output: its pair's must be the same.
        ...(receipt.kind === "text" ? { pairable: pairableDigest(receipt) } : {}),
      },
    };
  };
}

/**
 * Whether `receipt` and `first`, the record of the same worker's that holds its job, are a
 * cancelled pair: the worker's finished receipt over n tokens (no `end`) and its `cancelled`
 * receipt over k < n of them, in either order (`docs/PROTOCOL.md`, "Through a forwarding node":
 * the worker had finished when its requester's client cancelled after k, and it signed a
 * cancelled receipt over k that replaces the finished one). One claim, paid once, the k tokens
 * (`reward`, what the cancelled receipt earns). Both must sign the same everything else: job,
 * model, input, parameters (seed included), commitment scheme and width, prompt count
 * ({@link pairableDigest}, kept with the record: review s81 vpair F2). Once the pair's other half
 * came (`known`: `LedgerIndex.cancelledPair` of `first`, read once by the caller), only that half
 * again pairs: a third claim is equivocation (F1). Undefined for anything else, which stays
 * equivocation where the claims differ: two finished or two cancelled receipts, a cancelled one
 * over more tokens than the finished one (or as many), or one that signs anything else
 * differently. Other tokens in the shared prefix a
 * challenge of the recorded one convicts: one of the two answers is not the model's.
 */
function cancelledPair(
  view: LedgerView,
  first: ReceiptRecord,
  receipt: Receipt,
  known: PairedClaim | undefined,
): { reward: number } | undefined {
  if (first.kind !== "inference" || receipt.kind !== "text") return undefined;
  const claim = view.index.claim(receipt.jobId);
  if (claim === undefined || claim.outputHash === null) return undefined;
  if (!view.index.proofSettled(pairableKey(first.receiptId, pairableDigest(receipt)))) {
    return undefined;
  }
  const cancelledSecond = receipt.end === "cancelled";
  if (known !== undefined) {
    const same = known.outputHash === receipt.outputHash && known.tokens === receipt.tokenCount;
    return same ? { reward: known.reward } : undefined;
  }
  const firstCancelled = view.index.proofSettled(cancelledReceiptKey(first.receiptId));
  // The cancelled one covers fewer tokens than the finished one.
  const [k, n] = cancelledSecond
    ? [receipt.tokenCount, claim.tokens]
    : [claim.tokens, receipt.tokenCount];
  if (firstCancelled === cancelledSecond || !(k >= 1 && k < n)) return undefined;
  // The same work priced over n as the record's lock: the same model's price, prompt count.
  const over = (tokens: number) => rewardOf(view, { ...receipt, tokenCount: tokens });
  if (lockOf(view, over(cancelledSecond ? n : k)) !== first.locked) return undefined;
  return { reward: over(k) };
}

/**
 * What a receipt signs that a cancel after the worker's end does not change: every signed field
 * but its `end`, `tokenCount`, `outputHash`, commitment `root`, timings and signature (hex
 * SHA-256 of their canonical CBOR). A worker's finished receipt and its cancelled one over a
 * prefix of the same tokens have the same digest; one with another seed, model or input does not.
 */
function pairableDigest(receipt: Receipt): string {
  const { commitment } = receipt;
  return sha256Hex(encodeCanonical({
    v: receipt.v,
    kind: receipt.kind,
    jobId: receipt.jobId,
    model: receipt.model,
    inputHash: receipt.inputHash,
    params: receipt.params ?? null,
    scheme: commitment.scheme,
    chunkSize: commitment.chunkSize,
    tokenBytes: commitment.tokenBytes,
    promptTokens: receipt.promptTokens ?? null,
    worker: receipt.worker,
  }));
}

/**
 * The `cancelled_pair` entry keeping `receipt` (`second`: its id, lock, and the requester its
 * assignment names, if it came with one), the other half of `first`'s cancelled pair: the job is
 * paid `pair.reward`, the k tokens, once, whichever half came first and with the assignment.
 * Open, `first`'s credit is that at most (assigned now by this half's assignment, if it had
 * none). Closed paid more (the cancelled receipt came after the finished one's window: F4), the
 * difference is taken back (`reclaimed`), so the worker ends as where the cancelled one came
 * first: the cut is its own signed word, never another's. Convicted before the pair was whole
 * (a proof of the record, or its equivocation with a second cancelled receipt over another
 * count), what this half's larger claim adds is cut (`slashed`, from stake no open
 * receipt locks), so the same messages cost the same in every order (F1, F5).
 */
function pairEntry(
  view: LedgerView,
  first: ReceiptRecord,
  receipt: Receipt,
  second: { receiptId: string; locked: number; requester: string | null },
  pair: { reward: number },
) {
  const open = first.status === "pending" || first.status === "challenged";
  let assignedTo: { requester?: string; credit?: number } = {};
  if (second.requester !== null && takesAssignment(view, first)) {
    const late = lateAssignment(view, first, second.requester, pair.reward)!;
    assignedTo = { requester: second.requester, credit: late.body.credit };
  } else if (open) {
    assignedTo = { credit: Math.min(first.credit, pair.reward) };
  }
  const reclaimed = first.status === "final" && first.credit > pair.reward
    ? roundCredits(first.credit - pair.reward)
    : 0;
  // What the record's conviction took so far: its own lock (a proof of it), or, for an
  // equivocation no proof has rewarded yet, the larger of its two claims. Once a proof of another
  // claim settled the job's equivocation, that slash already weighed the larger claim. A fault
  // (this ledger's own challenge, burned, unrewarded) slashes the record alone, as for any record.
  const equivocated = view.index.equivocated(receipt.jobId);
  const unrewarded = view.index.unrewardedSlash(first.receiptId);
  const taken = first.status !== "fraud"
    ? undefined
    : equivocated
    ? unrewarded
    : unrewarded === undefined
    ? first.locked
    : undefined;
  const slashed = taken === undefined ? 0 : Math.min(
    Math.max(0, roundCredits(second.locked - Math.max(taken, first.locked))),
    freeStake(view.account(receipt.worker)),
  );
  const claim: PairedClaim = {
    receiptId: second.receiptId,
    outputHash: receipt.outputHash,
    tokens: receipt.tokenCount,
    locked: second.locked,
    reward: pair.reward,
  };
  return {
    kind: "cancelled_pair" as const,
    body: {
      jobId: receipt.jobId,
      receiptId: first.receiptId,
      worker: first.worker,
      second: receipt as unknown as Record<string, unknown>,
      pair: claim as unknown as Record<string, unknown>,
      ...assignedTo,
      ...(reclaimed > 0 ? { credit: pair.reward, reclaimed } : {}),
      ...(slashed > 0 ? { slashed } : {}),
    },
  };
}

/**
 * The entry for a job its requester assigned twice, `first` holding it and `second` the other
 * worker's receipt with its assignment: the first loses its credit while it is open; undefined
 * when it has none left to lose (closed, or earning nothing). `unrecorded`: `second` is not
 * recorded here (its id, and the stake it would lock); the entry keeps its claim for the index
 * (`LedgerIndex.unrecordedClaim`), so its worker's other claim for the job is equivocation.
 */
export function doubleAssignment(
  first: ReceiptRecord,
  second: Receipt,
  assignment: unknown,
  unrecorded?: { receiptId: string; locked: number },
) {
  const open = first.status === "pending" || first.status === "challenged";
  if (!open || first.credit <= 0) return undefined;
  const known = unrecorded === undefined
    ? {}
    : { unrecorded: claimBody(second, unrecorded.receiptId, unrecorded.locked, first) };
  return {
    kind: "double_assignment" as const,
    body: {
      jobId: second.jobId,
      receiptId: first.receiptId,
      second: second as unknown as Record<string, unknown>,
      assignment: assignment as unknown as Record<string, unknown>,
      uncredited: first.credit,
      ...known,
    },
  };
}
