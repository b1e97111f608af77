/**
 * Who pays when a validator cannot reach the worker itself. It asks through the job's requester
 * (the relay its assignment names); a relay that answers "none", or brings data the worker did
 * not sign, speaks for itself, not for the worker: it is asked again until the deadline. A worker
 * that delivers nothing signed by then, by any route, withheld: slashed. It used to end
 * `inconclusive / worker_unreachable` (not paid, not slashed) when only a relay had answered, so
 * a requester colluding with a cheat answered "none" for it and the cheat was never slashed; an
 * honest worker's duty is to stay reachable (directly or through its relays) until the deadline.
 * A worker asked directly that answers "none" has refused: slashed at once. Every route is tried:
 * `tests/actors/validator_proof_delivery_test.ts`.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

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
