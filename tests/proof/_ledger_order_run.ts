/**
 * One ledger hearing the settlements of one job in a given order, for the order tests of the
 * ledger (review s79 vledger): a worker's receipt R recorded here (4 tokens, lock 80), and its
 * other signed claim R′ for the same job (40 tokens, another output, lock 800), which only travels
 * inside a peer's fraud proof. {@link EVENTS} names what a ledger may hear; {@link runOrder}
 * plays a list of them on a fresh ledger and reads the accounts, optionally closing, deleting the
 * index and reopening after each (a rebuild from the log), and always once more at the end.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { type Account, Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { assigned, jobIdOf, receipt, resigned, withLedgerDir } from "./_ledger_fixtures.ts";

/** The challenge window (ms): past it, `finalizeDue` closes R. */
export const WINDOW = DEFAULT_ECONOMICS.challengeWindowMs;

/** What an event acts on: the ledger (replaced by a rebuild), the keys and the two claims. */
export interface OrderContext {
  ledger: Ledger;
  owner: Identity;
  worker: Identity;
  a1: Identity;
  a2: Identity;
  /** Recorded here: 4 tokens, lock 80. */
  r: Receipt;
  /** The worker's other claim for R's job: 40 tokens, another output, lock 800; never recorded. */
  variant: Receipt;
  /** Receipts of the worker for other jobs, recorded after R (`extra` of {@link runOrder}). */
  others: Receipt[];
  clock: { t: number };
}

/** One thing a ledger hears. */
export type OrderEvent = (c: OrderContext) => Promise<unknown>;

/** The accounts a run ends with. */
export interface OrderOutcome {
  /** Each event's result: "ok" or the refusal's code. */
  codes: string[];
  worker: Account;
  a1: Account;
  a2: Account;
  owner: Account;
  /** R's status at the end. */
  status: string | undefined;
}

/** A peer's confirmed fraud proof about R (`r`) or R′ (`variant`), signed by `by`. */
export function prove(
  c: OrderContext,
  which: "r" | "variant",
  by: Identity,
  hash: string,
): Promise<unknown> {
  const rec = which === "r" ? c.r : c.variant;
  return c.ledger.settleFraud({
    receiptId: receiptId(rec),
    receipt: rec,
    fraudProofHash: hash.repeat(32),
    validator: by.publicKey,
    confirmed: true,
    reason: "fingerprint_mismatch",
  });
}

/** The settlements a ledger may hear about R's job, by name. */
export const EVENTS = {
  /** A peer's (a1's) confirmed proof about R. */
  proveR: (c: OrderContext) => prove(c, "r", c.a1, "a1"),
  /** A peer's (a2's) confirmed proof about R′: the worker's equivocation too. */
  proveVariant: (c: OrderContext) => prove(c, "variant", c.a2, "a2"),
  /**
   * R′ itself reaches this ledger (its worker announced it): the worker's equivocation on
   * arrival, its own two signatures the evidence, no accuser (stop 80).
   */
  variantArrives: (c: OrderContext) => c.ledger.recordReceipt(c.variant, {}),
  /** This ledger's owner convicts the worker of steering, R (and the `others`) the evidence. */
  steer: (c: OrderContext) =>
    c.ledger.settleSteering(c.worker.publicKey, [c.r, ...c.others].map((r) => receiptId(r))),
  /**
   * A stream conviction of the worker on another job (5 tokens: 100 cut from the whole stake,
   * its locks included), this ledger's owner the accuser (review vled F1).
   */
  stream: (c: OrderContext) =>
    c.ledger.settleStreamFraud({
      jobId: jobIdOf(7990),
      worker: c.worker.publicKey,
      model: "bafkreimodel",
      tokens: 5,
      claimHash: "c1".repeat(32),
    }),
  /** This ledger's own challenge of R ends in the worker's fault (proof data withheld). */
  fault: async (c: OrderContext) => {
    await c.ledger.openChallenge(receiptId(c.r));
    await c.ledger.settleFault(receiptId(c.r), c.owner.publicKey, "proof_unavailable");
  },
  /** This ledger's own challenge of R ends undecided inside the window (held unpaid). */
  unresolved: async (c: OrderContext) => {
    await c.ledger.openChallenge(receiptId(c.r));
    await c.ledger.leaveUnresolved(receiptId(c.r), "model_unavailable");
  },
} satisfies Record<string, OrderEvent>;

/** A name in {@link EVENTS}. */
export type EventName = keyof typeof EVENTS;

/** R's window (and every other's) ends: what is still open is finalized. */
export const windowEnds: OrderEvent = async (c) => {
  c.clock.t += WINDOW + 1;
  await c.ledger.finalizeDue();
};

/**
 * The worker deposits 800 and its honest receipt for another job (40 tokens, lock 800) arrives:
 * recorded only where nothing but its own receipts' locks holds that stake (review vled F1).
 */
export const honestAfterDeposit: OrderEvent = async (c) => {
  await c.ledger.deposit(c.worker.publicKey, 800);
  const honest = receipt(7995, 40, c.worker);
  await c.ledger.recordReceipt(honest, assigned(honest));
};

/** Every order of `events`. */
export function orders<T>(events: readonly T[]): T[][] {
  if (events.length <= 1) return [[...events]];
  return events.flatMap((e, i) =>
    orders([...events.slice(0, i), ...events.slice(i + 1)]).map((rest) => [e, ...rest])
  );
}

/** Options of {@link runOrder}. */
export interface RunOrderOptions {
  /** Close, delete the index and reopen after every event (default false: only at the end). */
  rebuildEach?: boolean;
  /** Token counts of more receipts of the worker, other jobs, recorded after R (default none). */
  extra?: number[];
}

/**
 * A fresh ledger, the worker staked `stake`, R recorded (assigned), `events` heard in order.
 * The accounts are read, then read again after a close, an index deleted and a reopen (the
 * index rebuilt from the log): a rebuild that disagrees fails the assertion.
 */
export function runOrder(
  stake: number,
  events: readonly OrderEvent[],
  options: RunOrderOptions = {},
): Promise<OrderOutcome> {
  let out: OrderOutcome | undefined;
  return withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const worker = Identity.generate();
    const a1 = Identity.generate();
    const a2 = Identity.generate();
    const open = () => Ledger.open(dir, owner, { now: () => clock.t });
    const ledger = await open();
    await ledger.deposit(worker.publicKey, stake);
    const r = receipt(7971, 4, worker);
    const variant = resigned(r, { tokenCount: 40, outputHash: "77".repeat(32) }, worker);
    await ledger.recordReceipt(r, assigned(r));
    const others = (options.extra ?? []).map((tokens, i) => receipt(7972 + i, tokens, worker));
    for (const o of others) await ledger.recordReceipt(o, assigned(o));
    const c: OrderContext = { ledger, owner, worker, a1, a2, r, variant, others, clock };
    const rebuild = async () => {
      await c.ledger.close();
      await Deno.remove(join(dir, INDEX_FILE));
      c.ledger = await open();
    };
    const codes: string[] = [];
    for (const event of events) {
      codes.push(
        await event(c).then(() => "ok", (e) => (e as { code?: string }).code ?? String(e)),
      );
      if (options.rebuildEach) await rebuild();
    }
    const read = (): OrderOutcome => ({
      codes,
      worker: c.ledger.account(worker.publicKey),
      a1: c.ledger.account(a1.publicKey),
      a2: c.ledger.account(a2.publicKey),
      owner: c.ledger.account(owner.publicKey),
      status: c.ledger.receipt(receiptId(r))?.status,
    });
    const before = read();
    await rebuild();
    const after = read();
    assert.deepEqual(after, before, "the same accounts after the index is rebuilt from the log");
    out = after;
    await c.ledger.close();
  }).then(() => out!);
}
