/**
 * What a round's record keeps of the trainers the round left out: every one counted by the kind of
 * its reason, and a few of them by key with their reason. The record is kept in memory, answered
 * by every `status`, rewritten in the coordinator's state file at each save (up to 1000 records)
 * and shipped in every dashboard snapshot (once a second): with every key kept, 255 stakeless
 * joiners made ~37.6 KB a round, ~38 MB a save at the kept bound (review s73 F4). The round's
 * outcome still names every trainer it asked and left out (at most `MAX_OUTCOME_TRAINERS`): that
 * list is built from the round itself, not from its record.
 *
 * @example
 * ```ts
 * import { summarizeExcluded } from "./excluded_summary.ts";
 * const s = summarizeExcluded([
 *   { key: "aa".repeat(32), reason: "duplicate_work: the same training as bbbbbbbbbbbbbbbb's" },
 *   { key: "cc".repeat(32), reason: "opening_missing" },
 * ]);
 * s.excludedCounts; // [{ reason: "duplicate_work", count: 1 }, { reason: "opening_missing", count: 1 }]
 * s.excluded.length; // 2
 * ```
 *
 * @module
 */

/** One trainer left out of a round, and why. */
export interface ExcludedEntry {
  /** Hex key. */
  key: string;
  /** Why, as the round said it. */
  reason: string;
}

/** How many trainers a round left out for one kind of reason. */
export interface ReasonCount {
  /** The kind of reason ({@link reasonKind}). */
  reason: string;
  /** Trainers left out for it. */
  count: number;
}

/** A round's left-out trainers as its record keeps them. */
export interface ExcludedSummary {
  /** The first few left out, with key and reason (at most {@link EXCLUDED_SAMPLE}). */
  excluded: ExcludedEntry[];
  /** Every one left out, counted by {@link reasonKind}. */
  excludedCounts: ReasonCount[];
}

/**
 * Left-out trainers a record names by key: enough for an operator to see who and why at a glance
 * on the dashboard's round row and to find them in the log (which names every one); the counts
 * carry the rest. 8 entries of a 64-hex key and a reason of at most {@link MAX_REASON_CHARS}
 * are under 2 KB a record, under 2 MB for the 1000 records a state file keeps at worst.
 */
export const EXCLUDED_SAMPLE = 8;
/**
 * Kinds of reason counted apart in a record; the rest are counted under {@link OTHER_REASONS}.
 * The kinds are the round's own codes (a dozen or so), but a challenge the node could not run
 * says why in an error's words: a bound keeps a record small whatever those say.
 */
export const MAX_REASON_KINDS = 16;
/** Characters kept of a reason (a kind or a sample's): an error's message can be of any length. */
export const MAX_REASON_CHARS = 160;
/** Kind under which the reasons past {@link MAX_REASON_KINDS} are counted. */
export const OTHER_REASONS = "other";

/**
 * The kind of a reason: its words before the first ": " (the detail after it names keys, amounts
 * or an error's text), at most {@link MAX_REASON_CHARS} characters.
 */
export function reasonKind(reason: string): string {
  const cut = reason.indexOf(": ");
  return (cut < 0 ? reason : reason.slice(0, cut)).slice(0, MAX_REASON_CHARS);
}

/** The {@link ExcludedSummary} of `entries`, in their order (the sample is the first ones). */
export function summarizeExcluded(entries: Iterable<ExcludedEntry>): ExcludedSummary {
  const excluded: ExcludedEntry[] = [];
  const counts = new Map<string, number>();
  for (const { key, reason } of entries) {
    if (excluded.length < EXCLUDED_SAMPLE) {
      excluded.push({ key, reason: reason.slice(0, MAX_REASON_CHARS) });
    }
    let kind = reasonKind(reason);
    if (!counts.has(kind) && counts.size >= MAX_REASON_KINDS - 1) kind = OTHER_REASONS;
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return {
    excluded,
    excludedCounts: [...counts].map(([reason, count]) => ({ reason, count })),
  };
}

/**
 * A record's counts: its own, or, for a record written before records kept counts (its `excluded`
 * lists every trainer left out), counted from that list.
 */
export function excludedCountsOf(
  record: { excluded: ExcludedEntry[]; excludedCounts?: ReasonCount[] },
): ReasonCount[] {
  return record.excludedCounts ?? summarizeExcluded(record.excluded).excludedCounts;
}
