/**
 * Signed stake pledges: the `stake` entry that records another key's pledge, once per key
 * ({@link pledgeEntry}, decided in the writer's turn), and which of the pledges recorded a
 * ledger lists ({@link pledgesOf}: every one, one key's, or the active keys' first). Used by
 * `Ledger.recordPledge` and `Ledger.pledges` (`ledger.ts`). Not part of the public API.
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import type { StakePledge } from "../protocols/stake_pledge.ts";
import { type LedgerState, roundCredits } from "./ledger_state.ts";
import type { PledgeQuery } from "./ledger.ts";

/**
 * The body of the `stake` entry recording `pledge` (checked already), decided in the writer's
 * turn: null when its key already has stake here (pledged, deposited, or slashed down to
 * nothing).
 */
export function pledgeEntry(
  state: LedgerState,
  pledge: StakePledge,
): () => Record<string, unknown> | null {
  const key = toHex(pledge.key);
  return () =>
    state.hasStaked(key) ? null : {
      key,
      amount: pledge.amount,
      pledge: { v: pledge.v, issuedAt: pledge.issuedAt, sig: pledge.sig },
    };
}

/** `Ledger.pledges`: the pledges recorded in `state` that `query` asks for, copies. */
export function pledgesOf(state: LedgerState, query?: PledgeQuery): StakePledge[] {
  const all = state.pledges();
  if (query?.key !== undefined) {
    const pledge = pledgeOf(state, toHex(query.key));
    return pledge === undefined ? [] : [{ ...pledge }];
  }
  if (query?.limit === undefined) return [...all].map((p) => ({ ...p }));
  const active: StakePledge[] = [];
  const idle: StakePledge[] = [];
  for (const pledge of [...all].reverse()) {
    const a = state.account(toHex(pledge.key));
    const touched = a.locked !== 0 || a.balance !== 0 || a.stake !== roundCredits(pledge.amount);
    (touched ? active : idle).push(pledge);
    if (active.length >= query.limit) break;
  }
  return [...active, ...idle].slice(0, Math.max(0, query.limit)).map((p) => ({ ...p }));
}

/** The pledge recorded for hex `key`, if any (a scan: asked only when a peer lacks one). */
function pledgeOf(state: LedgerState, key: string): StakePledge | undefined {
  if (!state.hasStaked(key)) return undefined;
  for (const pledge of state.pledges()) if (toHex(pledge.key) === key) return pledge;
  return undefined;
}
