/**
 * A lost worker's wrong tokens are convicted in every ledger, not only its router's: three nodes
 * in a line, A — B — C, over real NetworkActors and ValidatorActors. A's router lost a worker
 * whose signed stream the takeovers refused; A's validator replays the claim, convicts the worker
 * and passes the claim on as its signed stream proof. B replays it, convicts and passes it on to
 * C, which replays it and convicts. Each ledger cuts the
 * same stake and pays A the same share. A proof the replay refutes charges its accuser the
 * penalty in each ledger it reaches, and the worker keeps its stake everywhere.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type {
  StreamClaimHandled,
  StreamProofHandled,
  ValidatorStats,
} from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { PLEDGES_PUSHED_ON_CONNECT, signStakePledge } from "../../protocols/stake_pledge.ts";
import { signStreamProof } from "../../protocols/stream_proof.ts";
import type { Account } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import { HONEST_MODELS, START } from "../actors/_validator_fixture.ts";
import {
  claimOf,
  honestIds,
  job,
  lyingStream,
  streamCut,
  TOKENS,
  WRONG_AT,
} from "../actors/_stream_claim_fixture.ts";
import { joinLedgerNodes, type LedgerNode, spawnLedgerNode } from "./_ledger_node.ts";

const NODE_STAKE = 10_000;
const WORKER_STAKE = 1_000_000;
/** The lock of the receipt the liar's stream would have been, its prompt included. */
const SLASHED = streamCut(TOKENS);
const SHARE = SLASHED * DEFAULT_ECONOMICS.validatorRewardShare;
const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;

/** `count` pledged nodes, not joined, in a fresh system; `run` gets them and their keys. */
async function withNodes(
  count: number,
  run: (nodes: LedgerNode[], ids: Identity[]) => Promise<void>,
) {
  const system = new ActorSystem({ name: "stream-proof-gossip" });
  const dir = await Deno.makeTempDir();
  const ids = Array.from({ length: count }, Identity.generate);
  try {
    const nodes = await Promise.all(
      ids.map((identity, i) =>
        spawnLedgerNode(system, dir, `n${i}`, {
          identity,
          pledge: signStakePledge(identity, NODE_STAKE, 1),
          models: HONEST_MODELS,
          clock: { t: START },
        })
      ),
    );
    await run(nodes, ids);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Three pledged nodes joined in a line, A — B — C; `run` gets them. */
function inALine(
  run: (nodes: { a: LedgerNode; b: LedgerNode; c: LedgerNode; ids: Identity[] }) => Promise<void>,
) {
  return withNodes(3, async ([a, b, c], ids) => {
    await joinLedgerNodes(a, b);
    await joinLedgerNodes(b, c);
    await run({ a, b, c, ids });
  });
}

/** `key`'s pledge of `amount`, handed to `node` as from a peer: whether it was recorded. */
const pledgeAt = (node: LedgerNode, key: Identity, amount: number) =>
  node.validator.ask({
    type: "pledge",
    pledge: signStakePledge(key, amount, 1),
    origin: "ee".repeat(32),
  });

const accountIn = (node: LedgerNode, key: Identity) =>
  node.validator.ask<Account>({ type: "account", key: key.publicKey });

/** `key`'s pledge of `amount`, handed to `node` as from a peer, and gossiped to the others. */
async function pledged(node: LedgerNode, everyone: LedgerNode[], key: Identity, amount: number) {
  assert.equal(await pledgeAt(node, key, amount), true);
  for (const other of everyone) {
    await eventually(async () => (await accountIn(other, key)).stake === amount, "the pledge");
  }
}

Deno.test("a stream conviction reaches every ledger: A's router's claim, confirmed by A, is replayed and settled by B and by C; each cuts the worker the same and pays A the same share", async () => {
  await inALine(async ({ a, b, c, ids: [keyA] }) => {
    const liar = Identity.generate();
    await eventually(async () => (await accountIn(c, keyA)).stake === NODE_STAKE, "A's pledge");
    await pledged(b, [a, b, c], liar, WORKER_STAKE);
    const { j, ids } = await lyingStream("gossip", keyA);
    const handled = await a.validator.ask<StreamClaimHandled>({
      type: "stream_claim",
      claim: claimOf(j, liar, ids, WRONG_AT),
    });
    assert.equal((await handled.result)?.reason, "confirmed");
    // Failed before: the conviction stayed in A's ledger; B and C left the liar its stake.
    for (const node of [a, b, c]) {
      await eventually(
        async () => (await accountIn(node, liar)).stake === WORKER_STAKE - SLASHED,
        "the liar cut in every ledger",
      );
      assert.equal((await accountIn(node, keyA)).balance, SHARE, "A paid its share");
      assert.equal(await node.validator.ask({ type: "convicted", key: liar.publicKey }), true);
    }
    for (const node of [b, c]) {
      const stats = await node.validator.ask<ValidatorStats>({ type: "stats" });
      assert.equal(stats.streamProofs.confirmed, 1);
    }
  });
});

Deno.test("a stream proof the replay refutes costs its accuser the penalty in every ledger it reaches (each replays it itself); the worker it accused keeps its stake everywhere", async () => {
  await inALine(async ({ b, c }) => {
    const [honest, accuser] = [Identity.generate(), Identity.generate()];
    await pledged(b, [b, c], honest, WORKER_STAKE);
    await pledged(b, [b, c], accuser, NODE_STAKE);
    const j = job("gossip-refuted", accuser);
    const proof = signStreamProof(
      claimOf(j, honest, await honestIds(j), WRONG_AT),
      accuser,
      START,
    );
    const handled = await b.validator.ask<StreamProofHandled>({
      type: "stream_proof",
      proof,
      origin: "dd".repeat(32),
    });
    assert.equal((await handled.result)?.reason, "not_reproduced");
    for (const node of [b, c]) {
      await eventually(
        async () => (await accountIn(node, accuser)).stake === NODE_STAKE - PENALTY,
        "the accuser charged in every ledger",
      );
      assert.equal((await accountIn(node, honest)).stake, WORKER_STAKE);
      assert.equal(await node.validator.ask({ type: "convicted", key: honest.publicKey }), false);
    }
  });
});

Deno.test("a stream proof passed on to a ledger that lacks the worker's pledge goes after the pledge: the worker is cut there as everywhere, not convicted with nothing to cut", () =>
  withNodes(2, async ([b, c], [keyB]) => {
    const [liar, accuser] = [Identity.generate(), Identity.generate()];
    // B holds the liar's pledge, then more newer ones than it pushes on connect: the liar's (the
    // oldest) is not among those C gets when they join. The accuser pledged in both.
    assert.equal(await pledgeAt(b, liar, WORKER_STAKE), true);
    for (let i = 0; i <= PLEDGES_PUSHED_ON_CONNECT; i++) {
      assert.equal(await pledgeAt(b, Identity.generate(), 1_000), true);
    }
    for (const to of [b, c]) assert.equal(await pledgeAt(to, accuser, NODE_STAKE), true);
    await joinLedgerNodes(b, c);
    await eventually(async () => (await accountIn(c, keyB)).stake === NODE_STAKE, "B's pledge");
    assert.equal((await accountIn(c, liar)).stake, 0, "C has not heard of the liar");
    const { j, ids } = await lyingStream("worker-pledge", accuser);
    const handled = await b.validator.ask<StreamProofHandled>({
      type: "stream_proof",
      proof: signStreamProof(claimOf(j, liar, ids, WRONG_AT), accuser, START),
      origin: "dd".repeat(32),
    });
    assert.equal((await handled.result)?.reason, "confirmed");
    await eventually(async () => {
      const stats = await c.validator.ask<ValidatorStats>({ type: "stats" });
      return stats.streamProofs.confirmed + stats.streamProofs.skipped > 0;
    }, "C to take the proof");
    // Failed before: C convicted the liar with no stake to cut (0), and its pledge, coming later,
    // left it its whole stake there.
    for (const at of [b, c]) {
      assert.equal((await accountIn(at, liar)).stake, WORKER_STAKE - SLASHED);
      assert.equal((await accountIn(at, accuser)).balance, SHARE);
    }
  }));

Deno.test("a ledger that connects after the conviction gets the stream proof in its catch-up: it cuts the liar as the router's ledger did and pays the router its share", () =>
  withNodes(2, async ([a, c], [keyA]) => {
    const liar = Identity.generate();
    assert.equal(await pledgeAt(a, liar, WORKER_STAKE), true);
    // A convicts the liar while C is away.
    const { j, ids } = await lyingStream("catch-up", keyA);
    const handled = await a.validator.ask<StreamClaimHandled>({
      type: "stream_claim",
      claim: claimOf(j, liar, ids, WRONG_AT),
    });
    assert.equal((await handled.result)?.reason, "confirmed");
    assert.equal((await accountIn(a, liar)).stake, WORKER_STAKE - SLASHED);
    // A's gossip of it is done (to no peer): the network looks up two pledges in the ledger,
    // each a round trip between the two actors, before it passes a proof on.
    for (let i = 0; i < 3; i++) {
      await a.validator.ask({ type: "stats" });
      await a.network.ask({ type: "peers" });
    }
    // C connects later. Failed before: gossip had reached nobody, and C left the liar its stake.
    await joinLedgerNodes(c, a);
    await eventually(
      async () => (await accountIn(c, liar)).stake === WORKER_STAKE - SLASHED,
      "the liar cut in the late ledger",
    );
    assert.equal((await accountIn(c, keyA)).balance, SHARE);
    assert.equal(await c.validator.ask({ type: "convicted", key: liar.publicKey }), true);
  }));
