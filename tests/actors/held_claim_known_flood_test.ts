/**
 * Through the ValidatorActor: a "proof withheld" claim counts as about a receipt known here only
 * if the receipt is recorded here (a staked worker's), one claim per receipt
 * (`actors/_validator_memory.ts`). Review s77 F1: a receipt waiting here for its worker's pledge
 * counted as known, and any key can have one kept here (a signed receipt of a key that never
 * pledges, `actors/_receipt_intake.ts`), so 256 keys pledging a penalty each, claiming about such
 * receipts — or all about one — outranked an honest claim that had outrun its receipt whatever
 * this validator's secret rank, and the worker that withheld its proof was paid here and kept its
 * whole stake. The memory's own rule: `held_claim_backing_test.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import { MAX_AWAITING_STAKE_PER_WORKER, MAX_HELD_CLAIMS } from "../../actors/_validator_memory.ts";
import { HeldClaimRank } from "../../actors/_held_claim_rank.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { toHex } from "../../protocols/hash.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  assignedProof,
  ledgerReads,
  proveOn,
  START,
  textJob,
  withheldVerdict,
} from "./_validator_fixture.ts";
import { withholdingValidator } from "./_withholding_validator.ts";

const PEER = "ee".repeat(32);
const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
const WORKER_STAKE = 1_000_000;
/** The honest claimant's stake: ten penalties, so its one claim is covered. */
const CLAIMANT_STAKE = 10 * PENALTY;
const { worker, job, proved, id, assignment } = await assignedProof("held-claim-known-flood");
const claimant = Identity.generate();
const flooders = Array.from({ length: MAX_HELD_CLAIMS }, () => Identity.generate());
const requester = Identity.generate();

/** A receipt signed by a key that never pledges, announced: kept here for that pledge. */
interface Waiting {
  /** Its signer. */
  signer: Identity;
  /** Its id. */
  id: string;
  /** Its announcement. */
  message: ValidatorMessage;
}

/**
 * 256 receipts of keys that never pledge, 16 each (as many as are kept per worker): free to sign,
 * and each kept here for its worker's pledge.
 */
const waiting: Waiting[] = [];
for (let w = 0; w < MAX_HELD_CLAIMS / MAX_AWAITING_STAKE_PER_WORKER; w++) {
  const signer = Identity.generate();
  for (let i = 0; i < MAX_AWAITING_STAKE_PER_WORKER; i++) {
    const j = textJob(requester, `known-flood-${w}-${i}`, {
      prompt: "x",
      params: { maxTokens: 1, temperature: 0, topK: 0, topP: 1, seed: 1, stop: [] },
    });
    const p = await proveOn(j, signer);
    const a = signAssignment({ job: j, worker: signer.publicKey, issuedAt: 0 }, requester);
    const message = { type: "receipt", receipt: p.receipt, job: j, assignment: a, origin: PEER };
    waiting.push({ signer, id: receiptId(p.receipt), message: message as ValidatorMessage });
  }
}

/** A validator key under which the honest claimant does not rank highest of the 257. */
function validatorNotHighest(): Identity {
  for (;;) {
    const v = Identity.generate();
    const rank = new HeldClaimRank(v);
    const mine = rank.of(toHex(claimant.publicKey));
    if (flooders.some((k) => rank.of(toHex(k.publicKey)) > mine)) return v;
  }
}
const validator = validatorNotHighest();

interface Flood {
  /** Which of the waiting receipts the flood's claims are about, in turn. */
  about: Waiting[];
  /** Whether the flood comes before the honest claim (else after it). */
  first: boolean;
}

/**
 * The honest claim outruns its receipt; `flood` (if any) is 256 keys pledging a penalty each,
 * one claim each; then the receipt comes and its worker withholds its proof. After the window:
 * the receipt's status and the worker's and the claimant's accounts.
 */
async function withheld(flood?: Flood) {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "held-claim-known-flood" });
  const clock = { t: START };
  try {
    const v = await withholdingValidator(system, validator, `${root}/v`, clock);
    const pledge = (who: Identity, amount: number) =>
      v.ask({ type: "pledge", pledge: signStakePledge(who, amount, 1), origin: PEER });
    const floodClaims = async (about: Waiting[]) => {
      for (const receipt of new Set(about)) await v.ask(receipt.message);
      for (const [i, key] of flooders.entries()) {
        const receipt = about[i % about.length];
        await pledge(key, PENALTY);
        await v.ask({
          type: "verdict",
          verdict: withheldVerdict(receipt.id, receipt.signer.publicKey, START, key),
          origin: PEER,
        });
      }
    };
    await pledge(worker, WORKER_STAKE);
    await pledge(claimant, CLAIMANT_STAKE);
    if (flood?.first) await floodClaims(flood.about);
    await v.ask({
      type: "verdict",
      verdict: withheldVerdict(id, worker.publicKey, START, claimant),
      origin: PEER,
    });
    if (flood !== undefined && !flood.first) await floodClaims(flood.about);
    await v.ask({ type: "receipt", receipt: proved.receipt, job, assignment, origin: PEER });
    const reads = ledgerReads(() => v, clock);
    await reads.drained();
    await reads.closeWindow();
    const record = (await reads.record(id))!;
    const w = await reads.account(worker.publicKey);
    const c = await reads.account(claimant.publicKey);
    return {
      status: record.status,
      worker: { balance: w.balance, stake: w.stake },
      claimant: { balance: c.balance, stake: c.stake },
    };
  } finally {
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
}

for (
  const [what, about] of [["256 such receipts", waiting], ["one such receipt", [
    waiting[0],
  ]]] as const
) {
  Deno.test(`256 keys pledging a penalty each, claiming about ${what} kept for an unpledged worker's pledge, before or after the honest claim: the honest claim is kept and the withholding worker slashed in both orders`, async () => {
    const control = await withheld();
    assert.equal(control.status, "fraud", "without a flood the claim is taken over and convicts");
    assert.equal(control.worker.balance, 0);
    assert.ok(control.worker.stake < WORKER_STAKE);
    for (const first of [true, false]) {
      const flooded = await withheld({ about: [...about], first });
      assert.deepEqual(flooded, control, first ? "flood before" : "flood after");
    }
  });
}
