/**
 * Nothing lost, nothing left behind and nothing fatal across a node process's life: real `cli.ts
 * start` processes killed with SIGKILL at chosen moments and started again on the same data
 * directory, own fraud proofs kept on disk at the next start, and a failing timed storage audit
 * that must not end the process.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { NodeProcess } from "../../tools/node_process.ts";
import { StreamClient } from "../../client/stream_client.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { OWN_FRAUD_PROOFS_DIR, ReceiptFiles } from "../../actors/_receipt_files.ts";
import type { ValidatorModelSource } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";

// "Nothing lost on a crash" for a whole node process: real `cli.ts start` processes killed with
// SIGKILL at chosen moments, then started again on the same data directory.

/** Flags of a node on free ports of 127.0.0.1, no heartbeat, the quick built-in model. */
const flags = (dataDir: string) => [
  ...["--data", dataDir, "--port", "0", "--p2p-port", "0", "--heartbeat", "0"],
  ...["--model-size", "tiny", "--no-dashboard"],
];

/** A node process on `dataDir`, up (its HTTP API printed). */
async function up(name: string, dataDir: string): Promise<{ node: NodeProcess; url: string }> {
  const node = NodeProcess.start(name, flags(dataDir));
  try {
    return { node, url: await node.httpUrl() };
  } catch (error) {
    node.kill("SIGKILL");
    await node.exited;
    throw error;
  }
}

async function killed(node: NodeProcess): Promise<void> {
  node.kill("SIGKILL");
  assert.equal((await node.exited).signal, "SIGKILL");
}

Deno.test("kill -9 right after a put was acknowledged and mid-stream: the restarted node serves the file and new jobs", async () => {
  const dir = await Deno.makeTempDir();
  const dataDir = join(dir, "data");
  const bytes = new Uint8Array(600 * 1024).map((_, i) => (i * 7919) >> 3);
  let first: NodeProcess | undefined;
  let second: NodeProcess | undefined;
  try {
    const a = await up("A", dataDir);
    first = a.node;
    const put = await fetch(`${a.url}/v1/files?name=kept.bin`, { method: "POST", body: bytes });
    assert.equal(put.status, 201);
    const { cid } = await put.json();
    // A job streaming when the process dies: its client sees the stream cut, not a clean end.
    const streaming = await fetch(`${a.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "crash", max_tokens: 4000, stream: true }),
    });
    assert.equal(streaming.status, 200);
    const reader = streaming.body!.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("data: ")) seen += (await reader.read()).value ?? "";
    await killed(a.node);
    let cut = false;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        seen += value;
      }
    } catch {
      cut = true;
    }
    assert.ok(cut || !seen.includes("[DONE]"), "a killed stream never reads as complete");

    const b = await up("B", dataDir);
    second = b.node;
    const got = await fetch(`${b.url}/v1/files/${cid}`);
    assert.equal(got.status, 200);
    assert.deepEqual(new Uint8Array(await got.arrayBuffer()), bytes);
    const job = await fetch(`${b.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "after", max_tokens: 8 }),
    });
    assert.equal(job.status, 200, await job.clone().text());
    assert.equal((await job.json()).usage.completion_tokens, 8);
    const metrics = await b.node.metrics();
    for (const [name, value] of metrics) {
      if (/^veriflow_(inference|prover)_(active|queued)_jobs/.test(name)) {
        assert.equal(value, 0, `${name} after restart`);
      }
    }
    await b.node.stop();
    assert.equal((await b.node.exited).code, 0, b.node.tail());
  } finally {
    first?.kill("SIGKILL");
    second?.kill("SIGKILL");
    await first?.exited;
    await second?.exited;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a second node on a held data directory is refused naming the holder; once it is killed -9 a new one starts", async () => {
  const dir = await Deno.makeTempDir();
  const dataDir = join(dir, "data");
  const nodes: NodeProcess[] = [];
  try {
    const a = await up("A", dataDir);
    nodes.push(a.node);
    const refused = NodeProcess.start("B", flags(dataDir));
    nodes.push(refused);
    const status = await refused.exited;
    assert.equal(status.code, 1, refused.tail());
    assert.match(
      refused.lines.join("\n"),
      new RegExp(`in use by process ${a.node.pid} \\(node, since .*stop it first`),
    );
    await killed(a.node);
    const c = await up("C", dataDir);
    nodes.push(c.node);
    await c.node.stop();
    assert.equal((await c.node.exited).code, 0, c.node.tail());
  } finally {
    for (const node of nodes) node.kill("SIGKILL");
    for (const node of nodes) await node.exited;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGKILL during the drain of a graceful stop leaves a data directory the next start takes", async () => {
  const dir = await Deno.makeTempDir();
  const dataDir = join(dir, "data");
  const nodes: NodeProcess[] = [];
  try {
    const a = await up("A", dataDir);
    nodes.push(a.node);
    const streaming = await fetch(`${a.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "drain", max_tokens: 4000, stream: true }),
    });
    const reader = streaming.body!.getReader();
    await reader.read();
    a.node.kill("SIGINT");
    await a.node.waitForLine(/^shutting down/);
    await killed(a.node);
    await reader.cancel().catch(() => {});
    const b = await up("B", dataDir);
    nodes.push(b.node);
    const job = await fetch(`${b.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "after", max_tokens: 4 }),
    });
    assert.equal(job.status, 200, await job.clone().text());
    await job.body?.cancel();
    await b.node.stop();
  } finally {
    for (const node of nodes) node.kill("SIGKILL");
    for (const node of nodes) await node.exited;
    await Deno.remove(dir, { recursive: true });
  }
});

/** Rounds of kill-and-retry: the window is a few milliseconds wide, hit in most rounds. */
const EQUIVOCATION_ROUNDS = 3;

/** Jobs per round: the process dies as the first of them hands its receipt to the requester. */
const JOBS_PER_ROUND = 6;

Deno.test("a worker killed -9 just after handing out a receipt never signs a second, different one for the same job after its restart", async () => {
  const dir = await Deno.makeTempDir();
  const dataDir = join(dir, "data");
  const nodes: NodeProcess[] = [];
  try {
    for (let round = 0; round < EQUIVOCATION_ROUNDS; round++) {
      const a = await up(`A${round}`, dataDir);
      nodes.push(a.node);
      const client = await StreamClient.connect(a.url);
      const served: { prompt: string; max_tokens: number; nonce: string }[] = [];
      let dead = false;
      const jobs = Array.from({ length: JOBS_PER_ROUND }, (_, i) => {
        const request = { prompt: "one job, one receipt", max_tokens: 3, nonce: `r${round}-j${i}` };
        return client.infer(request).done.then((done) => {
          if (dead) return;
          assert.ok(done.receipt, "the job ended with a receipt");
          served.push(request);
          // The receipt is in the requester's hands: the worker dies now, with no goodbye.
          dead = true;
          a.node.kill("SIGKILL");
        }, () => {});
      });
      await Promise.all(jobs);
      assert.equal((await a.node.exited).signal, "SIGKILL");
      client.close();
      assert.ok(served.length > 0);

      const b = await up(`B${round}`, dataDir);
      nodes.push(b.node);
      const again = await StreamClient.connect(b.url);
      try {
        for (const request of served) {
          // The same job again (a retrying client or router): refused as already served. Run
          // again, it would be signed again with other timings: two different receipts for one
          // job, which any validator slashes as equivocation, from an honest worker.
          await assert.rejects(
            again.infer(request).done,
            (error: Error) => /already ran here/.test(error.message),
            `round ${round}: job ${request.nonce} served twice after the crash`,
          );
        }
      } finally {
        again.close();
      }
      await b.node.stop();
    }
  } finally {
    for (const node of nodes) node.kill("SIGKILL");
    for (const node of nodes) await node.exited;
    await Deno.remove(dir, { recursive: true });
  }
});

// A node that keeps running and a node started again: a timed storage audit round that fails must
// not leave an unhandled rejection (Deno ends the process on one), and own fraud proofs kept on
// disk (garbled, or a save cut short by a crash) are removed at the next start, not left behind.

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
  // Only the audit's interval (its period): the actor also sets others (the pins check).
  const ticks: (() => void)[] = [];
  const realSetInterval = globalThis.setInterval;
  try {
    globalThis.setInterval = ((fn: () => void, ms?: number) => {
      if (ms === 600_000) ticks.push(fn);
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
          // A pin's commit asks (`pin_held`); this test pins nothing.
          ask: <R>(message: StorageMessage) => actor.receive(message) as Promise<R>,
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
