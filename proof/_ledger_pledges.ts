/**
 * Signed stake pledges: the `stake` entry that records another key's pledge, once per key, and
 * the `pledge_equivocation` entry that records a second, different pledge of a pledged key
 * ({@link pledgeEntry}, decided in the writer's turn), and which of the pledges recorded a
 * ledger lists ({@link pledgesOf}: every one, one key's, or the active keys' first). Used by
 * `Ledger.recordPledge` and `Ledger.pledges` (`ledger.ts`). Not part of the public API.
 *
 * Two pledges of one key that differ are a proof anyone can check that the key told two ledgers
 * two stakes: a ledger that holds both convicts it (its stake and balance are forfeited,
 * `ledger_state.ts`), whichever it heard first, and lists both, so every peer holding either one
 * can convict it too.
 *
 * @module
 */
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { toHex } from "../protocols/hash.ts";
import type { StakePledge } from "../protocols/stake_pledge.ts";
import type { LedgerEntryKind } from "./ledger_entry.ts";
import { type LedgerState, roundCredits } from "./ledger_state.ts";
import type { PledgeQuery } from "./ledger.ts";

/**
 * What `pledge` (checked already) is to `state`: `new` (its key has no stake here), `known` (the
 * pledge recorded, a deposit's key, or a key convicted already: nothing to record) or
 * `conflicting` (another pledge of its key is recorded: a proof of its equivocation). Ed25519
 * signatures are deterministic, so two pledges differ exactly when their signatures do.
 */
export function pledgeStanding(
  state: LedgerState,
  pledge: StakePledge,
): "new" | "known" | "conflicting" {
  const key = toHex(pledge.key);
  if (!state.hasStaked(key)) return "new";
  const first = state.pledgeOf(key);
  if (first === undefined || state.pledgeEquivocated(key) !== undefined) return "known";
  return bytesEqual(first.sig, pledge.sig) ? "known" : "conflicting";
}

/**
 * The entry recording `pledge` (checked already), decided in the writer's turn: `stake` for a key
 * with no stake here, `pledge_equivocation` for a second, different pledge of a pledged key, null
 * for one already known ({@link pledgeStanding}).
 */
export function pledgeEntry(
  state: LedgerState,
  pledge: StakePledge,
): () => { kind: LedgerEntryKind; body: Record<string, unknown> } | null {
  return () => {
    const standing = pledgeStanding(state, pledge);
    if (standing === "known") return null;
    return {
      kind: standing === "new" ? "stake" : "pledge_equivocation",
      body: {
        key: toHex(pledge.key),
        amount: pledge.amount,
        pledge: { v: pledge.v, issuedAt: pledge.issuedAt, sig: pledge.sig },
      },
    };
  };
}

/**
 * `Ledger.pledges`: the pledges recorded in `state` that `query` asks for, copies. A key
 * convicted of pledge equivocation has both its pledges listed, its first then its second.
 */
export function pledgesOf(state: LedgerState, query?: PledgeQuery): StakePledge[] {
  const all = state.pledges();
  if (query?.key !== undefined) return withSecond(state, state.pledgeOf(toHex(query.key)));
  if (query?.limit === undefined) return [...all].flatMap((p) => withSecond(state, p));
  const active: StakePledge[] = [];
  const idle: StakePledge[] = [];
  for (const pledge of [...all].reverse()) {
    const a = state.account(toHex(pledge.key));
    const touched = a.locked !== 0 || a.balance !== 0 || a.stake !== roundCredits(pledge.amount);
    (touched ? active : idle).push(...withSecond(state, pledge));
    if (active.length >= query.limit) break;
  }
  return [...active, ...idle].slice(0, Math.max(0, query.limit));
}

/** Copies of `first` (if any) and of its key's second pledge (if it is convicted). */
function withSecond(state: LedgerState, first: StakePledge | undefined): StakePledge[] {
  if (first === undefined) return [];
  const second = state.pledgeEquivocated(toHex(first.key));
  return second === undefined ? [{ ...first }] : [{ ...first }, { ...second }];
}
