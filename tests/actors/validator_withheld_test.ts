/**
 * A staked peer's "proof withheld" verdict (`invalid / proof_unavailable`) about another
 * worker's receipt: nobody can prove it to a third party, so the validator that hears it asks
 * the worker itself (takes the challenge over). What each ledger books, asserted on balances,
 * stake and status after the window:
 *
 * - a validator that lacks the model still asks: the claim is about availability, not about the
 *   inference. Served (signed, opens the commitment): cleared (this ledger credits nothing on
 *   a model it cannot get, claim or not; those that hold it pay); withheld here too: slashed;
 *   served but not opening: a `commitment` fraud proof, slashed. It used to end `inconclusive`
 *   and leave the honest job unpaid on one free, false peer verdict.
 * - one takeover per receipt, and one verdict per accuser per receipt: the same claim re-signed
 *   with a new timestamp is neither recorded nor passed on, and opens no second challenge. It
 *   used to open a challenge (a proof fetch, a forward pass) and a gossip round each time, and
 *   once the worker had let its proof data go, an honest, once-cleared receipt was slashed.
 *
 * The validator's own coin never fires here (p = 0): only the peer's verdict makes it ask.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import {
  announceAssigned,
  f,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
  withheldVerdict,
} from "./_validator_fixture.ts";

const NETWORK = "test/network";
const WORKER_STAKE = 1_000_000;
const ACCUSER_STAKE = 1_000;

async function setup(options: { model: boolean }) {
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "withheld" });
  const told: NetworkMessage[] = [];
  /** What the worker serves per receipt id (absent: withheld). */
  const served = new Map<string, ServedProof>();
  let fetches = 0;
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const accuser = Identity.generate();
  await system.spawn<NetworkMessage>({ name: NETWORK, factory: () => new RecordingNetwork(told) });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: 0,
    network: NETWORK,
    models: {
      get: (cid) =>
        Promise.resolve(options.model && cid === f.honest.info.cid ? f.honest : undefined),
    },
    source: {
      proof: (r) => {
        fetches++;
        return Promise.resolve(served.get(receiptId(r)));
      },
    },
  });
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  await validator.ask({ type: "deposit", key: accuser.publicKey, amount: ACCUSER_STAKE });
  // Its own fraud proofs are settled only with stake of its own behind them.
  await validator.ask({ type: "deposit", key: me.publicKey, amount: ACCUSER_STAKE });
  const ledger = ledgerReads(() => validator, clock);
  const record = async (id: string) => (await ledger.record(id))!;
  return {
    validator,
    told,
    served,
    worker,
    accuser,
    fetches: () => fetches,
    stats: ledger.stats,
    /** The worker's honest, assigned receipt, announced by a peer; it serves its proof. */
    async prove(nonce: string) {
      const job = textJob(requester, nonce, { prompt: "The validator" });
      const proved = await proveOn(job, worker);
      const id = receiptId(proved.receipt);
      served.set(id, signServedProof(id, proved.proof, worker));
      const handled = await announceAssigned(validator, proved.receipt, job, requester, {
        origin: "ee".repeat(32),
      });
      assert.equal(handled.recorded, true);
      assert.equal(handled.challenged, false);
      return { id, proof: proved.proof };
    },
    /** `by`'s signed "proof withheld" claim about `id`, sent by `by` itself. */
    accuse(id: string, issuedAt: number, by = accuser) {
      const verdict = withheldVerdict(id, worker.publicKey, issuedAt, by, {});
      return validator.ask<string | undefined>({
        type: "verdict",
        verdict,
        origin: toHex(by.publicKey),
      });
    },
    /** Taken-over challenges (and their fraud proofs) run off the mailbox: wait for them. */
    drained: ledger.drained,
    status: async (id: string) => (await record(id)).status,
    record,
    account: ledger.account,
    closeWindow: ledger.closeWindow,
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("without the model, a peer's 'proof withheld' claim is still checked: served is cleared, withheld or not opening is slashed", async () => {
  const t = await setup({ model: false });
  try {
    const honest = await t.prove("honest");
    const withheld = await t.prove("withheld");
    const garbled = await t.prove("garbled");
    t.served.delete(withheld.id);
    // Data the worker signs as what it serves, but not what it committed to.
    const tokens = garbled.proof.tokens.slice();
    tokens[0] ^= 1;
    t.served.set(
      garbled.id,
      signServedProof(garbled.id, { ...garbled.proof, tokens }, t.worker),
    );
    const honestRecord = await t.record(honest.id);
    const withheldRecord = await t.record(withheld.id);
    const garbledRecord = await t.record(garbled.id);
    for (const { id } of [honest, withheld, garbled]) assert.ok(await t.accuse(id, START));
    await t.drained();
    assert.equal((await t.stats()).challenged, 3);
    await t.closeWindow();
    assert.equal(await t.status(honest.id), "final", "the honest job is cleared, not slashed");
    assert.equal(await t.status(withheld.id), "fraud");
    assert.equal(await t.status(garbled.id), "fraud");
    // Without the model this ledger credits none of them (it could check none).
    assert.equal(honestRecord.credit, 0);
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE - withheldRecord.locked - garbledRecord.locked,
      locked: 0,
    });
    // The accuser's claim cost it nothing (it cannot be proven false either way).
    assert.equal((await t.account(t.accuser.publicKey)).stake, ACCUSER_STAKE);
  } finally {
    await t.close();
  }
});

Deno.test("one takeover per receipt: the same claim re-signed with new timestamps is neither recorded nor passed on, and no claim asks the worker twice", async () => {
  const t = await setup({ model: true });
  try {
    const { id } = await t.prove("replayed");
    const record = await t.record(id);
    assert.ok(await t.accuse(id, START));
    await t.drained();
    assert.equal(await t.status(id), "pending", "served and valid: cleared");
    assert.equal(t.fetches(), 1);
    // The worker has since let its proof data go (served once; it keeps it only so long).
    t.served.delete(id);
    const answers = [];
    for (let i = 1; i <= 5; i++) answers.push(await t.accuse(id, START + i));
    // Another staked accuser's claim is news (recorded, passed on) but asks nobody again:
    // this validator has had its answer from the worker.
    const other = Identity.generate();
    await t.validator.ask({ type: "deposit", key: other.publicKey, amount: ACCUSER_STAKE });
    assert.ok(await t.accuse(id, START + 9, other));
    await t.drained();
    await t.closeWindow();
    assert.equal(await t.status(id), "final", "the honest, cleared job is paid");
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: record.credit,
      stake: WORKER_STAKE,
      locked: 0,
    });
    assert.deepEqual(answers, [undefined, undefined, undefined, undefined, undefined]);
    assert.equal((await t.stats()).challenged, 1);
    assert.equal(t.fetches(), 1);
    const passedOn = t.told.filter((m) =>
      m.type === "publish_verdict" && m.except === toHex(t.accuser.publicKey)
    );
    assert.equal(passedOn.length, 1, "the accuser's claim went on once");
    assert.ok(
      t.told.some((m) => m.type === "publish_verdict" && m.except === toHex(other.publicKey)),
    );
  } finally {
    await t.close();
  }
});
