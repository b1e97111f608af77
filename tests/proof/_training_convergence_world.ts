/**
 * The training evidence of a small network, signed with the real signing code, to feed to fresh
 * ledgers in any order (`ledger_convergence_test.ts`: do honest ledgers that get the same training
 * evidence in different orders end the same?). The training twin of `_convergence_world.ts`, whose
 * {@link Evidence}, `pledge`, `tick`, `feed` and `shuffled` it uses as they are.
 *
 * What the node in front of a ledger guarantees, and no more, is modelled by each piece's
 * `ready`: a training receipt reaches the ledger once its trainer's pledge is recorded (the
 * TrainingValidator holds a peer's receipt refused before it: `_stake_held_training_receipts.ts`,
 * review s63, `tests/training/stake_held_receipts_test.ts`); a training fraud
 * proof once the receipt it names is recorded and its accuser has pledged (the TrainingValidator
 * holds it until then: `training/_receipt_held_training_proofs.ts`,
 * `training/_pledge_held_training_proofs.ts`); a credit from an audited round outcome once its
 * receipt is recorded (`training/_receipt_credits.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { toHex } from "../../protocols/hash.ts";
import type { Identity } from "../../protocols/identity.ts";
import { Ledger, type ReceiptRecord, type TrainingRoundTerms } from "../../proof/ledger.ts";
import { type TrainingReceipt, trainingReceiptId } from "../../training/training_receipt.ts";
import { START, trainingReceipt } from "./_training_receipt.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";
import {
  type Evidence,
  feed,
  type FeedLog,
  pledge,
  seeded,
  tick,
  WINDOW,
} from "./_convergence_world.ts";
import { LedgerError } from "../../proof/ledger_errors.ts";

/** Credit per step here: 1, so a receipt's credit is its steps and its lock 20 × them. */
export const PER_STEP = 1;
/** H, the local steps every round here asks for. */
export const ROUND_STEPS = 8;

/** The parties: trainers, validators (accusers). */
export const trainingParties = {
  t1: seeded(31),
  t2: seeded(32),
  t3: seeded(33),
  v1: seeded(41),
  v2: seeded(42),
  /** Pledged for a penalty and a half: its second false accusation takes what is left. */
  v3: seeded(43),
};

/** Round `n`'s terms (every round starts from {@link START} and asks for H steps). */
export function roundTerms(round: number): TrainingRoundTerms {
  return { round, startModel: START, steps: ROUND_STEPS };
}

/** Run `fn`, turning a ledger refusal into its code (anything else is thrown). */
async function refusal(fn: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await fn();
    return undefined;
  } catch (error) {
    // A refusal, `insufficient_stake` included (an answer the node does not ask again).
    if (error instanceof LedgerError) return error.code;
    throw error;
  }
}

/**
 * `r` as a node hands it to its ledger: `credited` when the node coordinated the round (it
 * vouches for the terms), else as gossip, recorded without credit.
 */
export function trainingAnnounce(name: string, r: TrainingReceipt, credited: boolean): Evidence {
  return {
    name,
    ready: (ledger) => ledger.hasStaked(r.trainer),
    deliver: (ledger) =>
      refusal(() => ledger.recordTrainingReceipt(r, roundTerms(r.round), { credited })),
  };
}

/** A credit for `r` from a round outcome the ledger's owner audited, once `r` is recorded. */
export function trainingCredit(name: string, r: TrainingReceipt): Evidence {
  const id = trainingReceiptId(r);
  return {
    name,
    ready: (ledger) => ledger.receipt(id) !== undefined,
    deliver: (ledger) => refusal(() => ledger.creditTrainingReceipt(id)),
  };
}

/** A made-up, distinct fraud proof hash (the ledger keys proofs by hash only). */
export function proofHash(n: number): string {
  return n.toString(16).padStart(64, "0");
}

/**
 * A checked training fraud proof about `r` by `by` (`confirmed`: as every honest checker finds
 * it), settled once `r` is recorded and `by` has pledged.
 */
export function trainingProof(
  name: string,
  hash: string,
  r: TrainingReceipt,
  by: Identity,
  confirmed: boolean,
): Evidence {
  const id = trainingReceiptId(r);
  return {
    name,
    ready: (ledger) => ledger.receipt(id) !== undefined && ledger.hasStaked(by.publicKey),
    deliver: (ledger) =>
      refusal(() =>
        ledger.settleTrainingFraud({
          receiptId: id,
          fraudProofHash: hash,
          validator: by.publicKey,
          confirmed,
          reason: confirmed ? "opening_mismatch" : "ok",
        })
      ),
  };
}

/** A slot of the world: a trainer's round and the receipts it signed for it. */
export interface TrainingSlot {
  /** What it exercises. */
  about: string;
  /** Every receipt signed for the slot. */
  receipts: TrainingReceipt[];
  /**
   * Its receipts are contradicting claims of one trainer of which the ledger records whichever
   * comes first: which one, and what it locked, are left out of the comparison (its trainer's
   * stake and who was paid are not).
   */
  firstComesFirst?: boolean;
}

/** A world: the evidence in its canonical order, and the slots to read at the end. */
export interface TrainingWorld {
  /** Every piece of evidence, canonical order (pledges first, then each slot's story). */
  evidence: Evidence[];
  /** The slots, for reading their receipts at the end. */
  slots: TrainingSlot[];
}

/**
 * The world every order must settle alike: six pledges; a paid receipt; a cheat convicted by one
 * accuser and falsely accused by another; a receipt gossiped without credit and credited from an
 * audit; one gossiped and never credited; a trainer's two contradicting receipts for one round
 * (the larger second, and the same again in another round with the larger first); an honest
 * receipt falsely accused; an accuser pledged for less than two penalties accusing twice; a
 * cheat's gossiped receipt convicted, then credited from an audit; and three finalize ticks.
 */
export function buildTrainingWorld(): TrainingWorld {
  const { t1, t2, t3, v1, v2, v3 } = trainingParties;
  const evidence: Evidence[] = [
    pledge("pledge t1", t1, 10_000),
    pledge("pledge t2", t2, 10_000),
    pledge("pledge t3", t3, 10_000),
    pledge("pledge v1", v1, 1_000),
    pledge("pledge v2", v2, 1_000),
    pledge("pledge v3", v3, 150),
  ];
  const slots: TrainingSlot[] = [];

  // A: t1 round 1, credited: paid 6.
  const a = trainingReceipt(t1, 1, 6);
  slots.push({ about: "paid", receipts: [a] });
  evidence.push(trainingAnnounce("A t1", a, true));

  // B: t2 round 1, a cheat: v1's proof confirmed (slash 100, v1 +50), v2's refuted (v2 −100).
  const b = trainingReceipt(t2, 1, 5);
  slots.push({ about: "cheat, confirmed and false proofs", receipts: [b] });
  evidence.push(trainingAnnounce("B t2", b, true));
  evidence.push(trainingProof("B proof v1 (confirmed)", proofHash(1), b, v1, true));
  evidence.push(trainingProof("B proof v2 (refuted)", proofHash(2), b, v2, false));

  // C: t3 round 1, gossiped, then credited from an audited outcome: paid 4.
  const c = trainingReceipt(t3, 1, 4);
  slots.push({ about: "gossiped, credited from an audit", receipts: [c] });
  evidence.push(trainingAnnounce("C t3 gossip", c, false));
  evidence.push(trainingCredit("C credit", c));

  // D: t1 round 2, two contradicting receipts (4 steps, then 7): slashed the larger lock, 140.
  const dSmall = trainingReceipt(t1, 2, 4, "d1");
  const dBig = trainingReceipt(t1, 2, 7, "d2");
  slots.push({
    about: "equivocation, larger second",
    receipts: [dSmall, dBig],
    firstComesFirst: true,
  });
  evidence.push(trainingAnnounce("D t1 small", dSmall, true));
  evidence.push(trainingAnnounce("D t1 big", dBig, true));

  // E: t3 round 2, honest, falsely accused by v1: paid 3, v1 −100.
  const e = trainingReceipt(t3, 2, 3);
  slots.push({ about: "false accusation", receipts: [e] });
  evidence.push(trainingAnnounce("E t3", e, true));
  evidence.push(trainingProof("E proof v1 (refuted)", proofHash(3), e, v1, false));

  // F, G: v3 (pledged 150) falsely accuses two honest receipts: 100, then the 50 left.
  const f = trainingReceipt(t1, 3, 2);
  const g = trainingReceipt(t3, 3, 2);
  slots.push({ about: "accuser short of stake (1)", receipts: [f] });
  slots.push({ about: "accuser short of stake (2)", receipts: [g] });
  evidence.push(trainingAnnounce("F t1", f, true));
  evidence.push(trainingAnnounce("G t3", g, true));
  evidence.push(trainingProof("F proof v3 (refuted)", proofHash(4), f, v3, false));
  evidence.push(trainingProof("G proof v3 (refuted)", proofHash(5), g, v3, false));

  // H: t2 round 2, gossiped, never credited: paid nothing, its lock released.
  const h = trainingReceipt(t2, 2, 3);
  slots.push({ about: "gossiped, never credited", receipts: [h] });
  evidence.push(trainingAnnounce("H t2 gossip", h, false));

  // I: t2 round 3, two contradicting receipts, the larger (6 steps) signed first: slashed 120.
  const iBig = trainingReceipt(t2, 3, 6, "e1");
  const iSmall = trainingReceipt(t2, 3, 2, "e2");
  slots.push({
    about: "equivocation, larger first",
    receipts: [iBig, iSmall],
    firstComesFirst: true,
  });
  evidence.push(trainingAnnounce("I t2 big", iBig, true));
  evidence.push(trainingAnnounce("I t2 small", iSmall, true));

  // J: t3 round 4, a cheat's gossiped receipt, convicted (v2: slash 100, +50), the audit's
  // credit coming before or after the proof: unpaid either way.
  const j = trainingReceipt(t3, 4, 5);
  slots.push({ about: "gossiped cheat, convicted, credited", receipts: [j] });
  evidence.push(trainingAnnounce("J t3 gossip", j, false));
  evidence.push(trainingProof("J proof v2 (confirmed)", proofHash(6), j, v2, true));
  evidence.push(trainingCredit("J credit", j));

  evidence.push(tick("tick 1"), tick("tick 2"), tick("tick 3"));
  return { evidence, slots };
}

/** What a ledger ends with, comparable with `deepEqual` (see `endState` of the s62 world). */
export interface TrainingEndState {
  /** Balance, stake and locks of every party, by name. */
  accounts: Record<string, { balance: number; stake: number; locked: number }>;
  /** Whether each party has been slashed here. */
  convicted: Record<string, boolean>;
  /**
   * Per slot: each recorded receipt's id, trainer, status, credit (not for `fraud`) and lock;
   * for a {@link TrainingSlot.firstComesFirst} slot, the trainer, status and credit only.
   */
  slots: Record<string, string[]>;
}

const nameOf = new Map(
  Object.entries(trainingParties).map(([name, id]) => [toHex(id.publicKey), name]),
);

function describe(rec: ReceiptRecord): string {
  const credit = rec.status === "fraud" ? "" : ` credit ${rec.credit}`;
  return `${nameOf.get(rec.worker)} ${rec.status}${credit}`;
}

/** Read `ledger`'s end state for `slots` (see {@link TrainingEndState}). */
export function trainingEndState(
  ledger: Ledger,
  slots: readonly TrainingSlot[],
): TrainingEndState {
  const accounts: TrainingEndState["accounts"] = {};
  const convicted: TrainingEndState["convicted"] = {};
  for (const [name, id] of Object.entries(trainingParties)) {
    accounts[name] = ledger.account(id.publicKey);
    convicted[name] = ledger.convicted(id.publicKey);
  }
  const out: TrainingEndState["slots"] = {};
  for (const [i, slot] of slots.entries()) {
    const records = slot.receipts.map((r) => ledger.receipt(trainingReceiptId(r)))
      .filter((rec) => rec !== undefined);
    out[`${i} ${slot.about}`] = slot.firstComesFirst === true
      ? records.map(describe)
      : records.map((rec) => `${rec.receiptId.slice(0, 8)} ${describe(rec)} locked ${rec.locked}`);
  }
  return { accounts, convicted, slots: out };
}

/**
 * A fresh ledger owned by `owner`, fed `order`; its end state over `slots`, live and replayed
 * from disk (asserted alike).
 */
export async function settleTraining(
  slots: readonly TrainingSlot[],
  order: readonly Evidence[],
  owner: number,
): Promise<{ state: TrainingEndState; log: FeedLog }> {
  let out: { state: TrainingEndState; log: FeedLog } | undefined;
  await withLedgerDir(async (dir, clock) => {
    const options = {
      now: () => clock.t,
      economics: { challengeWindowMs: WINDOW, trainingCreditPerStep: PER_STEP },
      checkpointEvery: 0,
    };
    const identity = seeded(owner);
    let ledger = await Ledger.open(dir, identity, options);
    const log = await feed(ledger, clock, order);
    const state = trainingEndState(ledger, slots);
    await ledger.close();
    ledger = await Ledger.open(dir, identity, options);
    assert.deepEqual(trainingEndState(ledger, slots), state, "replayed from genesis alike");
    await ledger.close();
    out = { state, log };
  });
  return out!;
}

/** Every order of `items` (n! of them: keep n small). */
export function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  const out: T[][] = [];
  for (const [i, item] of items.entries()) {
    const rest = [...items.slice(0, i), ...items.slice(i + 1)];
    for (const tail of permutations(rest)) out.push([item, ...tail]);
  }
  return out;
}
