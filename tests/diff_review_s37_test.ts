/**
 * Review of the changes since f1277e9 (session 37): each test failed on the code before its fix.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../actors/actor_system.ts";
import { StorageActor } from "../actors/storage_actor.ts";
import type { StorageMessage } from "../actors/storage_actor_messages.ts";
import { OWN_FRAUD_PROOFS_DIR, ReceiptFiles } from "../actors/_receipt_files.ts";
import type { ValidatorModelSource } from "../actors/validator_messages.ts";
import { Identity } from "../protocols/identity.ts";
import { receiptId } from "../protocols/receipt.ts";
import { signServedProof } from "../proof/served_proof.ts";
import { eventually } from "./_helpers/wait.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./actors/_validator_fixture.ts";

/** Let queued tasks (a tell, the work it starts, a rejection it leaves) run out. */
async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("a timed storage audit round that fails (a node without storage peers) leaves no unhandled rejection: the process is not ended by it", async () => {
  const dir = await Deno.makeTempDir();
  const rejections: unknown[] = [];
  const onUnhandled = (event: PromiseRejectionEvent) => {
    event.preventDefault();
    rejections.push(event.reason);
  };
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  const lines: string[] = [];
  // The node's default: a round every 10 minutes, and this node has no storage peers.
  const actor = new StorageActor({
    dir,
    identity: Identity.generate(),
    holdHere: true,
    auditIntervalMs: 600_000,
    store: { durable: false },
    log: (line) => lines.push(line),
  });
  const abort = new AbortController();
  // The audit timer, caught so the test fires it instead of waiting ten minutes.
  const ticks: (() => void)[] = [];
  const realSetInterval = globalThis.setInterval;
  try {
    globalThis.setInterval = ((fn: () => void) => {
      ticks.push(fn);
      return 0;
    }) as unknown as typeof setInterval;
    try {
      await actor.preStart({
        signal: abort.signal,
        // As the runtime's tell: the answer (the round's handle) goes to no one.
        self: {
          tell: async (message: StorageMessage) => {
            await actor.receive(message);
          },
        },
      });
    } finally {
      globalThis.setInterval = realSetInterval;
    }
    assert.equal(ticks.length, 1, "the audit timer was not set");
    ticks[0]();
    await turns();
    assert.deepEqual(
      rejections.map(String),
      [],
      "a timed round's failure was left unhandled (Deno ends the process on it)",
    );
  } finally {
    abort.abort();
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an own fraud proof kept on disk that cannot be resumed at start (garbled) is removed when its challenge ends there, not left for a later start", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  // The first `get` (the challenge) has the model; the proof's check then waits for a stop.
  const gate = Promise.withResolvers<void>();
  let calls = 0;
  const models: ValidatorModelSource = {
    has: (cid) => cid === f.honest.info.cid,
    get: (cid) => calls++ === 0 ? HONEST_MODELS.get(cid) : gate.promise.then(() => undefined),
  };
  const worker = Identity.generate();
  const requester = Identity.generate();
  const job = textJob(requester, crypto.randomUUID());
  const proved = await proveOn(job, worker, f.otherSeed); // a cheat: another model
  const id = receiptId(proved.receipt);
  const setup = {
    identity: Identity.generate(),
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: 1,
    source: { proof: () => Promise.resolve(signServedProof(id, proved.proof, worker)) },
  };
  const kept = `${dir}/ledger/${OWN_FRAUD_PROOFS_DIR}`;
  const first = new ActorSystem({ name: "s37-own-proof" });
  let second: ActorSystem | undefined;
  try {
    const validator = await spawnValidator(first, { ...setup, models });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
    (await announceAssigned(validator, proved.receipt, job, requester)).result?.catch(() => {});
    const reads = ledgerReads(() => validator, clock);
    await eventually(async () => (await reads.stats()).verdicts.fraud === 1, "the fraud verdict");
    first.events.subscribe((event) => {
      if (event.type === "stopped" && event.name.endsWith("validator")) {
        gate.reject(new Error("stopped"));
      }
    });
    await first.shutdown();
    // The kept proof is garbled (a disk fault, a foreign file under a receipt's name).
    await Deno.writeFile(`${kept}/${id}.cbor`, new Uint8Array([0xff, 0x00, 0x13]));

    second = new ActorSystem({ name: "s37-own-proof-restarted" });
    const restarted = await spawnValidator(second, { ...setup, models: HONEST_MODELS });
    const again = ledgerReads(() => restarted, clock);
    await again.drained();
    assert.equal((await again.record(id))?.status, "unpaid");
    const left = (await Array.fromAsync(Deno.readDir(kept))).map((e) => e.name);
    assert.deepEqual(left, [], "a proof whose challenge ended is still kept");
  } finally {
    await first.shutdown().catch(() => {});
    await second?.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a save of an own fraud proof cut short by a crash leaves a temporary file that the next start removes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const kept = `${dir}/${OWN_FRAUD_PROOFS_DIR}`;
    await Deno.mkdir(kept, { recursive: true });
    const torn = `${kept}/${"ab".repeat(32)}.cbor.${crypto.randomUUID()}.tmp`;
    await Deno.writeFile(torn, new Uint8Array([1, 2, 3]));
    const found = await ReceiptFiles.in(dir).all();
    assert.equal(found.size, 0);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(kept)), [], "the torn save is left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
