/**
 * Review s47: several validators' verdicts on one receipt, across ledgers that settled it in
 * different ways. A peer's verdict moves no balance itself, but an `invalid / proof_unavailable`
 * one makes every ledger it reaches ask the worker (a takeover), and verdicts reach ledgers not
 * connected to their author only by being passed on. A ledger whose own challenge had ended
 * (unresolved, slashed) refused the verdict and so did not pass it on: a ledger behind it never
 * heard the claim and paid the worker that withheld from the claimant and from it (in a 20-node
 * run with 18 challengers one verdict reached 1 of the 20 ledgers).
 *
 * Also pinned, on real actors and ledgers: a conviction settles a receipt alike whether a
 * dishonest acceptance came before it or after, and a false conviction never slashes an honest
 * worker, before or after honest acceptances.
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
import { signVerdict, type Verdict } from "../../protocols/verdict.ts";
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

const STAKE = 1_000_000;
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
      await node.validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
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

Deno.test("review s47: a ledger whose own challenge ended undecided still passes on a peer's withheld claim inside the window: the ledger behind it takes it over and slashes the withholder, who is paid nowhere", async () => {
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
    assert.ok(atP.stake < STAKE, "and is slashed there");
    assert.equal(relayed.length, 1, "S passed the claim on once");
  } finally {
    await net.close();
  }
});

Deno.test("review s47: a ledger that slashed a withholder on its own challenge still passes on another validator's withheld claim inside the window, and refuses it after", async () => {
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

Deno.test("review s47: a cheat's conviction settles every ledger alike whether a dishonest acceptance came before it or after", async () => {
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
    assert.ok(balances[0].cheat.stake < STAKE, "and slashed everywhere");
    assert.ok(balances[0].finder > 0, "its finder rewarded everywhere");
  } finally {
    await net.close();
  }
});

Deno.test("review s47: a false conviction of an honest worker, before or after honest acceptances, never slashes it: every ledger pays it and charges the accuser alike", async () => {
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
    assert.equal(outcomes[0].worker.stake, STAKE, "the honest worker is never slashed");
    assert.ok(outcomes[0].liar.stake < STAKE, "the liar pays its penalty everywhere");
  } finally {
    await net.close();
  }
});
