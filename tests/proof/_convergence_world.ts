/**
 * The evidence of a small network, signed with the real signing code, and the means to feed it to a
 * fresh ledger in any order and read what that ledger ends with. Used by
 * `ledger_convergence_test.ts` (do honest ledgers that get the same evidence in different orders
 * end the same?).
 *
 * Every key comes from a fixed seed, so a run replays exactly. Each piece of evidence is an
 * {@link Evidence}: what a ledger does with it (`deliver`) and when the node in front of the
 * ledger lets it through (`ready`). The ledger itself refuses a receipt whose worker has no
 * stake and a fraud proof whose receipt it has not recorded; the ValidatorActor holds those
 * until their pledge or receipt is recorded (`actors/_held_evidence.ts`,
 * `actors/_pledge_held_proofs.ts`), and a proof from an accuser with no pledge here waits for
 * that pledge. {@link feed} does the same: evidence that is not ready is held and delivered as
 * soon as it is, so any order of arrival is allowed, pledges after receipts and proofs before
 * their receipt included.
 *
 * @module
 */
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { signVerdict, verdictId, type VerdictOutcome } from "../../protocols/verdict.ts";
import { fraudProofHash, signFraudProof } from "../../protocols/fraud_proof.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { type Ledger, LedgerRejectedError, type ReceiptRecord } from "../../proof/ledger.ts";
import { assigned, job, receipt, requester, resigned } from "./_ledger_fixtures.ts";

/** The challenge window of every ledger here (ms). */
export const WINDOW = 60_000;
/** How far each ledger's clock moves per piece of evidence it handles (ms): all inside a window. */
export const STEP_MS = 10;

/** An identity from a one-byte seed: the same keys on every run. */
export function seeded(seed: number): Identity {
  return Identity.fromSecretKey(new Uint8Array(32).fill(seed));
}

/** The parties: workers, validators (accusers), a copier, and the fixtures' requester. */
export const parties = {
  w1: seeded(1),
  w2: seeded(2),
  w3: seeded(3),
  /** Re-signs other workers' announced receipts under its own key. */
  copier: seeded(4),
  v1: seeded(11),
  v2: seeded(12),
  /** Pledged for a penalty and a half: its second false accusation takes what is left. */
  v3: seeded(13),
  requester,
};

/** One piece of evidence as a node in front of a ledger handles it. */
export interface Evidence {
  /** Short name, for orders in messages. */
  name: string;
  /** Whether the node would pass it to the ledger now (else it holds it, as the node does). */
  ready(ledger: Ledger): boolean;
  /** Hand it to the ledger; a refusal is the ledger's answer, returned as its code. */
  deliver(ledger: Ledger): Promise<string | undefined>;
}

/** Run `fn`, turning a ledger refusal into its code (anything else is thrown). */
async function refusal(fn: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await fn();
    return undefined;
  } catch (error) {
    if (error instanceof LedgerRejectedError) return error.code;
    throw error;
  }
}

/** A signed stake pledge of `who`. */
export function pledge(name: string, who: Identity, amount: number): Evidence {
  const signed = signStakePledge(who, amount, 0);
  return {
    name,
    ready: () => true,
    deliver: (ledger) => refusal(() => ledger.recordPledge(signed)),
  };
}

/** `r` as its worker (bare) or its requester (`withAssignment`) announces it. */
export function announce(name: string, r: Receipt, withAssignment: boolean): Evidence {
  const options = withAssignment ? assigned(r) : {};
  return {
    name,
    ready: (ledger) => ledger.hasStaked(r.worker),
    deliver: (ledger) => refusal(() => ledger.recordReceipt(r, options)),
  };
}

/** A signed inference verdict of `by` about `r`. */
export function verdict(
  name: string,
  by: Identity,
  r: Receipt,
  outcome: VerdictOutcome,
  reason: string,
  fraudProof?: string,
): Evidence {
  const signed = signVerdict({
    v: 1,
    subject: "inference",
    subjectId: receiptId(r),
    target: r.worker,
    outcome,
    reason,
    ...(fraudProof === undefined ? {} : { fraudProof }),
    issuedAt: 0,
  }, by);
  return {
    name,
    ready: () => true,
    deliver: (ledger) => refusal(() => ledger.recordVerdict(signed)),
  };
}

/** The hash of a signed fraud proof about `r` (job `n`) by `by`: how verdicts and ledgers name it. */
export function signedProof(r: Receipt, n: number, by: Identity): string {
  const proof = signFraudProof({
    v: 1,
    kind: "fingerprint",
    job: job(n),
    receipt: r,
    chunks: [],
    cited: [{ position: 0 }],
    issuedAt: 0,
  }, by);
  return fraudProofHash(proof);
}

/**
 * A fraud proof about `r`, checked: `confirmed` as every honest checker finds it (the check is
 * deterministic: `proof/fraud_check.ts`), settled once its receipt (or a variant of it its
 * worker signed) and its accuser's pledge are recorded.
 */
export function proof(
  name: string,
  hash: string,
  r: Receipt,
  by: Identity,
  confirmed: boolean,
): Evidence {
  return {
    name,
    ready: (ledger) => ledger.fraudSubject(r) !== undefined && ledger.hasStaked(by.publicKey),
    deliver: (ledger) =>
      refusal(() =>
        ledger.settleFraud({
          receiptId: receiptId(r),
          receipt: r,
          fraudProofHash: hash,
          validator: by.publicKey,
          confirmed,
          reason: confirmed ? "fingerprint_mismatch" : "ok",
        })
      ),
  };
}

/** A finalize tick (the validator runs one every 10 s): inside the window it pays nothing. */
export function tick(name: string): Evidence {
  return {
    name,
    ready: () => true,
    deliver: async (ledger) => {
      await ledger.finalizeDue();
      return undefined;
    },
  };
}

/** A job of the world: its number and the receipts signed for it. */
export interface WorldJob {
  /** Fixture job number (`_ledger_fixtures.ts` `job`). */
  n: number;
  /** What it exercises. */
  about: string;
  /** Every receipt signed for it. */
  receipts: Receipt[];
  /**
   * The job's signed receipts are several claims of which the ledger records whichever comes
   * first (two variants of one worker, two workers a requester assigned, a copier's and the
   * worker's): which one is recorded, and what it locked while open, are left out of the
   * comparison, as is a record that ended earning nothing (`final`, credit 0: its lock released,
   * no balance moved); who ended paid or slashed is not.
   */
  firstComesFirst?: boolean;
}

/** The whole world: the evidence, in its canonical order, and what to read at the end. */
export interface World {
  /** Every piece of evidence, canonical order (pledges first, then each job's story). */
  evidence: Evidence[];
  /** The jobs, for reading their receipts at the end. */
  jobs: WorldJob[];
  /** Ids of every verdict signed. */
  verdictIds: string[];
}

/**
 * Build the world: six pledges; jobs for a paid receipt with a `valid` verdict, a cheat
 * convicted by one accuser's proof and falsely accused by another's, an announcement that lost
 * its assignment and the assigned copy, a receipt under a "proof withheld" claim, a worker's two
 * contradicting receipts for one job, an honest receipt falsely accused, a
 * job its requester assigned to two workers, a copier racing the worker, a proof about a variant
 * of a receipt (another signature of the same claim), and an accuser pledged for less than two
 * penalties accusing twice, a cheat convicted whether or not its assignment came first, a
 * copier's copy and variant of a worker's receipt; and three finalize ticks.
 */
export function buildWorld(): World {
  const { w1, w2, w3, copier, v1, v2, v3 } = parties;
  const evidence: Evidence[] = [
    pledge("pledge w1", w1, 100_000),
    pledge("pledge w2", w2, 100_000),
    pledge("pledge w3", w3, 100_000),
    pledge("pledge copier", copier, 10_000),
    pledge("pledge v1", v1, 1_000),
    pledge("pledge v2", v2, 1_000),
    pledge("pledge v3", v3, 150),
  ];
  const jobs: WorldJob[] = [];
  const verdictIds: string[] = [];
  const addVerdict = (
    name: string,
    by: Identity,
    r: Receipt,
    outcome: VerdictOutcome,
    reason: string,
    fraudProof?: string,
  ) => {
    const item = verdict(name, by, r, outcome, reason, fraudProof);
    evidence.push(item);
    verdictIds.push(
      verdictId({
        v: 1,
        subject: "inference",
        subjectId: receiptId(r),
        target: r.worker,
        outcome,
        reason,
        ...(fraudProof === undefined ? {} : { fraudProof }),
        issuedAt: 0,
        validator: by.publicKey,
      }),
    );
  };

  // A: honest, assigned, a `valid` verdict: paid.
  const a = receipt(6201, 10, w1);
  jobs.push({ n: 6201, about: "paid, valid verdict", receipts: [a] });
  evidence.push(announce("A w1", a, true));
  addVerdict("A valid by v1", v1, a, "valid", "ok");

  // B: a cheat, one confirmed proof (v1) and one false one (v2): slashed, v1 rewarded, v2 pays.
  const b = receipt(6202, 12, w2);
  const bTrue = signedProof(b, 6202, v1);
  const bFalse = signedProof(b, 6202, v2);
  jobs.push({ n: 6202, about: "cheat, confirmed and false proofs", receipts: [b] });
  evidence.push(announce("B w2", b, true));
  addVerdict("B fraud by v1", v1, b, "fraud", "fingerprint_mismatch", bTrue);
  evidence.push(proof("B proof v1 (confirmed)", bTrue, b, v1, true));
  evidence.push(proof("B proof v2 (refuted)", bFalse, b, v2, false));

  // C: the worker's announcement without the assignment, and the requester's with it.
  const c = receipt(6203, 8, w3);
  jobs.push({ n: 6203, about: "assignment late", receipts: [c] });
  evidence.push(announce("C w3 bare", c, false));
  evidence.push(announce("C w3 assigned", c, true));

  // D: a peer's "proof withheld" claim: a verdict; this ledger's owner did not challenge.
  const d = receipt(6204, 5, w1);
  jobs.push({ n: 6204, about: "proof withheld claim by a peer", receipts: [d] });
  evidence.push(announce("D w1", d, true));
  addVerdict("D withheld by v2", v2, d, "invalid", "proof_unavailable");

  // E: two contradicting receipts of w2 for one job (a proof against one of them is left out:
  // its accuser's reward depends on the order, docs/PROOF.md "Same evidence, any order").
  const eSmall = receipt(6205, 10, w2);
  const eBig = resigned(eSmall, { tokenCount: 30, outputHash: "77".repeat(32) }, w2);
  jobs.push({ n: 6205, about: "equivocation", receipts: [eSmall, eBig], firstComesFirst: true });
  evidence.push(announce("E w2 small", eSmall, true));
  evidence.push(announce("E w2 big", eBig, true));

  // F: honest, falsely accused by v1.
  const f = receipt(6206, 20, w3);
  jobs.push({ n: 6206, about: "false accusation", receipts: [f] });
  evidence.push(announce("F w3", f, true));
  evidence.push(proof("F proof v1 (refuted)", signedProof(f, 6206, v1), f, v1, false));

  // G: the requester assigned one job to two workers: neither is paid (a proof against one of
  // them is left out: it settles only where that one came first, docs/PROOF.md "Same
  // evidence, any order").
  const g1 = receipt(6207, 7, w1);
  const g2 = receipt(6207, 7, w2);
  jobs.push({ n: 6207, about: "double assignment", receipts: [g1, g2], firstComesFirst: true });
  evidence.push(announce("G w1", g1, true));
  evidence.push(announce("G w2", g2, true));

  // H: a copier re-signs w3's receipt under its own key (no assignment can name it).
  const h = receipt(6208, 9, w3);
  const hCopy = receipt(6208, 9, copier);
  jobs.push({
    n: 6208,
    about: "copier racing the worker",
    receipts: [h, hCopy],
    firstComesFirst: true,
  });
  evidence.push(announce("H w3", h, true));
  evidence.push(announce("H copier", hCopy, false));

  // I: one claim signed twice (other fingerprints' last bits), a confirmed proof about the second.
  const i1 = receipt(6209, 6, w1);
  const i2 = resigned(i1, { commitment: { ...i1.commitment, root: "44".repeat(32) } }, w1);
  const iTrue = signedProof(i2, 6209, v2);
  jobs.push({
    n: 6209,
    about: "proof about a variant",
    receipts: [i1, i2],
    firstComesFirst: true,
  });
  evidence.push(announce("I w1 first", i1, true));
  evidence.push(announce("I w1 variant", i2, true));
  evidence.push(proof("I proof v2 on variant (confirmed)", iTrue, i2, v2, true));

  // J, K: v3 (pledged 150) falsely accuses two honest receipts: 100, then the 50 left.
  const j = receipt(6210, 3, w3);
  const k = receipt(6211, 4, w1);
  jobs.push({ n: 6210, about: "accuser short of stake (1)", receipts: [j] });
  jobs.push({ n: 6211, about: "accuser short of stake (2)", receipts: [k] });
  evidence.push(announce("J w3", j, true));
  evidence.push(announce("K w1", k, true));
  evidence.push(proof("J proof v3 (refuted)", signedProof(j, 6210, v3), j, v3, false));
  evidence.push(proof("K proof v3 (refuted)", signedProof(k, 6211, v3), k, v3, false));

  // L: a cheat announced bare and assigned, and convicted (v1): the proof may come before the
  // assignment, which then finds the receipt closed.
  const l = receipt(6212, 11, w3);
  jobs.push({ n: 6212, about: "cheat convicted before its assignment came", receipts: [l] });
  evidence.push(announce("L w3 bare", l, false));
  evidence.push(announce("L w3 assigned", l, true));
  evidence.push(proof("L proof v1 (confirmed)", signedProof(l, 6212, v1), l, v1, true));

  // M: the copier's copy of w3's receipt and a variant of its own (another output, 30 tokens),
  // both bare: the copier is slashed the larger claim's lock once, whichever of its two claims
  // came, before or after w3's (stop 63: refused after w3's, the first is kept as its claim, an
  // `unrecorded_claim` entry, so the second is its equivocation there too).
  const m = receipt(6213, 9, w3);
  const mCopy = receipt(6213, 9, copier);
  const mVariant = resigned(mCopy, { tokenCount: 30, outputHash: "88".repeat(32) }, copier);
  jobs.push({
    n: 6213,
    about: "copier's copy and variant",
    receipts: [m, mCopy, mVariant],
    firstComesFirst: true,
  });
  evidence.push(announce("M w3", m, true));
  evidence.push(announce("M copier copy", mCopy, false));
  evidence.push(announce("M copier variant", mVariant, false));

  evidence.push(tick("tick 1"), tick("tick 2"), tick("tick 3"));
  return { evidence, jobs, verdictIds };
}

/** What a ledger ends with, in a form two ledgers' can be compared with `deepEqual`. */
export interface EndState {
  /** Balance, stake and locks of every party, by name. */
  accounts: Record<string, { balance: number; stake: number; locked: number }>;
  /** Whether each party has been slashed here. */
  convicted: Record<string, boolean>;
  /**
   * Per job: each recorded receipt's id, worker (by name), status, credit (not for `fraud`:
   * unpaid whatever it was) and lock; for a {@link WorldJob.firstComesFirst} job, only the worker,
   * status and credit of the records that did not end earning nothing.
   */
  jobs: Record<string, string[]>;
  /** Whether each signed verdict is recorded. */
  verdicts: boolean[];
}

const nameOf = new Map(Object.entries(parties).map(([name, id]) => [toHex(id.publicKey), name]));

function describe(rec: ReceiptRecord): string {
  const credit = rec.status === "fraud" ? "" : ` credit ${rec.credit}`;
  return `${nameOf.get(rec.worker)} ${rec.status}${credit}`;
}

/** Read `ledger`'s end state (see {@link EndState}). */
export function endState(ledger: Ledger, world: World): EndState {
  const accounts: EndState["accounts"] = {};
  const convicted: EndState["convicted"] = {};
  for (const [name, id] of Object.entries(parties)) {
    accounts[name] = ledger.account(id.publicKey);
    convicted[name] = ledger.convicted(id.publicKey);
  }
  const jobs: EndState["jobs"] = {};
  for (const j of world.jobs) {
    const ids = new Set(j.receipts.map((r) => receiptId(r)));
    const records = [...ids].map((id) => ledger.receipt(id)).filter((rec) => rec !== undefined);
    jobs[`${j.n} ${j.about}`] = j.firstComesFirst === true
      ? records.filter((rec) => rec.status !== "final" || rec.credit !== 0).map(describe).sort()
      : records.map((rec) => `${rec.receiptId.slice(0, 8)} ${describe(rec)} locked ${rec.locked}`);
  }
  return {
    accounts,
    convicted,
    jobs,
    verdicts: world.verdictIds.map((id) => ledger.hasVerdict(id)),
  };
}

/** The refusals a ledger answered with, by evidence name, and the order it was handed them in. */
export interface FeedLog {
  /** Evidence names in the order the ledger got them (held ones where they were let through). */
  delivered: string[];
  /** Refusal codes by evidence name. */
  refused: Record<string, string>;
  /** Evidence still held at the end: what it waits for never came (the node would keep it). */
  neverReady: string[];
}

/**
 * Feed `order` (evidence in arrival order) to `ledger`, moving `clock` by {@link STEP_MS} per
 * arrival; evidence not ready is held and delivered, in the order it came, as soon as it is.
 * Then every window closes: the clock passes the last and the due receipts are finalized.
 */
export async function feed(
  ledger: Ledger,
  clock: { t: number },
  order: readonly Evidence[],
): Promise<FeedLog> {
  const log: FeedLog = { delivered: [], refused: {}, neverReady: [] };
  const held: Evidence[] = [];
  const hand = async (item: Evidence) => {
    log.delivered.push(item.name);
    const code = await item.deliver(ledger);
    if (code !== undefined) log.refused[item.name] = code;
  };
  for (const item of order) {
    clock.t += STEP_MS;
    if (!item.ready(ledger)) {
      held.push(item);
      continue;
    }
    await hand(item);
    // What it made ready goes through now (it may make more ready in turn).
    for (let i = 0; i < held.length;) {
      if (held[i].ready(ledger)) {
        const [next] = held.splice(i, 1);
        await hand(next);
        i = 0;
      } else {
        i++;
      }
    }
  }
  log.neverReady = held.map((e) => e.name);
  clock.t += WINDOW + 1;
  await ledger.finalizeDue();
  return log;
}

/** `items` in the order a seeded Fisher–Yates shuffle gives (`rand` in [0, 1)). */
export function shuffled<T>(items: readonly T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const k = Math.floor(rand() * (i + 1));
    [out[i], out[k]] = [out[k], out[i]];
  }
  return out;
}
