/**
 * Settlement: every way a challenge can end has a ledger consequence, and a caught cheater never
 * keeps its pay. Each test drives a ValidatorActor the way the network does and asserts the
 * **ledger outcome** (status, stake, balance), not only the verdict.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type {
  FraudProofHandled,
  ReceiptHandled,
  ValidatorMessage,
} from "../../actors/validator_actor.ts";
import type { ValidatorModelSource } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId, signReceipt } from "../../protocols/receipt.ts";
import { signVerdict } from "../../protocols/verdict.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { checkFraudProof } from "../../proof/fraud_check.ts";
import { validateReceipt, type ValidationOptions } from "../../proof/validation.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { cheaperCopy, loadCalibratedFixture, type ModelVariant, variantName } from "./_models.ts";
import type { TextModel } from "../../inference/text_model.ts";
import { challengeTicket } from "../../proof/challenge.ts";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import {
  ReceiptAnnouncementMessage,
  VALIDATION_PROTOCOL,
} from "../../protocols/inference_messages.ts";
import { servePeer } from "../../network/peer_services.ts";
import { decodeCbor, encodeCbor } from "../../protocols/cbor.ts";
import { fromHex, toHex } from "../../protocols/hash.ts";
import {
  announceAssigned,
  f,
  falseProof,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
import { Ledger } from "../../proof/ledger.ts";
import { assigned, receipt, resigned, withLedgerDir } from "./_ledger_fixtures.ts";

const WORKER_STAKE = 10_000;
const AFTER_WINDOW = START + DEFAULT_ECONOMICS.challengeWindowMs + 1;

/** What the worker answers a challenge with, per receipt id (a promise: answers later). */
type Answer = ServedProof | undefined | Promise<ServedProof | undefined>;

interface Options {
  /** Challenge probability (default 1). */
  p?: number;
  /** Models (default: the honest model by CID). */
  models?: ValidatorModelSource;
  /** The validator's tolerances (default: uncalibrated). */
  validation?: ValidationOptions;
}

async function setup(options: Options = {}) {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const answers = new Map<string, Answer>();
  /** Never answers until the test ends: a worker (or a validator) stuck mid-challenge. */
  const hanging = Promise.withResolvers<undefined>();
  let system = new ActorSystem({ name: "settlement-test" });
  const spawn = (s: ActorSystem) =>
    spawnValidator(s, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: options.p ?? 1,
      validation: options.validation,
      models: options.models ?? HONEST_MODELS,
      source: {
        proof: (r: Receipt) => Promise.resolve(answers.get(receiptId(r))),
      },
    });
  let validator = await spawn(system);
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  await validator.ask({ type: "deposit", key: me.publicKey, amount: 1_000 });

  let n = 0;
  /** Every job proved here, by id: what the requester assigns. */
  const jobs = new Map<string, TextJob>();
  /**
   * A receipt of `worker`, honest or a cheat (`true`: run on another model; a model: run on
   * that one); it serves its proof.
   */
  const prove = async (overrides: Partial<TextJob> = {}, cheat: boolean | TextModel = false) => {
    const job = textJob(requester, `job-${n++}`, overrides);
    jobs.set(jobId(job), job);
    const model = cheat === true ? f.otherSeed : cheat === false ? f.honest : cheat;
    const proved = await proveOn(job, worker, model);
    const id = receiptId(proved.receipt);
    answers.set(id, signServedProof(id, proved.proof, worker));
    return { job, receipt: proved.receipt, proof: proved.proof, id };
  };
  /** A peer's receipt with its job, and the requester's assignment of that job to the worker. */
  const submit = (receipt: Receipt, job?: TextJob) =>
    validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt,
      job,
      assignment: signAssignment(
        { job: jobs.get(receipt.jobId) ?? job!, worker: receipt.worker, issuedAt: START },
        requester,
      ),
      origin: "ab".repeat(32),
    });
  const { account, record, stats } = ledgerReads(() => validator, clock);
  const status = async (id: string) => (await record(id))?.status;
  /** Close the window and finalize: what is paid is paid now. */
  const closeWindow = async () => {
    clock.t = AFTER_WINDOW;
    await validator.ask({ type: "finalize" });
  };
  const restart = async () => {
    await system.shutdown();
    system = new ActorSystem({ name: "settlement-test-2" });
    validator = await spawn(system);
  };
  const close = async () => {
    hanging.resolve(undefined);
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  };
  return {
    me,
    worker,
    requester,
    system: () => system,
    answers,
    hang: hanging.promise,
    prove,
    submit,
    account,
    status,
    closeWindow,
    stats,
    restart,
    close,
    get validator() {
      return validator;
    },
  };
}

/** The credit and the slash of one receipt of `tokens` tokens under the default economics. */
function priceOf(tokens: number) {
  const credit = tokens * DEFAULT_ECONOMICS.defaultTokenPrice;
  return { credit, slash: credit * DEFAULT_ECONOMICS.slashMultiplier };
}

Deno.test("an honest challenged receipt is paid once its window closes, and nothing is slashed", async () => {
  const t = await setup();
  try {
    const { job, receipt, id } = await t.prove();
    const handled = await t.submit(receipt, job);
    assert.equal(handled.challenged, true);
    assert.equal((await handled.result!).verdict.outcome, "valid");
    assert.equal(await t.status(id), "pending", "cleared: pending again until the window closes");
    await t.closeWindow();
    assert.equal(await t.status(id), "final");
    const acc = await t.account(t.worker.publicKey);
    assert.deepEqual(acc, {
      balance: priceOf(receipt.tokenCount).credit,
      stake: WORKER_STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

Deno.test("withheld proof data: not paid, and the locked slash is taken", async () => {
  const t = await setup();
  try {
    const { job, receipt, id } = await t.prove();
    t.answers.set(id, undefined);
    const result = await (await t.submit(receipt, job)).result!;
    assert.equal(result.verdict.outcome, "invalid");
    assert.equal(result.verdict.reason, "proof_unavailable");
    await t.closeWindow();
    assert.equal(await t.status(id), "fraud");
    const acc = await t.account(t.worker.publicKey);
    const { slash } = priceOf(receipt.tokenCount);
    assert.deepEqual(acc, { balance: 0, stake: WORKER_STAKE - slash, locked: 0 });
    // Nobody earns from a withheld proof (no fraud proof backs it): the slash is burned.
    assert.equal((await t.account(t.me.publicKey)).balance, 0);
  } finally {
    await t.close();
  }
});

Deno.test("proof data signed by someone else counts as withheld", async () => {
  const t = await setup();
  try {
    const { job, receipt, id, proof } = await t.prove();
    t.answers.set(id, signServedProof(id, proof, Identity.generate()));
    const result = await (await t.submit(receipt, job)).result!;
    assert.equal(result.verdict.reason, "proof_unavailable");
    await t.closeWindow();
    assert.equal(await t.status(id), "fraud");
    assert.equal((await t.account(t.worker.publicKey)).balance, 0);
  } finally {
    await t.close();
  }
});

Deno.test("served proof data that does not open the worker's own commitment: a fraud proof any node confirms without a model, worker slashed", async () => {
  const t = await setup();
  try {
    const { job, receipt, id, proof } = await t.prove();
    const tokens = proof.tokens.slice();
    tokens[tokens.length - 1] ^= 1;
    // The worker signs what it serves, so serving other data than it committed to convicts it.
    t.answers.set(id, signServedProof(id, { ...proof, tokens }, t.worker));
    const result = await (await t.submit(receipt, job)).result!;
    assert.equal(result.verdict.outcome, "fraud");
    assert.equal(result.fraudProof?.kind, "commitment");
    const check = await checkFraudProof(result.fraudProof, undefined);
    assert.equal(check.confirmed, true, check.reason);
    await t.closeWindow();
    assert.equal(await t.status(id), "fraud");
    const { slash } = priceOf(receipt.tokenCount);
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE - slash,
      locked: 0,
    });
    assert.equal(
      (await t.account(t.me.publicKey)).balance,
      slash * DEFAULT_ECONOMICS.validatorRewardShare,
    );
    // The same proof with the honest data (what the worker committed to) is refuted.
    const honest = { ...result.fraudProof!, served: signServedProof(id, proof, t.worker) };
    assert.equal((await checkFraudProof(honest, undefined)).confirmed, false);
  } finally {
    await t.close();
  }
});

Deno.test("a receipt claiming 10× maxTokens is caught on arrival, without the coin or a model, and slashed", async () => {
  // Challenge probability 0: the coin never fires; the contradiction is checked on every receipt.
  const t = await setup({ p: 0 });
  try {
    const { job, receipt } = await t.prove();
    const { sig: _sig, worker: _worker, ...unsigned } = receipt;
    const inflated = signReceipt({ ...unsigned, tokenCount: job.params.maxTokens * 10 }, t.worker);
    const id = receiptId(inflated);
    const handled = await t.submit(inflated, job);
    assert.equal(handled.recorded, true);
    assert.equal(handled.challenged, true);
    const result = await handled.result!;
    assert.equal(result.verdict.outcome, "fraud");
    assert.equal(result.fraudProof?.kind, "receipt");
    assert.equal((await checkFraudProof(result.fraudProof, undefined)).confirmed, true);
    await t.closeWindow();
    assert.equal(await t.status(id), "fraud");
    const { slash } = priceOf(inflated.tokenCount);
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE - slash,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

Deno.test("a receipt whose job cannot be bound is never recorded, so never paid", async () => {
  const t = await setup();
  try {
    const { job, receipt, id } = await t.prove();
    const unbound = await t.submit(receipt);
    assert.deepEqual([unbound.recorded, unbound.refusal], [false, "job_unbound"]);
    const other = await t.submit(receipt, { ...job, nonce: "another job" });
    assert.deepEqual([other.recorded, other.refusal], [false, "job_mismatch"]);
    await t.closeWindow();
    assert.equal(await t.status(id), undefined);
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

Deno.test("a model the validator cannot get: recorded without credit, never drawn, and the job is not paid here (nobody slashed)", async () => {
  const t = await setup({ models: { get: () => Promise.resolve(undefined) } });
  try {
    const { job, receipt, id } = await t.prove();
    const handled = await t.submit(receipt, job);
    // Nothing here could check it: credited by the ledgers of validators that hold the model.
    assert.deepEqual([handled.recorded, handled.uncredited, handled.challenged], [
      true,
      "model_unavailable",
      false,
    ]);
    await t.closeWindow();
    assert.equal(await t.status(id), "final");
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE,
      locked: 0,
    });
    assert.equal((await t.stats()).challenged, 0);
  } finally {
    await t.close();
  }
});

Deno.test("input that makes the validator throw becomes a signed inconclusive verdict, and the job is not paid", async () => {
  const t = await setup({
    models: { get: () => Promise.reject(new Error("the model file is corrupt")) },
  });
  try {
    const { job, receipt, id } = await t.prove();
    const handled = await t.submit(receipt, job);
    const result = await handled.result!;
    assert.equal(result.verdict.outcome, "inconclusive");
    assert.equal(result.verdict.reason, "validator_error");
    await t.closeWindow();
    assert.equal(await t.status(id), "unpaid");
    assert.equal((await t.account(t.worker.publicKey)).balance, 0);
  } finally {
    await t.close();
  }
});

Deno.test("a validator restarted mid-challenge runs the challenge again at start: the honest worker is paid once, not left unpaid", async () => {
  const t = await setup();
  try {
    const { job, receipt, id } = await t.prove();
    const served = t.answers.get(id);
    t.answers.set(id, t.hang);
    const handled = await t.submit(receipt, job);
    assert.equal(handled.challenged, true);
    assert.equal(await t.status(id), "challenged");
    // The worker serves its proof to the restarted validator's re-run (review s79 crash F3: the
    // restart left it `unresolved`, unpaid here while the router's ledger paid it).
    t.answers.set(id, served);
    await t.restart();
    for (let i = 0; i < 3000 && (await t.stats()).openChallenges > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await t.closeWindow();
    assert.equal(await t.status(id), "final");
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: priceOf(receipt.tokenCount).credit,
      stake: WORKER_STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

Deno.test("a staked peer's 'proof withheld' verdict passes the challenge on: withheld here too is slashed here, served is judged", async () => {
  // This validator's own coin never fires (p = 0): only the peer's verdict makes it ask.
  const t = await setup({ p: 0 });
  try {
    const peer = Identity.generate();
    await t.validator.ask({ type: "deposit", key: peer.publicKey, amount: 1_000 });
    const withheld = await t.prove();
    const served = await t.prove();
    t.answers.set(withheld.id, undefined);
    const verdicts = [];
    for (const r of [withheld, served]) {
      assert.equal((await t.submit(r.receipt, r.job)).challenged, false);
      const verdict = signVerdict({
        v: 1,
        subject: "inference",
        subjectId: r.id,
        target: t.worker.publicKey,
        outcome: "invalid",
        reason: "proof_unavailable",
        issuedAt: START,
      }, peer);
      verdicts.push(verdict);
      await t.validator.ask({ type: "verdict", verdict, origin: "cd".repeat(32) });
    }
    // The taken-over challenges run off the mailbox; wait (polling, up to 30 s) for both to end.
    for (let i = 0; i < 3000 && (await t.stats()).openChallenges > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal((await t.stats()).challenged, 2);
    // The same verdict again (replayed by anyone) is known here: it opens no second challenge
    // of the receipt this validator already cleared.
    await t.validator.ask({ type: "verdict", verdict: verdicts[1], origin: "ef".repeat(32) });
    assert.equal((await t.stats()).challenged, 2);
    await t.closeWindow();
    assert.equal(await t.status(withheld.id), "fraud");
    assert.equal(await t.status(served.id), "final");
    const { credit, slash } = priceOf(served.receipt.tokenCount);
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: credit,
      stake: WORKER_STAKE - priceOf(withheld.receipt.tokenCount).slash,
      locked: 0,
    });
    assert.ok(slash > 0);
  } finally {
    await t.close();
  }
});

Deno.test("a confirmed fraud (tampered model) is never paid, even when its settlement lands after the window", async () => {
  const t = await setup();
  try {
    const job = textJob(t.requester, "cheat");
    const proved = await proveOn(job, t.worker, f.otherSeed);
    const id = receiptId(proved.receipt);
    // The worker answers only after the window has closed (and a finalize pass has run).
    const late = Promise.withResolvers<ServedProof>();
    t.answers.set(id, late.promise);
    const handled = await t.submit(proved.receipt, job);
    await t.closeWindow();
    assert.equal(await t.status(id), "challenged", "not paid while its challenge is open");
    late.resolve(signServedProof(id, proved.proof, t.worker));
    const result = await handled.result!;
    assert.equal(result.verdict.outcome, "fraud");
    assert.equal((result.fraudProof as FraudProof).kind, "fingerprint");
    await t.closeWindow();
    assert.equal(await t.status(id), "fraud");
    assert.equal((await t.account(t.worker.publicKey)).balance, 0);
    assert.ok((await t.account(t.worker.publicKey)).stake < WORKER_STAKE);
  } finally {
    await t.close();
  }
});

Deno.test("one receipt announced 300 times buys one validation; its fraud verdict lands after the window and the receipt is never paid", async () => {
  const t = await setup();
  try {
    const { job, receipt, id, proof } = await t.prove({}, true);
    const late = Promise.withResolvers<ServedProof>();
    t.answers.set(id, late.promise);
    const first = await t.submit(receipt, job);
    for (let i = 0; i < 300; i++) {
      const copy = await t.submit(receipt, job);
      assert.equal(copy.challenged, false);
    }
    await t.closeWindow();
    assert.equal(await t.status(id), "challenged", "held, not paid, while the challenge is open");
    late.resolve(signServedProof(id, proof, t.worker));
    assert.equal((await first.result!).verdict.outcome, "fraud");
    await t.closeWindow();
    assert.equal(await t.status(id), "fraud");
    assert.equal((await t.stats()).challenged, 1);
    assert.equal((await t.account(t.worker.publicKey)).balance, 0);
  } finally {
    await t.close();
  }
});

Deno.test("a worker cannot read the coin from the validator's answer: challenged or not, the ack is the same bytes, and its challenged cheats are slashed", async () => {
  const t = await setup({ p: 0.5 });
  try {
    const [a, b] = memoryDuplexPair();
    const protocols = [VALIDATION_PROTOCOL];
    const [atWorker, atValidator] = await Promise.all([
      Connection.open(a, { identity: t.worker, protocols }),
      Connection.open(b, { identity: t.me, protocols }),
    ]);
    servePeer(atValidator, t.worker.publicKey, { system: t.system(), validator: "node/validator" });
    // Cheats only (another model): receipts on both sides of the validator's coin.
    const heads: string[] = [];
    const tails: string[] = [];
    const acks: string[] = [];
    while (heads.length < 3 || tails.length < 3) {
      const { job, receipt, id } = await t.prove({}, true);
      (challengeTicket(t.me, id).draw < 0.5 ? heads : tails).push(id);
      const assignment = signAssignment(
        { job, worker: receipt.worker, issuedAt: START },
        t.requester,
      );
      const ack = await atWorker.request(ReceiptAnnouncementMessage, { receipt, job, assignment });
      acks.push(toHex(encodeCbor(ack)));
    }
    assert.equal(new Set(acks).size, 1, "every ack is identical");
    assert.deepEqual(decodeCbor(fromHex(acks[0])), { recorded: true });
    for (let i = 0; i < 3000 && (await t.stats()).openChallenges > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await t.closeWindow();
    for (const id of heads) assert.equal(await t.status(id), "fraud", "challenged cheat slashed");
    for (const id of tails) {
      assert.equal(await t.status(id), "final", "unchallenged: p·(1+m) > 1 covers it");
    }
    await atWorker.close();
    await atValidator.close();
  } finally {
    await t.close();
  }
});

Deno.test("a peer's fraud proof that settles a receipt while this validator's own challenge is open: the late end changes nothing and crashes nothing", async () => {
  const t = await setup();
  try {
    const { job, receipt, id, proof } = await t.prove({}, true);
    const late = Promise.withResolvers<ServedProof | undefined>();
    t.answers.set(id, late.promise);
    const handled = await t.submit(receipt, job);
    assert.equal(await t.status(id), "challenged");
    // Another validator, staked here, caught the same cheat first.
    const peer = Identity.generate();
    await t.validator.ask({ type: "deposit", key: peer.publicKey, amount: 1_000 });
    const { fraudProof } = await validateReceipt({ job, receipt, proof }, f.honest, peer);
    const taken = await t.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "cd".repeat(32),
    });
    assert.equal((await taken.result!).confirmed, true);
    assert.equal(await t.status(id), "fraud");
    // Our own challenge then ends: the worker never answered us.
    late.resolve(undefined);
    assert.equal((await handled.result!).verdict.reason, "proof_unavailable");
    assert.equal(await t.status(id), "fraud");
    const { slash } = priceOf(receipt.tokenCount);
    assert.equal((await t.account(t.worker.publicKey)).stake, WORKER_STAKE - slash, "slashed once");
    assert.equal((await t.stats()).openChallenges, 0, "the actor is alive and the hold released");
  } finally {
    await t.close();
  }
});

// A receipt must sign the proof data's own shape. A worker that ran the wrong model and signed a
// receipt naming another chunk size (or token width) than the data it committed to — the root,
// computed from the data, still opens — turned every fraud proof against it into a refuted one:
// the validator's openings were cut with the data's chunk size, the checker's with the
// receipt's. It was paid with its stake intact and its accuser fined. The mismatch is itself the
// fraud (`commitment`: the served data is signed by the worker), confirmed by the checker.
for (const declared of [{ chunkSize: 16 }, { tokenBytes: 4 }]) {
  Deno.test(`a receipt declaring ${JSON.stringify(declared)} unlike its proof data is fraud: the worker is slashed, its accuser rewarded`, async () => {
    const t = await setup();
    try {
      const { job, receipt, proof } = await t.prove({}, true);
      const { sig: _sig, worker: _worker, ...unsigned } = receipt;
      const reshaped = signReceipt({
        ...unsigned,
        commitment: { ...unsigned.commitment, ...declared },
      }, t.worker);
      const id = receiptId(reshaped);
      t.answers.set(id, signServedProof(id, proof, t.worker));
      const result = await (await t.submit(reshaped, job)).result!;
      assert.deepEqual(
        [result.verdict.outcome, result.verdict.reason, result.fraudProof?.kind],
        ["fraud", "commitment_mismatch", "commitment"],
      );
      const check = await checkFraudProof(result.fraudProof!, f.honest);
      assert.equal(check.confirmed, true, check.reason);
      await t.closeWindow();
      assert.equal(await t.status(id), "fraud");
      const { slash } = priceOf(reshaped.tokenCount);
      assert.deepEqual(await t.account(t.worker.publicKey), {
        balance: 0,
        stake: WORKER_STAKE - slash,
        locked: 0,
      });
      const share = slash * DEFAULT_ECONOMICS.validatorRewardShare;
      assert.deepEqual(await t.account(t.me.publicKey), {
        balance: share,
        stake: 1_000,
        locked: 0,
      });
    } finally {
      await t.close();
    }
  });
}

// Every cheaper copy of the model a worker might run on a job that pays for fp32 (the Proof of
// Inference issue's table: bf16 and fp16 weights, int8 weights per tensor and per channel,
// relative weight noise of 0.3 % and 0.1 %, an int8 KV cache), challenged by a validator with
// the model's calibration profile: the receipt ends `fraud`, the worker is not paid and loses
// the locked slash. The detection rates behind "every challenged receipt" are the detection
// bench's; here, the ledger's consequence of each.
const COPIES: ModelVariant[] = [
  "bf16",
  "fp16",
  "int8-tensor",
  "int8-channel",
  { noise: 0.003 },
  { noise: 0.001 },
  "kv-int8",
];
for (const variant of COPIES) {
  Deno.test(`a worker running a cheaper copy (${variantName(variant)}) on an fp32 job: fraud, not paid, slashed`, async () => {
    const { calibration, validator } = await loadCalibratedFixture();
    const copy = await cheaperCopy(variant);
    const t = await setup({
      validation: { calibration },
      models: { get: (cid) => Promise.resolve(cid === f.honest.info.cid ? validator : undefined) },
    });
    try {
      const { job, receipt, id } = await t.prove({
        prompt: "Once upon a time, in a land far away, there lived",
        params: { maxTokens: 128, temperature: 0.7, topK: 0, topP: 1, seed: 7, stop: [] },
      }, copy);
      const result = await (await t.submit(receipt, job)).result!;
      assert.equal(result.verdict.outcome, "fraud", `${result.verdict.reason}`);
      await t.closeWindow();
      assert.equal(await t.status(id), "fraud");
      const { slash } = priceOf(receipt.tokenCount);
      assert.deepEqual(await t.account(t.worker.publicKey), {
        balance: 0,
        stake: WORKER_STAKE - slash,
        locked: 0,
      });
    } finally {
      await t.close();
    }
  });
}

// Every way the challenge game's steps can end has a consequence in the ledger (docs/PROOF.md,
// "Finality and the ledger"). Each test asserts the ledger's outcome — status, balance, stake — for
// a branch no other test pins down.

const WINDOW = DEFAULT_ECONOMICS.challengeWindowMs;
const M = DEFAULT_ECONOMICS.slashMultiplier;

Deno.test("a receipt recorded uncredited (model_unavailable) earns nothing here even when its assignment comes later without the reason, also after a reopen", () =>
  withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const worker = Identity.generate();
    let ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, 10_000);
    const r = receipt(1, 10, worker);
    const id = receiptId(r);
    await ledger.recordReceipt(r, { uncredited: "model_unavailable" });
    // The requester's announcement, later: the ledger's owner has the model by now.
    await ledger.recordReceipt(r, assigned(r));
    assert.equal(ledger.receipt(id)?.requester !== undefined, true, "the assignment attaches");
    assert.equal(ledger.receipt(id)?.credit, 0, "never checkable at intake, never drawn: unpaid");
    await ledger.close();
    ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    assert.equal(ledger.receipt(id)?.status, "final");
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: 10_000, locked: 0 });
    await ledger.close();
  }));

Deno.test("at p = 1, a receipt the validator could not check at intake is not paid when its assignment comes after the validator got the model: it was never drawn", async () => {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const served = new Map<string, ServedProof>();
  // The model arrives here between the worker's announcement and the requester's.
  let holds = false;
  const models: ValidatorModelSource = {
    has: (cid) => holds && cid === f.honest.info.cid,
    get: (cid) => Promise.resolve(holds && cid === f.honest.info.cid ? f.honest : undefined),
  };
  const system = new ActorSystem({ name: "s47-branches" });
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 1,
      models,
      source: { proof: (r: Receipt) => Promise.resolve(served.get(receiptId(r))) },
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
    const reads = ledgerReads(() => validator, clock);
    const job = textJob(requester, "late-model", { model: f.honest.info.cid });
    const proved = await proveOn(job, worker);
    const id = receiptId(proved.receipt);
    served.set(id, signServedProof(id, proved.proof, worker));
    const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
    const submit = (message: Omit<Extract<ValidatorMessage, { type: "receipt" }>, "type">) =>
      validator.ask<ReceiptHandled>({ type: "receipt", origin: "ab".repeat(32), ...message });
    const bare = await submit({ receipt: proved.receipt, job });
    assert.deepEqual([bare.recorded, bare.uncredited, bare.challenged], [
      true,
      "model_unavailable",
      false,
    ]);
    holds = true;
    await submit({ receipt: proved.receipt, job, assignment });
    await reads.closeWindow();
    assert.equal((await reads.record(id))?.status, "final");
    assert.equal((await reads.stats()).challenged, 0, "never drawn");
    assert.deepEqual(await reads.account(worker.publicKey), {
      balance: 0,
      stake: 10_000,
      locked: 0,
    });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("equivocation on a receipt left unpaid by the owner's undecided challenge cuts the stake once; a peer's confirmed proof after it slashes nothing more and earns its share, as where it came first (review s62); replayed from the log alike", () =>
  withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const worker = Identity.generate();
    const accuser = Identity.generate();
    const options = { now: () => clock.t, checkpointEvery: 0 };
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 10_000);
    await ledger.deposit(accuser.publicKey, 1_000);
    const first = receipt(2, 10, worker);
    const id = receiptId(first);
    await ledger.recordReceipt(first, assigned(first));
    await ledger.openChallenge(id);
    await ledger.leaveUnresolved(id, "validator_error");
    // Its lock kept until its window ends (review s79, F1).
    assert.deepEqual(ledger.account(worker.publicKey), {
      balance: 0,
      stake: 10_000,
      locked: 10 * M,
    });
    const second = resigned(first, { outputHash: "55".repeat(32) }, worker);
    await assert.rejects(() => ledger.recordReceipt(second, assigned(second)), {
      code: "equivocation",
    });
    const slashed = { balance: 0, stake: 10_000 - 10 * M, locked: 0 };
    assert.deepEqual(ledger.account(worker.publicKey), slashed);
    assert.equal(ledger.receipt(id)?.status, "fraud");
    // Before review s62 refused `not_pending`: its accuser earned nothing here and its share
    // where the proof came before the equivocation.
    const settled = await ledger.settleFraud({
      receiptId: id,
      fraudProofHash: "ab".repeat(32),
      validator: accuser.publicKey,
      confirmed: true,
      reason: "mismatch",
    });
    assert.equal(settled.body.slashed, 0);
    const share = {
      balance: 10 * M * DEFAULT_ECONOMICS.validatorRewardShare,
      stake: 1_000,
      locked: 0,
    };
    assert.deepEqual(ledger.account(accuser.publicKey), share);
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    assert.deepEqual(ledger.account(worker.publicKey), slashed);
    assert.deepEqual(ledger.account(accuser.publicKey), share);
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    assert.deepEqual(ledger.account(worker.publicKey), slashed);
    await ledger.close();
  }));

Deno.test("an accusation after the receipt is final moves nothing: a true proof neither slashes nor claws back the paid cheat, a false one costs its accuser nothing, and no check is run", async () => {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const finder = Identity.generate();
  const liar = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "s47-after-final" });
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 0,
      models: { get: (cid) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined) },
    });
    for (const key of [worker, finder, liar]) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount: 10_000 });
    }
    const reads = ledgerReads(() => validator, clock);
    const job = textJob(requester, "after-final");
    // A cheat: another model's tokens under the job's model.
    const cheat = await proveOn(job, worker, f.otherSeed);
    const id = receiptId(cheat.receipt);
    const found = await validateReceipt(
      {
        job,
        receipt: cheat.receipt,
        proof: cheat.proof,
        proofSig: signServedProof(id, cheat.proof, worker).sig,
        output: cheat.output,
      },
      f.honest,
      finder,
    );
    assert.ok(found.fraudProof, `the finder catches it: ${found.verdict.reason}`);
    const handled = await announceAssigned(validator, cheat.receipt, job, requester);
    assert.deepEqual([handled.recorded, handled.challenged], [true, false]);
    await reads.closeWindow();
    assert.equal((await reads.record(id))?.status, "final");
    const credit = cheat.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
    const paid = { balance: credit, stake: 10_000, locked: 0 };
    assert.deepEqual(await reads.account(worker.publicKey), paid);
    const before = (await reads.stats()).fraudProofsChecked;
    for (const proof of [found.fraudProof, falseProof(cheat.receipt, liar)]) {
      const taken = await validator.ask<FraudProofHandled>({
        type: "fraud_proof",
        proof,
        origin: "cd".repeat(32),
      });
      assert.deepEqual([taken.queued, taken.skipped], [false, "not_pending"]);
    }
    await reads.closeWindow();
    assert.equal((await reads.stats()).fraudProofsChecked, before, "no forward pass");
    assert.equal((await reads.record(id))?.status, "final");
    assert.deepEqual(await reads.account(worker.publicKey), paid);
    assert.deepEqual(await reads.account(finder.publicKey), {
      balance: 0,
      stake: 10_000,
      locked: 0,
    });
    assert.deepEqual(await reads.account(liar.publicKey), { balance: 0, stake: 10_000, locked: 0 });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a receipt checkable at intake, drawn and found valid, is paid when its assignment comes after the model left the validator: the intake decides, not the late announcement", async () => {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const served = new Map<string, ServedProof>();
  // The model leaves the registry between the worker's announcement and the requester's.
  let holds = true;
  const models: ValidatorModelSource = {
    has: (cid) => holds && cid === f.honest.info.cid,
    get: (cid) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
  };
  const system = new ActorSystem({ name: "s47-branches-left" });
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 1,
      models,
      source: { proof: (r: Receipt) => Promise.resolve(served.get(receiptId(r))) },
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
    const reads = ledgerReads(() => validator, clock);
    const job = textJob(requester, "model-left");
    const proved = await proveOn(job, worker);
    const id = receiptId(proved.receipt);
    served.set(id, signServedProof(id, proved.proof, worker));
    const submit = (message: Omit<Extract<ValidatorMessage, { type: "receipt" }>, "type">) =>
      validator.ask<ReceiptHandled>({ type: "receipt", origin: "ab".repeat(32), ...message });
    const bare = await submit({ receipt: proved.receipt, job });
    assert.deepEqual([bare.recorded, bare.uncredited, bare.challenged], [true, undefined, true]);
    assert.equal((await bare.result!).verdict.outcome, "valid");
    holds = false;
    const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
    await submit({ receipt: proved.receipt, job, assignment });
    await reads.closeWindow();
    assert.equal((await reads.record(id))?.status, "final");
    const credit = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
    assert.deepEqual(await reads.account(worker.publicKey), {
      balance: credit,
      stake: 10_000,
      locked: 0,
    });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
