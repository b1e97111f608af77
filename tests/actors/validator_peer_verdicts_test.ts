/**
 * Peers' verdicts at a validator (`actors/_peer_verdicts.ts`): passed on even where this ledger's
 * own challenge has ended, so a claim reaches the ledgers behind it; a conviction settles alike
 * before or after acceptances; and what a verdict may cost a ledger (its details bounded, one about
 * a receipt no longer open neither recorded nor passed on).
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage, ValidatorModelSource } from "../../actors/validator_actor.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import {
  MAX_VERDICT_DETAILS_BYTES,
  signVerdict,
  type Verdict,
  verdictId,
  verifyVerdict,
} from "../../protocols/verdict.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import {
  announceAssigned,
  f,
  falseProof,
  HONEST_MODELS,
  type LedgerReads,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
  withheldVerdict,
} from "./_validator_fixture.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { VerdictAnnouncementMessage } from "../../protocols/inference_messages.ts";
import { failedChallenge } from "../../actors/_run_challenge.ts";
import { STAKE, startValidator } from "./_peer_verdict_fixture.ts";

// -------------------------------------------------------------------------------------------------
// Several validators' verdicts on one receipt, across ledgers that settled it in different ways. A
// peer's verdict moves no balance itself, but an `invalid / proof_unavailable` one makes every
// ledger it reaches ask the worker (a takeover), and verdicts reach ledgers not connected to their
// author only by being passed on. A ledger whose own challenge had ended (unresolved, slashed)
// refused the verdict and so did not pass it on: a ledger behind it never heard the claim and paid
// the worker that withheld from the claimant and from it (in a 20-node run with 18 challengers one
// verdict reached 1 of the 20 ledgers).
//
// Also pinned, on real actors and ledgers: a conviction settles a receipt alike whether a
// dishonest acceptance came before it or after, and a false conviction never slashes an honest
// worker, before or after honest acceptances.

const VERDICTS_STAKE = 1_000_000;
const NETWORK = "test/network";

/** One node's validator and ledger, with what it told its network. */
interface Node extends LedgerReads {
  id: Identity;
  hex: string;
  validator: ActorRef<ValidatorMessage>;
  told: NetworkMessage[];
  /** What the worker serves this node per receipt id (absent: withheld from it). */
  served: Map<string, ServedProof>;
  /** The verdicts it published or passed on (not back to `except`), in order. */
  passedOn(): Verdict[];
}

/** A small network of validators sharing one ledger clock, each its own ledger. */
async function network() {
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const systems: ActorSystem[] = [];
  const nodes: Node[] = [];
  const requester = Identity.generate();
  const keys: Identity[] = [];
  let n = 0;
  return {
    clock,
    requester,
    /** A validator with coin `p` and `models`; every key made so far is staked there. */
    async node(p: number, models: ValidatorModelSource = HONEST_MODELS): Promise<Node> {
      const id = Identity.generate();
      const system = new ActorSystem({ name: `s47-${nodes.length}` });
      systems.push(system);
      const told: NetworkMessage[] = [];
      const served = new Map<string, ServedProof>();
      await system.spawn<NetworkMessage>({
        name: NETWORK,
        factory: () => new RecordingNetwork(told),
      });
      const validator = await spawnValidator(system, {
        identity: id,
        ledgerDir: `${dir}/ledger-${nodes.length}`,
        clock,
        challengeProbability: p,
        network: NETWORK,
        models,
        source: { proof: (r) => Promise.resolve(served.get(receiptId(r))) },
      });
      const node: Node = {
        id,
        hex: toHex(id.publicKey),
        validator,
        told,
        served,
        passedOn: () => told.flatMap((m) => m.type === "publish_verdict" ? [m.verdict] : []),
        ...ledgerReads(() => validator, clock),
      };
      nodes.push(node);
      for (const key of [...keys, id]) await this.stakeOn(node, key);
      for (const other of nodes) if (other !== node) await this.stakeOn(other, id);
      keys.push(id);
      return node;
    },
    async stakeOn(node: Node, key: Identity): Promise<void> {
      await node.validator.ask({ type: "deposit", key: key.publicKey, amount: VERDICTS_STAKE });
    },
    /** A key staked on every node (a worker, or a validator known to all). */
    async staked(): Promise<Identity> {
      const key = Identity.generate();
      for (const node of nodes) await this.stakeOn(node, key);
      keys.push(key);
      return key;
    },
    /** `worker` runs a job (on `model`: a cheat runs another) and proves it. */
    async prove(worker: Identity, model = f.honest) {
      const job: TextJob = textJob(requester, `s47-${n++}`, {
        prompt: "The validator",
        params: { maxTokens: 4, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
      });
      const proved = await proveOn(job, worker, model);
      const id = receiptId(proved.receipt);
      const served = signServedProof(id, proved.proof, worker);
      return { id, job, receipt: proved.receipt, proof: proved.proof, served };
    },
    announce(node: Node, proved: { receipt: Receipt; job: TextJob }) {
      return announceAssigned(node.validator, proved.receipt, proved.job, requester, {
        origin: "ab".repeat(32),
      });
    },
    async close(): Promise<void> {
      for (const system of systems) await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** `to` hears `verdict` from the peer `from` (hex). */
function hear(to: Node, verdict: Verdict, from: string): Promise<string | undefined> {
  return to.validator.ask<string | undefined>({ type: "verdict", verdict, origin: from });
}

/** A validator's signed acceptance (`valid / ok`) of `id`, whatever the receipt holds. */
function acceptance(id: string, worker: Uint8Array, by: Identity): Verdict {
  return signVerdict({
    v: 1,
    subject: "inference",
    subjectId: id,
    target: worker,
    outcome: "valid",
    reason: "ok",
    issuedAt: START,
  }, by);
}

/** A model store that fails to read: every challenge here ends undecided (`unresolved`). */
const BROKEN_MODELS: ValidatorModelSource = {
  get: () => Promise.reject(new Error("model store unreadable")),
};

Deno.test("a ledger whose own challenge ended undecided still passes on a peer's withheld claim inside the window: the ledger behind it takes it over and slashes the withholder, who is paid nowhere", async () => {
  const net = await network();
  try {
    // V claims; S draws every receipt but cannot read its model store; P, connected to S
    // only, draws nothing: it hears the claim through S or not at all.
    const claimant = await net.node(0);
    const s = await net.node(1, BROKEN_MODELS);
    const p = await net.node(0);
    const worker = await net.staked();
    const proved = await net.prove(worker);
    // The worker withholds its proof data from everyone.
    for (const node of [claimant, s, p]) {
      assert.equal((await net.announce(node, proved)).recorded, true);
    }
    await s.drained();
    assert.equal((await s.record(proved.id))!.status, "unpaid", "S's own challenge is undecided");
    const claim = withheldVerdict(proved.id, worker.publicKey, net.clock.t, claimant.id);
    await hear(s, claim, claimant.hex);
    // What S passes on reaches P (the claim, when S passes it on: its window is open).
    const relayed = s.passedOn().filter((v) => toHex(v.validator) === claimant.hex);
    for (const verdict of relayed) await hear(p, verdict, s.hex);
    await p.drained();
    await p.closeWindow();
    const atP = await p.account(worker.publicKey);
    assert.equal((await p.record(proved.id))!.status, "fraud", "P took the claim over");
    assert.equal(atP.balance, 0, "the withholder is not paid behind S");
    assert.ok(atP.stake < VERDICTS_STAKE, "and is slashed there");
    assert.equal(relayed.length, 1, "S passed the claim on once");
  } finally {
    await net.close();
  }
});

Deno.test("a ledger that slashed a withholder on its own challenge still passes on another validator's withheld claim inside the window, and refuses it after", async () => {
  const net = await network();
  try {
    const claimant = await net.node(0);
    const s = await net.node(1);
    const p = await net.node(0);
    const worker = await net.staked();
    const proved = await net.prove(worker);
    for (const node of [claimant, s, p]) await net.announce(node, proved);
    await s.drained();
    assert.equal((await s.record(proved.id))!.status, "fraud", "S slashed it on its own challenge");
    const before = s.passedOn().length;
    await hear(
      s,
      withheldVerdict(proved.id, worker.publicKey, net.clock.t, claimant.id),
      claimant.hex,
    );
    assert.equal(s.passedOn().length, before + 1, "passed on");
    // Past the window it can change nothing anywhere: neither recorded nor passed on.
    const late = await net.node(0);
    net.clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await hear(s, acceptance(proved.id, worker.publicKey, late.id), late.hex);
    assert.equal(s.passedOn().length, before + 1, "nothing passed on after the window");
  } finally {
    await net.close();
  }
});

Deno.test("a cheat's conviction settles every ledger alike whether a dishonest acceptance came before it or after", async () => {
  const net = await network();
  try {
    const finder = await net.node(0);
    const first = await net.node(0);
    const last = await net.node(0);
    const liar = await net.staked();
    const cheat = await net.staked();
    const proved = await net.prove(cheat, f.otherSeed);
    for (const node of [finder, first, last]) await net.announce(node, proved);
    const result = await validateReceipt(
      { job: proved.job, receipt: proved.receipt, proof: proved.proof },
      f.honest,
      finder.id,
    );
    assert.equal(result.verdict.outcome, "fraud");
    const proof = result.fraudProof!;
    // The liar's acceptance reaches `first` before the conviction, `last` after.
    const lie = acceptance(proved.id, cheat.publicKey, liar);
    for (const node of [first]) await hear(node, lie, toHex(liar.publicKey));
    const settle = async (node: Node) => {
      await node.validator.ask({ type: "fraud_proof", proof, origin: finder.hex });
      await node.drained();
    };
    for (const node of [first, last]) await settle(node);
    await hear(last, lie, toHex(liar.publicKey));
    const balances = [];
    for (const node of [first, last]) {
      await node.closeWindow();
      assert.equal((await node.record(proved.id))!.status, "fraud");
      balances.push({
        cheat: await node.account(cheat.publicKey),
        finder: (await node.account(finder.id.publicKey)).balance,
        liar: await node.account(liar.publicKey),
      });
    }
    assert.deepEqual(balances[1], balances[0]);
    assert.equal(balances[0].cheat.balance, 0, "the cheat is paid nowhere");
    assert.ok(balances[0].cheat.stake < VERDICTS_STAKE, "and slashed everywhere");
    assert.ok(balances[0].finder > 0, "its finder rewarded everywhere");
  } finally {
    await net.close();
  }
});

Deno.test("a false conviction of an honest worker, before or after honest acceptances, never slashes it: every ledger pays it and charges the accuser alike", async () => {
  const net = await network();
  try {
    const judge = await net.node(1);
    const before = await net.node(0);
    const after = await net.node(0);
    const liar = await net.staked();
    const worker = await net.staked();
    const proved = await net.prove(worker);
    judge.served.set(proved.id, proved.served);
    for (const node of [judge, before, after]) await net.announce(node, proved);
    await judge.drained();
    const honest = judge.passedOn().find((v) => v.subjectId === proved.id)!;
    assert.equal(honest.outcome, "valid");
    const lie = falseProof(proved.receipt, liar);
    await hear(before, honest, judge.hex);
    for (const node of [judge, before, after]) {
      await node.validator.ask({ type: "fraud_proof", proof: lie, origin: toHex(liar.publicKey) });
      await node.drained();
    }
    await hear(after, honest, judge.hex);
    const outcomes = [];
    for (const node of [judge, before, after]) {
      await node.closeWindow();
      outcomes.push({
        status: (await node.record(proved.id))!.status,
        worker: await node.account(worker.publicKey),
        liar: await node.account(liar.publicKey),
      });
    }
    assert.deepEqual(outcomes[1], outcomes[0]);
    assert.deepEqual(outcomes[2], outcomes[0]);
    assert.equal(outcomes[0].status, "final");
    assert.ok(outcomes[0].worker.balance > 0);
    assert.equal(outcomes[0].worker.stake, VERDICTS_STAKE, "the honest worker is never slashed");
    assert.ok(outcomes[0].liar.stake < VERDICTS_STAKE, "the liar pays its penalty everywhere");
  } finally {
    await net.close();
  }
});

// -------------------------------------------------------------------------------------------------
// What a peer's verdict may cost a ledger. A verdict is recorded for good (append-only log)
// and passed on to every ledger peer, and stake is self-pledged: so its `details` are bounded
// in the one schema (`MAX_VERDICT_DETAILS_BYTES`), and a verdict about a receipt that is no
// longer open here (final, or past its window: it can change nothing) is neither recorded nor
// passed on. Asserted on the ledger: its log does not grow, and the worker is paid as before.
//
// It used to be recorded and passed on whatever it carried: 45 MB of padded verdicts from
// freshly pledged keys grew each ledger of the network by about 93 MB.

/** Details of exactly `bytes` bytes of canonical CBOR: `{ note: "x…x" }`. */
function detailsOf(bytes: number): Record<string, string> {
  // A map of one entry (1 byte), the key "note" (5), the string's head (3 bytes up to 65535).
  const details = { note: "x".repeat(bytes - 9) };
  assert.equal(encodeCanonical(details).length, bytes);
  return details;
}

Deno.test("verdict details are bounded in the schema: at the bound a verdict verifies, one byte over it is refused, on the wire too", () => {
  const by = Identity.generate();
  const signed = (details: Record<string, string>) =>
    signVerdict({
      v: 1,
      subject: "storage",
      subjectId: "audit-1",
      target: new Uint8Array(32),
      outcome: "valid",
      reason: "ok",
      details,
      issuedAt: 1,
    }, by);
  assert.equal(verifyVerdict(signed(detailsOf(MAX_VERDICT_DETAILS_BYTES))), true);
  const over = signed(detailsOf(MAX_VERDICT_DETAILS_BYTES + 1));
  assert.equal(verifyVerdict(over), false);
  assert.equal(verifyVerdict(signed({ note: "x".repeat(900_000) })), false);
  assert.equal(VerdictAnnouncementMessage.schema.safeParse({ verdict: over }).success, false);
});

Deno.test("padded verdicts from freshly staked keys are neither recorded nor passed on; honest verdicts of the largest kinds still are, and the worker is paid", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const proved = await t.prove(worker);
    assert.equal((await t.announce(proved)).recorded, true);
    const credit = (await t.record(proved.id))!.credit;
    assert.ok(credit > 0);
    // Keys pledged for nothing, each padding one verdict to most of a frame.
    const keys = [await t.staked(), await t.staked(), await t.staked()];
    const judges = [await t.staked(), await t.staked()];
    const before = await t.logBytes();
    for (const key of keys) {
      const padded = t.verdict(proved, key, "valid", "ok", { note: "x".repeat(900_000) });
      // Refused as a forgery: its signature does not cover what it carries (its connection is
      // charged a refusal for it, `network/peer_services.ts`).
      assert.deepEqual(
        await t.tell(padded),
        { queued: false, skipped: "bad_signature" },
        "a padded verdict is refused",
      );
    }
    assert.equal(await t.logBytes(), before, "the ledger did not grow");
    assert.equal(t.published().length, 0, "nothing was passed on");
    assert.equal((await t.stats()).refusedVerdicts, 3);

    // The largest honest verdicts: a failed takeover's 200-character message, in characters
    // of 3 UTF-8 bytes each, and a full validation's figures.
    const failed = failedChallenge(proved.receipt, "€".repeat(300), judges[0], true).verdict;
    const detailBytes = encodeCanonical(failed.details).length;
    assert.ok(detailBytes > 600 && detailBytes <= MAX_VERDICT_DETAILS_BYTES, `${detailBytes}`);
    const validated = (await validateReceipt(
      { job: proved.job, receipt: proved.receipt, proof: proved.proof },
      f.honest,
      judges[1],
    )).verdict;
    assert.equal(validated.outcome, "valid");
    for (const honest of [failed, validated]) {
      assert.equal(await t.tell(honest), verdictId(honest), "recorded");
    }
    assert.deepEqual(t.published().map(verdictId), [failed, validated].map(verdictId));
    const grown = (await t.logBytes()) - before;
    assert.ok(grown > 0 && grown < 8 * MAX_VERDICT_DETAILS_BYTES, `grew ${grown} bytes`);

    await t.closeWindow();
    assert.equal((await t.record(proved.id))!.status, "final");
    assert.deepEqual(await t.account(worker.publicKey), {
      balance: credit,
      stake: STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

Deno.test("a peer's verdict about a receipt past its window here, or final, is neither recorded nor passed on", async () => {
  const t = await startValidator({ p: 0, model: false });
  try {
    const worker = await t.staked();
    const first = await t.prove(worker);
    await t.announce(first);
    const second = await t.prove(worker);
    await t.announce(second);
    const credit = (await t.record(first.id))!.credit;
    const judge = await t.staked();
    // Past the window, not finalized yet (the finalize timer comes every 10 s): it can change
    // nothing any more, so a claim about it neither grows the ledger nor opens a takeover.
    t.clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    assert.equal((await t.record(first.id))!.status, "pending");
    let before = await t.logBytes();
    assert.equal(await t.claimWithheld(first, judge), undefined);
    assert.equal(await t.logBytes(), before, "the ledger did not grow");
    await t.validator.ask({ type: "finalize" });
    assert.equal((await t.record(second.id))!.status, "final");
    before = await t.logBytes();
    assert.equal(await t.tell(t.verdict(second, judge, "valid", "ok")), undefined);
    assert.equal(await t.logBytes(), before, "the ledger did not grow");
    assert.equal(t.published().length, 0, "nothing was passed on");
    assert.equal((await t.stats()).challenged, 0, "no takeover");
    assert.equal((await t.stats()).refusedVerdicts, 2);
    assert.equal((await t.record(first.id))!.status, "final");
    assert.equal((await t.account(worker.publicKey)).balance, 2 * credit, "both are paid");
  } finally {
    await t.close();
  }
});
