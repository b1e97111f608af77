/**
 * Who pays when a challenged worker's proof data does not come (`actors/_proof_fetch.ts`): every
 * route is tried until the deadline, a relay speaks for itself and not for the worker, and a
 * library's own proof hook failing is this node's gap, not the worker's withholding. Assertions are
 * on the ledger after the window.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Actor } from "../../actors/actor.ts";
import type { NetworkMessage, PeerInfo } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { VALIDATION_PROTOCOL } from "../../protocols/inference_messages.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { eventually } from "../_helpers/wait.ts";

// -------------------------------------------------------------------------------------------------
// A challenged worker that does not deliver its proof data by the deadline withheld it,
// whichever way it failed to deliver: no answer, "none", or no route reaching it — its own
// connection, the job's requester, the other ledger-keeping peers, each tried again until the
// deadline. It used to end `inconclusive / worker_unreachable` (unpaid, not slashed) when only a
// relay answered, so a requester colluding with a cheat answered "none" for it and the cheat
// was never slashed (an auditor: 5 of 5 drawn cheats unpaid, stake untouched). A worker reached
// late but within the deadline is judged on what it serves; the validator's own failure stays
// unpaid and unslashed. A validator not connected to the worker dials it by its key (`reach`),
// so an honest worker whose requester answers "none" for it is still reached. Assertions are on
// the ledger after the window: status, balance, stake.
//
// The routes are a stand-in NetworkActor: which keys it is connected to, what each connection
// answers a proof request, and whether the worker's connection comes up only once dialled.

const WORKER_STAKE = 10_000;
/** Short: the worker is never reached, so the test waits the whole deadline out. */
const SHORT_DEADLINE_MS = 1_200;
/** Long: the worker is reached in the third round (about 1.5 s), far inside it. */
const LONG_DEADLINE_MS = 30_000;

/**
 * What one route answers a proof request: the worker's data, `null`, an error, or nothing;
 * `absent`: no connection to that peer at all.
 */
type Answer = "served" | "none" | "fails" | "silent" | "absent";

interface Routes {
  /**
   * The worker's own connection: absent until this many lookups (Infinity: never), or until a
   * `reach` for the worker's key was told (`"reach"`: reachable only by dialling its key).
   */
  workerFrom: number | "reach";
  /** What the worker answers on its own connection. */
  worker: Answer;
  /** What the job's requester answers as a relay. */
  requester: Answer;
  /** What another ledger-keeping peer answers as a relay. */
  peer: Answer;
}

/**
 * Stand-in NetworkActor: the connections the routes describe, counting what was asked and
 * recording the dials (`reach`) it was told.
 */
class RouteTable implements Actor<NetworkMessage> {
  readonly asked = { worker: 0, requester: 0, peer: 0 };
  /** The `reach` messages received: the hex key dialled and for how long. */
  readonly reaches: { key: string; forMs: number; holder?: string }[] = [];
  /** The `release_reach` messages received: the dial is no longer needed. */
  readonly releases: { key: string; holder?: string }[] = [];
  lookups = 0;
  constructor(
    readonly routes: Routes,
    readonly keys: { worker: string; requester: string; peer: string },
    readonly served: () => ServedProof,
  ) {}
  receive(message: NetworkMessage): unknown {
    if (message.type === "peers") {
      return [this.keys.requester, this.keys.peer].map((key): PeerInfo => ({
        key,
        address: "mem",
        outbound: true,
        protocols: [`${VALIDATION_PROTOCOL.name}/${VALIDATION_PROTOCOL.version}`],
        models: [],
        convicted: false,
        roles: [],
      }));
    }
    if (message.type === "release_reach") {
      this.releases.push({ key: toHex(message.key), holder: message.holder });
      return undefined;
    }
    if (message.type === "reach") {
      const key = toHex(message.key);
      this.reaches.push({ key, forMs: message.forMs, holder: message.holder });
      return key === this.keys.worker && this.routes.workerFrom === "reach";
    }
    if (message.type !== "connection_to") return undefined;
    const key = toHex(message.key);
    if (key === this.keys.worker) {
      ++this.lookups;
      const from = this.routes.workerFrom;
      const up = from === "reach"
        ? this.reaches.some((reach) => reach.key === this.keys.worker)
        : this.lookups > from;
      return up ? this.#connection("worker") : undefined;
    }
    if (key === this.keys.requester) return this.#connection("requester");
    if (key === this.keys.peer) return this.#connection("peer");
    return undefined;
  }
  #connection(who: "worker" | "requester" | "peer") {
    if (this.routes[who] === "absent") return undefined;
    return {
      request: (
        _type: unknown,
        _body: unknown,
        options: { timeoutMs?: number; signal?: AbortSignal },
      ) => {
        this.asked[who]++;
        const answer = this.routes[who];
        if (answer === "served") return Promise.resolve({ served: this.served() });
        if (answer === "none") return Promise.resolve({ served: null });
        if (answer === "fails") return Promise.reject(new Error("worker_unreachable"));
        // Silent: answers nothing; the request times out (as a Connection's does) or is
        // cancelled.
        return new Promise((_, reject) => {
          const timer = setTimeout(() => reject(new Error("timeout")), options.timeoutMs);
          options.signal?.addEventListener("abort", () => {
            clearTimeout(timer);
            reject(options.signal!.reason);
          });
        });
      },
    };
  }
}

async function setup(routes: Routes, deadlineMs: number, cheat = false) {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const peer = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const job = textJob(requester, crypto.randomUUID());
  const proved = await proveOn(job, worker, cheat ? f.otherSeed : f.honest);
  const id = receiptId(proved.receipt);
  const table = new RouteTable(
    routes,
    {
      worker: toHex(worker.publicKey),
      requester: toHex(requester.publicKey),
      peer: toHex(peer.publicKey),
    },
    () => signServedProof(id, proved.proof, worker),
  );
  let system = new ActorSystem({ name: "proof-delivery" });
  const spawn = async (s: ActorSystem) => {
    await s.spawn<NetworkMessage>({ name: "node/network", factory: () => table });
    return await spawnValidator(s, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 1,
      network: "node/network",
      proofDeadlineMs: deadlineMs,
      models: { has: (cid) => cid === f.honest.info.cid, ...HONEST_MODELS },
    });
  };
  let validator = await spawn(system);
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  // The validator's own stake backs its fraud proofs (an unstaked accuser's are not checked).
  await validator.ask({ type: "deposit", key: me.publicKey, amount: 1_000 });
  const credit = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
  const ledger = ledgerReads(() => validator, clock);
  return {
    table,
    credit,
    slash: credit * DEFAULT_ECONOMICS.slashMultiplier,
    submit: () => announceAssigned(validator, proved.receipt, job, requester),
    /** Status of the receipt and the worker's account once the window closed. */
    async afterWindow() {
      await ledger.closeWindow();
      const record = (await ledger.record(id))!;
      const account = await ledger.account(worker.publicKey);
      return { status: record.status, account };
    },
    async restart() {
      await system.shutdown();
      system = new ActorSystem({ name: "proof-delivery-2" });
      validator = await spawn(system);
    },
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const unreached: [string, Routes][] = [
  [
    "not connected; the requester relays 'none'; another peer cannot reach it either",
    { workerFrom: Infinity, worker: "served", requester: "none", peer: "fails" },
  ],
  [
    "its own connection drops at every request; every relay answers 'none'",
    { workerFrom: 0, worker: "fails", requester: "none", peer: "none" },
  ],
  [
    "not connected; the requester holds the request unanswered; another peer answers 'none'",
    { workerFrom: Infinity, worker: "served", requester: "silent", peer: "none" },
  ],
];
for (const [how, routes] of unreached) {
  Deno.test(`a worker no route reaches by the deadline is slashed like a withholder (${how})`, async () => {
    const t = await setup(routes, SHORT_DEADLINE_MS);
    try {
      const handled = await t.submit();
      const { verdict } = await handled.result!;
      assert.deepEqual([verdict.outcome, verdict.reason], ["invalid", "proof_unavailable"]);
      // Every route was tried, and tried again, until the deadline.
      assert.ok(t.table.lookups >= 2, `worker looked up ${t.table.lookups}×`);
      assert.ok(
        t.table.asked.requester >= 1 && t.table.asked.peer >= 2,
        JSON.stringify(t.table.asked),
      );
      const { status, account } = await t.afterWindow();
      assert.equal(status, "fraud");
      assert.deepEqual(account, { balance: 0, stake: WORKER_STAKE - t.slash, locked: 0 });
    } finally {
      await t.close();
    }
  });
}

const late: [string, Routes, boolean][] = [
  [
    "honest, on its own connection from the third round",
    { workerFrom: 2, worker: "served", requester: "none", peer: "fails" },
    false,
  ],
  [
    "honest, only through another ledger-keeping peer (the requester relays 'none')",
    { workerFrom: Infinity, worker: "served", requester: "none", peer: "served" },
    false,
  ],
  [
    "a cheat (another model), on its own connection from the third round",
    { workerFrom: 2, worker: "served", requester: "none", peer: "fails" },
    true,
  ],
];
for (const [who, routes, cheat] of late) {
  Deno.test(`a worker reached late but within the deadline is judged on what it serves (${who})`, async () => {
    const t = await setup(routes, LONG_DEADLINE_MS, cheat);
    try {
      const { verdict } = await (await t.submit()).result!;
      assert.equal(verdict.outcome, cheat ? "fraud" : "valid", verdict.reason);
      const { status, account } = await t.afterWindow();
      if (cheat) {
        assert.equal(status, "fraud");
        assert.deepEqual(account, { balance: 0, stake: WORKER_STAKE - t.slash, locked: 0 });
      } else {
        assert.equal(status, "final");
        assert.deepEqual(account, { balance: t.credit, stake: WORKER_STAKE, locked: 0 });
      }
    } finally {
      await t.close();
    }
  });
}

Deno.test("a validator that restarts mid-fetch runs the challenge again (review s79 crash F3): neither paid nor slashed while it runs", async () => {
  const routes: Routes = {
    workerFrom: Infinity,
    worker: "served",
    requester: "none",
    peer: "fails",
  };
  const t = await setup(routes, LONG_DEADLINE_MS);
  try {
    const handled = await t.submit();
    assert.equal(handled.challenged, true);
    await t.restart();
    // The restarted validator asks again, every route (before: the challenge ended unpaid).
    const asked = t.table.lookups;
    await eventually(() => t.table.lookups > asked, "the worker looked up again");
    const { status, account } = await t.afterWindow();
    assert.equal(status, "challenged", "still open: judged at its fresh deadline");
    assert.deepEqual({ balance: account.balance, stake: account.stake }, {
      balance: 0,
      stake: WORKER_STAKE,
    });
  } finally {
    await t.close();
  }
});

Deno.test("a validator with no route to anyone for the whole deadline (its own network down) signs inconclusive / worker_unreachable: unpaid, nobody slashed", async () => {
  const routes: Routes = {
    workerFrom: Infinity,
    worker: "served",
    requester: "absent",
    peer: "absent",
  };
  const t = await setup(routes, SHORT_DEADLINE_MS);
  try {
    const { verdict } = await (await t.submit()).result!;
    assert.deepEqual([verdict.outcome, verdict.reason], ["inconclusive", "worker_unreachable"]);
    assert.ok(t.table.lookups >= 2, `worker looked up ${t.table.lookups}×`);
    // It dialled the worker, but a dial that connected nothing is no route.
    assert.ok(t.table.reaches.length >= 1, `${t.table.reaches.length} dials`);
    const { status, account } = await t.afterWindow();
    assert.equal(status, "unpaid");
    assert.deepEqual(account, { balance: 0, stake: WORKER_STAKE, locked: 0 });
  } finally {
    await t.close();
  }
});

/** Every dial the table was told: for the worker's key, for no longer than `deadlineMs`. */
function assertDialledWorker(t: { table: RouteTable }, deadlineMs: number, atLeast: number) {
  const { reaches, keys } = t.table;
  assert.ok(reaches.length >= atLeast, `${reaches.length} dials`);
  for (const { key, forMs } of reaches) {
    assert.equal(key, keys.worker);
    assert.ok(forMs > 0 && forMs <= deadlineMs, `dialled for ${forMs} ms`);
  }
}

Deno.test("an honest worker whose requester answers 'none', reachable only by dialling its key, is dialled, serves its proof, and is paid", async () => {
  const routes: Routes = {
    workerFrom: "reach",
    worker: "served",
    requester: "none",
    peer: "absent",
  };
  // Long: it is dialled in the first round and served in the second (about 0.5 s).
  const t = await setup(routes, LONG_DEADLINE_MS);
  try {
    const { verdict } = await (await t.submit()).result!;
    assert.equal(verdict.outcome, "valid", verdict.reason);
    assert.equal(t.table.asked.worker, 1);
    assertDialledWorker(t, LONG_DEADLINE_MS, 1);
    // Dialled on behalf of the receipt, and released once its proof came (not held to the
    // deadline: the dials a node keeps at once are few).
    const holder = t.table.reaches[0].holder;
    assert.ok(holder && t.table.reaches.every((reach) => reach.holder === holder));
    assert.deepEqual(t.table.releases, [{ key: t.table.keys.worker, holder }]);
    const { status, account } = await t.afterWindow();
    assert.equal(status, "final");
    assert.deepEqual(account, { balance: t.credit, stake: WORKER_STAKE, locked: 0 });
  } finally {
    await t.close();
  }
});

Deno.test("a worker dialled by its key that never connects is still slashed like a withholder, dialled each round for the time left", async () => {
  const routes: Routes = {
    workerFrom: "reach",
    worker: "absent",
    requester: "none",
    peer: "fails",
  };
  const t = await setup(routes, SHORT_DEADLINE_MS);
  try {
    const { verdict } = await (await t.submit()).result!;
    assert.deepEqual([verdict.outcome, verdict.reason], ["invalid", "proof_unavailable"]);
    assertDialledWorker(t, SHORT_DEADLINE_MS, 2);
    // Each round dials for what is left of the deadline, less and less.
    const forMs = t.table.reaches.map((reach) => reach.forMs);
    assert.ok(forMs.every((ms, i) => i === 0 || ms < forMs[i - 1]), `${forMs}`);
    const { status, account } = await t.afterWindow();
    assert.equal(status, "fraud");
    assert.deepEqual(account, { balance: 0, stake: WORKER_STAKE - t.slash, locked: 0 });
  } finally {
    await t.close();
  }
});

// -------------------------------------------------------------------------------------------------
// Who pays when a validator cannot reach the worker itself. It asks through the job's requester
// (the relay its assignment names); a relay that answers "none", or brings data the worker did
// not sign, speaks for itself, not for the worker: it is asked again until the deadline. A worker
// that delivers nothing signed by then, by any route, withheld: slashed. It used to end
// `inconclusive / worker_unreachable` (not paid, not slashed) when only a relay had answered, so
// a requester colluding with a cheat answered "none" for it and the cheat was never slashed; an
// honest worker's duty is to stay reachable (directly or through its relays) until the deadline.
// A worker asked directly that answers "none" has refused: slashed at once. Every route is tried:
// `tests/actors/validator_proof_delivery_test.ts`.

for (const answer of ["none", "unsigned data", "none, from the worker itself"] as const) {
  Deno.test(`proof requested, answer: ${answer} → ${answer.includes("worker itself") ? "refused: slashed" : "nothing signed by the deadline: withheld, slashed"}`, async () => {
    const direct = answer.includes("worker itself");
    const me = Identity.generate();
    const worker = Identity.generate();
    const requester = Identity.generate(); // the relay: lies
    const clock = { t: START };
    const dir = await Deno.makeTempDir();
    const system = new ActorSystem({ name: "relay" });
    let relayAsked = 0;
    let unsigned = (): unknown => null;
    let workerAsked = 0;
    // A stand-in NetworkActor: not connected to the worker; connected to the requester, which
    // answers every proof request with `null` (it never asks the worker).
    await system.spawn<{ type: string; key?: Uint8Array }>({
      name: "node/network",
      factory: () => ({
        receive(m: { type: string; key?: Uint8Array }) {
          if (m.type !== "connection_to") return undefined;
          if (bytesEqual(m.key!, worker.publicKey)) {
            workerAsked++;
            return direct ? { request: () => Promise.resolve({ served: null }) } : undefined;
          }
          if (bytesEqual(m.key!, requester.publicKey)) {
            return {
              request: () => {
                relayAsked++;
                return Promise.resolve({ served: answer === "none" ? null : unsigned() });
              },
            };
          }
          return undefined;
        },
      }),
    });
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 1,
      network: "node/network",
      proofDeadlineMs: 1_200, // two asks: at once, then after the first 500 ms pause
      models: HONEST_MODELS,
    });
    try {
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
      const job = textJob(requester, "job-honest");
      // HONEST work, on the right model.
      const proved = await proveOn(job, worker);
      unsigned = () => ({ proof: proved.proof, sig: new Uint8Array(64) });
      const id = receiptId(proved.receipt);
      const handled = await announceAssigned(validator, proved.receipt, job, requester, {
        issuedAt: START,
      });
      assert.equal(handled.challenged, true);
      const result = await handled.result!;
      assert.deepEqual([result.verdict.outcome, result.verdict.reason], [
        "invalid",
        "proof_unavailable",
      ]);
      if (!direct) assert.ok(relayAsked >= 2, `the relay was asked again (${relayAsked})`);
      assert.ok(workerAsked >= 1);
      const ledger = ledgerReads(() => validator, clock);
      await ledger.closeWindow();
      const rec = (await ledger.record(id))!;
      const w = await ledger.account(worker.publicKey);
      assert.equal(rec.status, "fraud");
      assert.deepEqual(w, { balance: 0, stake: 10_000 - 160, locked: 0 });
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

// -------------------------------------------------------------------------------------------------
// A validator embedded with its own way to the worker's proof data (`ChallengeSource.proof`, the
// library's hook) blamed the worker for that hook's failure. An error thrown by it counted as
// "withheld", the worker's fault: a library user's transport outage slashed honest workers. The
// hook's throw is this node's gap, as no route to the worker is (`inconclusive /
// worker_unreachable`: unpaid, not slashed); its answer `undefined` is still the worker's
// withholding.

/** What the hook does: throw (its own failure) or answer nothing (the worker withheld). */
type Hook = "throws" | "answers_nothing";

/** Where an honest worker's receipt, and its worker, stand after the window. */
interface Outcome {
  verdict: string;
  status: string | undefined;
  account: { balance: number; stake: number; locked: number };
}

/** An honest worker's receipt challenged by a validator whose proof hook does `hook`. */
async function challengedThrough(hook: Hook): Promise<Outcome> {
  let outcome: Outcome | undefined;
  await inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const worker = Identity.generate();
    const requester = Identity.generate();
    const job = textJob(requester, `s52-source-${hook}`);
    const { receipt } = await proveOn(job, worker, f.honest);
    const system = new ActorSystem({ name: `s52-proof-source-${hook}` });
    try {
      const validator = await spawnValidator(system, {
        identity: Identity.generate(),
        ledgerDir,
        clock,
        challengeProbability: 1,
        models: HONEST_MODELS,
        source: {
          proof: () =>
            hook === "throws"
              ? Promise.reject(new Error("the embedding's own transport is down"))
              : Promise.resolve<ServedProof | undefined>(undefined),
        },
      });
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
      const handled = await announceAssigned(validator, receipt, job, requester);
      assert.deepEqual([handled.recorded, handled.challenged], [true, true]);
      const result = await handled.result;
      const reads = ledgerReads(() => validator, clock);
      await reads.drained();
      await reads.closeWindow();
      outcome = {
        verdict: `${result?.verdict.outcome}/${result?.verdict.reason}`,
        status: (await reads.record(receiptId(receipt)))?.status,
        account: await reads.account(worker.publicKey),
      };
    } finally {
      await system.shutdown();
    }
  });
  return outcome!;
}

Deno.test("a proof hook that throws is the validator's own gap: inconclusive (worker_unreachable), the honest worker unpaid but not slashed", async () => {
  const { verdict, status, account } = await challengedThrough("throws");
  assert.equal(verdict, "inconclusive/worker_unreachable");
  assert.equal(status, "unpaid");
  assert.deepEqual(account, { balance: 0, stake: 10_000, locked: 0 }, "not slashed");
});

Deno.test("a proof hook that answers nothing is still the worker's withholding: slashed", async () => {
  const { verdict, account } = await challengedThrough("answers_nothing");
  assert.equal(verdict, "invalid/proof_unavailable");
  assert.ok(account.stake < 10_000, `withheld: slashed (stake ${account.stake})`);
});
