/**
 * A whole node started in-process (`node/node.ts`): what it serves, how it stops, what it offers
 * once a model has failed, one receipt per job, a job's input read from its own store.
 */
import assert from "node:assert/strict";
import { parseNodeConfig } from "../../node/config.ts";
import { NODE_ACTORS, startNode, type VeriflowNode } from "../../node/node.ts";
import type { ReceiptHandled, ValidatorMessage } from "../../actors/validator_actor.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { toHex } from "../../protocols/hash.ts";
import { verifyReceipt } from "../../protocols/receipt.ts";
import { delay, eventually } from "../_helpers/wait.ts";
import { CalibrationStore } from "../../proof/calibration.ts";
import { loadCalibratedFixture } from "../proof/_models.ts";
import { join } from "node:path";
import { Connection } from "../../protocols/connection.ts";
import { connectTcp } from "../../protocols/tcp_transport.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { RemoteInferencePort } from "../../inference/remote_port.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { ModelRegistry, type RegisteredModelHealth } from "../../inference/model_registry.ts";
import type { ModelWorkerRestartPolicy } from "../../inference/model_health.ts";
import { crashModelWorker, FAULTY_WORKER_URL } from "../inference/_worker_faults.ts";
import { DataDirLock } from "../../node/data_dir_lock.ts";
import { startHeartbeat } from "../../node/heartbeat.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { IDENTITY_FILE, loadOrCreateIdentity } from "../../node/node_identity.ts";
import type { InferenceMessage, SubmitReply } from "../../actors/inference_actor.ts";
import { proveOn, textJob } from "../actors/_validator_fixture.ts";

async function start(
  dataDir: string,
  extra: Record<string, unknown> = {},
  log?: (line: string) => void,
): Promise<VeriflowNode> {
  const config = parseNodeConfig({
    dataDir,
    http: { port: 0 },
    network: { listen: { port: 0 } },
    heartbeatMs: 0,
    ...extra,
  });
  return await startNode(config, log === undefined ? {} : { log });
}

Deno.test("a node starts its supervision tree, serves a completion with a verifiable receipt, and its validator records it across a restart", async () => {
  const dataDir = await Deno.makeTempDir();
  let node = await start(dataDir);
  let receiptId: string;
  const publicKey = toHex(node.identity.publicKey);
  try {
    const tree = node.tree();
    for (const name of Object.values(NODE_ACTORS)) assert.match(tree, new RegExp(name));
    assert.ok(node.url);

    const health = await fetch(`${node.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();

    const response = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "Veriflow", max_tokens: 12 }),
    });
    assert.equal(response.status, 200);
    const body = await response.json();
    const text: string = body.choices[0].text;
    assert.equal(body.usage.completion_tokens, 12);

    // The requester checks the receipt it was handed, as JSON, against the text it received.
    const check = verifyReceipt(body.veriflow_receipt, { output: text });
    assert.equal(check.ok, true, JSON.stringify(check));
    assert.equal(body.veriflow_receipt.worker, publicKey);
    const forged = verifyReceipt(body.veriflow_receipt, { output: `${text}!` });
    assert.equal(forged.ok, false);
    receiptId = (check as { receiptId: string }).receiptId;

    const validator = node.system.lookup<ValidatorMessage>(NODE_ACTORS.validator)!;
    const record = await eventually(
      () => validator.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId }),
      "the validator to record the receipt",
    );
    assert.equal(record.worker, publicKey);

    const metrics = await (await fetch(`${node.url}/metrics`)).text();
    assert.match(metrics, /^veriflow_prover_receipts_signed_total 1$/m);
    assert.match(metrics, /^veriflow_validator_receipts_total 1$/m);
    assert.match(metrics, /^veriflow_ledger_stake 1000000$/m);
    assert.match(metrics, /^veriflow_inference_tokens_generated_total 12$/m);
  } finally {
    await node.shutdown();
    await node.finished;
  }

  // Same data directory: same identity, and the ledger still knows the receipt.
  node = await start(dataDir);
  try {
    assert.equal(toHex(node.identity.publicKey), publicKey);
    const validator = node.system.lookup<ValidatorMessage>(NODE_ACTORS.validator)!;
    const record = await validator.ask<ReceiptRecord | undefined>({
      type: "receipt_status",
      receiptId,
    });
    assert.ok(record, "ledger entry survives the restart");
  } finally {
    await node.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a worker started without the validator role is told its work reaches no peer", async () => {
  const dataDir = await Deno.makeTempDir();
  const lines: string[] = [];
  // No model worker: the roles line does not depend on one (a worker's start saved).
  const node = await start(
    dataDir,
    { roles: { validator: false }, model: { workers: 0 } },
    (line) => lines.push(line),
  );
  try {
    assert.ok(
      lines.some((l) => l.startsWith("roles: the prover is on and the validator off")),
      lines.join("\n"),
    );
    assert.equal(node.system.lookup(NODE_ACTORS.validator), undefined);
  } finally {
    await node.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("roles switched off are not started; without a model or a worker peer, jobs get 503 no_worker", async () => {
  const dataDir = await Deno.makeTempDir();
  const node = await start(dataDir, {
    roles: { inference: false, prover: false, validator: false },
  });
  try {
    assert.ok(node.system.lookup(NODE_ACTORS.storage));
    assert.ok(node.system.lookup(NODE_ACTORS.network));
    assert.equal(node.system.lookup(NODE_ACTORS.inference), undefined);
    assert.doesNotMatch(node.tree(), /node\/inference/);
    const response = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "bafkreibivwo3ds6b7vciwjchdhkbsyfu3nbldwtom7prx36clnar2v5lea",
        prompt: "x",
      }),
    });
    assert.equal(response.status, 503);
    assert.equal((await response.json()).error.code, "no_worker");
  } finally {
    await node.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

/** A node serving the tiny model from workers that tests can crash. */
async function startWithFaultyWorkers(restart: Partial<ModelWorkerRestartPolicy>) {
  const dir = await Deno.makeTempDir();
  const lines: string[] = [];
  const models = new ModelRegistry({
    worker: true,
    workerCount: 1,
    intraOpThreads: 1,
    workerUrl: FAULTY_WORKER_URL,
    restart,
    onWorkerEvent: (event) => lines.push(event.message),
  });
  await buildGptModel({ size: "tiny", seed: 0, outDir: join(dir, "model") });
  const { cid } = await models.register(join(dir, "model"));
  await models.get(cid);
  const node = await startNode(
    parseNodeConfig({
      dataDir: join(dir, "data"),
      http: { port: 0 },
      network: { listen: { port: 0 } },
      heartbeatMs: 0,
    }),
    { models },
  );
  return {
    node,
    cid,
    lines,
    health: async () => {
      const response = await fetch(`${node.url}/healthz`);
      return { status: response.status, body: await response.json() };
    },
    async [Symbol.asyncDispose]() {
      await node.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("a node whose model worker dies says so on /healthz and /metrics, restarts it and serves again", async () => {
  await using running = await startWithFaultyWorkers({ backoffInitialMs: 0 });
  const { node, cid } = running;
  const before = await running.health();
  assert.equal(before.status, 200);
  assert.equal(before.body.status, "ok");
  assert.deepEqual(before.body.model_runtime[0].workers, [
    { lane: "generation", state: "running", restarts: 0 },
  ]);

  crashModelWorker(0);
  const after = await eventually(async () => {
    const health = await running.health();
    return health.body.model_runtime[0].restarts === 1 ? health : undefined;
  }, "the restart to show on /healthz");
  assert.equal(after.status, 200);
  assert.equal(after.body.status, "ok");
  assert.match(after.body.model_runtime[0].workers[0].last_error, /injected crash/);
  assert.ok(
    running.lines.some((l) => /died: .*injected crash.*restarting/.test(l)),
    running.lines.join("\n"),
  );
  assert.ok(running.lines.some((l) => /restarted/.test(l)));
  const metrics = await (await fetch(`${node.url}/metrics`)).text();
  assert.match(
    metrics,
    new RegExp(`^veriflow_model_worker_restarts_total\\{model="${cid}"\\} 1$`, "m"),
  );
  // A crashed worker's thread is gone: none is counted as abandoned (only those terminated hung).
  assert.match(
    metrics,
    new RegExp(`^veriflow_model_worker_threads_abandoned\\{model="${cid}"\\} 0$`, "m"),
  );
  assert.match(
    metrics,
    new RegExp(
      `^veriflow_model_workers\\{model="${cid}",lane="generation",state="running"\\} 1$`,
      "m",
    ),
  );

  const response = await fetch(`${node.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: "again", max_tokens: 4 }),
  });
  assert.equal(response.status, 200);
  assert.equal((await response.json()).usage.completion_tokens, 4);
});

Deno.test("a node whose model worker is given up on answers /healthz 503 failed", async () => {
  await using running = await startWithFaultyWorkers({ maxRestarts: 0 });
  crashModelWorker(0);
  const health = await eventually(async () => {
    const h = await running.health();
    return h.status === 503 ? h : undefined;
  }, "/healthz to fail");
  assert.equal(health.body.status, "failed");
  assert.equal(health.body.model_runtime[0].workers[0].state, "failed");
});

Deno.test("a node's validator takes the calibration profiles in <data>/calibration, says which, and names a file it could not load", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    const lines: string[] = [];
    const config = () =>
      parseNodeConfig({
        dataDir,
        http: { port: 0 },
        network: { listen: { port: 0 } },
        heartbeatMs: 0,
        // The model is registered (its CID named by /v1/models) but no worker loads it.
        model: { workers: 0 },
      });
    let node = await startNode(config(), { log: (l) => lines.push(l) });
    const models = await (await fetch(`${node.url}/v1/models`)).json();
    const cid: string = models.data[0].id;
    await node.shutdown();
    assert.ok(lines.some((l) => l.startsWith("calibration: none")), lines.join("\n"));
    // A profile for the node's model, as `cli.ts calibrate` writes it.
    const { profile } = await loadCalibratedFixture();
    const store = await CalibrationStore.open(join(dataDir, "calibration"));
    await store.save({ ...profile, model: cid });
    lines.length = 0;
    node = await startNode(config(), { log: (l) => lines.push(l) });
    await node.shutdown();
    assert.ok(
      lines.some((l) => l.startsWith("calibration: 1 model profile(s)")),
      lines.join("\n"),
    );
    // The fixture's profile has no fp16 class: said at start (review s80, F1).
    assert.ok(
      lines.some((l) =>
        l.startsWith(
          `warning: calibration: ${cid}: no fp16 class: fp16 jobs checked under the bf16`,
        )
      ),
      lines.join("\n"),
    );
    // A profile file that is not a plausible measurement is named, with why, not skipped silently.
    await Deno.writeTextFile(
      join(dataDir, "calibration", `${cid}.json`),
      JSON.stringify({ ...profile, model: cid, v: 999 }),
    );
    lines.length = 0;
    node = await startNode(config(), { log: (l) => lines.push(l) });
    await node.shutdown();
    const warned = lines.filter((l) => l.startsWith("warning: calibration:"));
    assert.equal(warned.length, 1, lines.join("\n"));
    assert.ok(warned[0].includes(`${cid}.json not loaded`), warned[0]);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a node whose role crashes in a loop stops with the reason (fatal), instead of restarting its whole tree forever", async () => {
  const dataDir = await Deno.makeTempDir();
  const lines: string[] = [];
  const node = await start(dataDir, { model: { workers: 0 } }, (l) => lines.push(l));
  let stopped: { fatal?: string } | undefined;
  node.finished.then((s) => (stopped = s));
  try {
    // A message that makes the validator throw, again and again (a bug, a hostile peer).
    const poison = () =>
      node.system.lookup<unknown>(NODE_ACTORS.validator)?.tell({ type: "account", key: undefined })
        .catch(() => {});
    const stop = await eventually(
      () => {
        poison();
        return stopped;
      },
      "the node to stop",
      { timeoutMs: 30_000, everyMs: 20 },
    );
    assert.match(stop.fatal ?? "", /gave up/);
    assert.ok(
      lines.some((l) => l.startsWith("fatal: the node supervisor gave up")),
      lines.join("\n"),
    );
  } finally {
    await node.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a node whose proof directory cannot be written keeps serving, without receipts, and says so: /healthz degraded, one error line; then ok again", async () => {
  const dataDir = await Deno.makeTempDir();
  const lines: string[] = [];
  const node = await start(dataDir, {}, (l) => lines.push(l));
  const proofs = join(dataDir, "proofs");
  const complete = async () => {
    const response = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ prompt: "Once upon a time", max_tokens: 4 }),
    });
    assert.equal(response.status, 200);
    return await response.json();
  };
  const health = async () => await (await fetch(`${node.url}/healthz`)).json();
  try {
    // The directory becomes a plain file: every write under it fails, as on a full disk.
    await Deno.remove(proofs, { recursive: true }).catch(() => {});
    await Deno.writeTextFile(proofs, "");
    for (let i = 0; i < 3; i++) {
      const answer = await complete();
      assert.ok(answer.choices[0].text.length > 0, "the client still gets its text");
      assert.equal(answer.veriflow_receipt_error?.code, "proof_store_failed");
    }
    assert.equal((await health()).status, "degraded");
    assert.equal(lines.filter((l) => l.includes("proof data cannot be written")).length, 1);
    // Writable again: receipts come back, and so does the status.
    await Deno.remove(proofs);
    await Deno.mkdir(proofs);
    assert.ok((await complete()).veriflow_receipt, "a receipt once a write succeeds");
    assert.equal((await health()).status, "ok");
  } finally {
    await node.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a library node tells its peer address (the bound port when 0 was asked), where a RemoteInferencePort reaches its models", async () => {
  const dataDir = await Deno.makeTempDir();
  const node = await start(dataDir);
  try {
    const address = await node.peerAddress();
    assert.ok(address !== undefined && address.port > 0, JSON.stringify(address));
    const connection = await Connection.open(await connectTcp(address), {
      identity: Identity.generate(),
      protocols: [INFERENCE_PROTOCOL],
    });
    try {
      const models = await new RemoteInferencePort(connection).models();
      assert.deepEqual(models.map((m) => m.cid), node.models.list().map((m) => m.cid));
    } finally {
      await connection.close();
    }
  } finally {
    await node.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a validator configured to challenge so rarely that cheating pays says so at start, naming the setting; the default says nothing", async () => {
  for (const [p, warned] of [[0.01, true], [0, true], [undefined, false]] as const) {
    const dataDir = await Deno.makeTempDir();
    const lines: string[] = [];
    // No model worker: the warning is the validator's, said as its role is set up (a worker's
    // start saved per node).
    const extra = p === undefined
      ? { model: { workers: 0 } }
      : { model: { workers: 0 }, validator: { challengeProbability: p } };
    const node = await start(dataDir, extra, (l) => lines.push(l));
    try {
      const warning = lines.filter((l) =>
        l.startsWith("warning: validator: challenge probability")
      );
      assert.equal(warning.length, warned ? 1 : 0, `${p}: ${warning.join(" | ")}`);
      if (warned) assert.match(warning[0], /validator\.challengeProbability/);
    } finally {
      await node.shutdown();
      await Deno.remove(dataDir, { recursive: true });
    }
  }
});

// The node process's life as an operator sees it (`node/*.ts`): what it offers once a model has
// failed, and how it stops.

/** A registry whose models' health the test sets (a pool that gave up on its workers). */
class ScriptedHealthRegistry extends ModelRegistry {
  status: RegisteredModelHealth["status"] = "ok";
  override health(): RegisteredModelHealth[] {
    return this.list().map((m) => ({
      cid: m.cid,
      name: m.name,
      status: this.status,
      restarts: this.status === "ok" ? 0 : 5,
      workers: [{
        index: 0,
        lane: "generation" as const,
        state: this.status === "failed" ? "failed" as const : "running" as const,
        restarts: this.status === "ok" ? 0 : 5,
      }],
    }));
  }
}

/** A node with only the inference role, on ports 0 of 127.0.0.1. */
function inferenceOnly(dataDir: string) {
  return parseNodeConfig({
    dataDir,
    http: { port: 0, hostname: "127.0.0.1" },
    network: { listen: { port: 0, hostname: "127.0.0.1" } },
    roles: { storage: false, prover: false, validator: false },
    dashboard: { enabled: false },
    heartbeatMs: 0,
  });
}

Deno.test("a model whose workers all failed is no longer offered: /v1/models and a peer's model list leave it out", async () => {
  const dir = await Deno.makeTempDir();
  const models = new ScriptedHealthRegistry();
  // A tensor model: registering reads its bytes only; nothing is loaded here.
  await Deno.writeFile(join(dir, "m.onnx"), new Uint8Array([1, 2, 3, 4]));
  const { cid } = await models.register(join(dir, "m.onnx"));
  const node = await startNode(inferenceOnly(join(dir, "data")), { models });
  try {
    const listed = async () => {
      const response = await fetch(`${node.url}/v1/models`);
      const body = await response.json();
      return (body.data as { id: string }[]).map((m) => m.id);
    };
    assert.ok((await listed()).includes(cid), "listed while it serves");
    models.status = "degraded";
    assert.ok((await listed()).includes(cid), "a degraded model still serves");

    models.status = "failed"; // jobs on it fail until the node is restarted
    assert.ok(!(await listed()).includes(cid), "a failed model is not offered to clients");
    const address = await node.peerAddress();
    assert.ok(address);
    const connection = await Connection.open(await connectTcp(address), {
      identity: Identity.generate(),
      protocols: [INFERENCE_PROTOCOL],
    });
    try {
      const offered = await new RemoteInferencePort(connection).models();
      assert.deepEqual(offered.map((m) => m.cid), [], "nor to peers, who would route jobs to it");
    } finally {
      await connection.close();
    }
    assert.equal((await fetch(`${node.url}/healthz`).then((r) => r.json())).status, "failed");
  } finally {
    await node.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a node whose stop fails part-way still stops the rest and frees its data directory", async () => {
  const dir = await Deno.makeTempDir();
  const models = new (class extends ScriptedHealthRegistry {
    override close(): Promise<void> {
      return Promise.reject(new Error("a model worker did not dispose"));
    }
  })();
  await Deno.writeFile(join(dir, "m.onnx"), new Uint8Array([1, 2, 3, 4]));
  await models.register(join(dir, "m.onnx"));
  const dataDir = join(dir, "data");
  const lines: string[] = [];
  const node = await startNode(inferenceOnly(dataDir), { models, log: (l) => lines.push(l) });
  try {
    // Neither rejects: in `cli.ts start` the stop is not awaited, and a rejection there ended
    // the process on an unhandled rejection instead of "stopped.".
    await node.shutdown();
    assert.deepEqual(await node.finished, {});
    assert.ok(
      lines.includes("error: stopping the models: a model worker did not dispose"),
      lines.join("\n"),
    );
    // The directory is free for the next start (or `ledger repair`) in this process.
    await (await DataDirLock.acquire(dataDir, "test")).release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "an identity key others can read (restored from a backup, copied under umask 022) is made owner-only at start",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const path = join(dir, IDENTITY_FILE);
      const seed = Identity.generate().exportSecretKey();
      await Deno.writeFile(path, seed, { mode: 0o644 });
      await Deno.chmod(path, 0o644);
      const identity = await loadOrCreateIdentity(dir);
      assert.deepEqual(identity.exportSecretKey(), seed, "the key on disk is the node's");
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("the heartbeat starts no beat while one waits on a wedged actor, and logs nothing once stopped", async () => {
  const lines: string[] = [];
  let asks = 0;
  const held = Promise.withResolvers<never>();
  const validator = {
    ask: () => {
      asks++;
      return held.promise; // wedged: answers (here: fails) only when released
    },
  } as unknown as ActorRef<ValidatorMessage>;
  const heartbeat = startHeartbeat({
    everyMs: 1,
    publicKey: new Uint8Array(32),
    validator: () => validator,
    network: () => undefined,
    log: (line) => lines.push(line),
  });
  try {
    await eventually(() => asks > 0, "a beat to ask the validator");
    await delay(50); // fifty intervals: each started another beat behind the wedged one
    assert.equal(asks, 1, "one beat at a time");
  } finally {
    heartbeat.stop(); // the node stops while the beat still waits
  }
  held.reject(new Error("actor node/validator stopped"));
  await delay(0);
  assert.deepEqual(lines, [], "no heartbeat line after the node stopped");
});

// The node's one-receipt-per-job guard (`node/_node_children.ts` wires the InferenceActor's
// `receiptSigned` to the ValidatorActor's `job_recorded`): a worker refuses a job it already signed
// a receipt for (a second run could sign a different receipt: equivocation, slashed). The ledger
// was asked whether ANY receipt for the job is recorded, so a staked key that knew the job before
// its worker ran it (its requester, a router, a failover's first worker) and got a receipt of its
// own for it into the worker's ledger made the honest worker refuse the job as already finished.
// Only this node's own receipt answers yes.
//
// @module

Deno.test("a receipt another key signed for a job does not make this node refuse the job as already finished; its own does", async () => {
  const dir = await Deno.makeTempDir();
  const node = await startNode(
    parseNodeConfig({
      dataDir: join(dir, "data"),
      http: { port: 0, hostname: "127.0.0.1" },
      network: { listen: { port: 0, hostname: "127.0.0.1" } },
      roles: { storage: false, inference: true, prover: true, validator: true },
      dashboard: { enabled: false },
      heartbeatMs: 0,
    }),
  );
  try {
    const validator = node.system.lookup<ValidatorMessage>(NODE_ACTORS.validator)!;
    const inference = node.system.lookup<InferenceMessage>(NODE_ACTORS.inference)!;
    const requester = Identity.generate();
    /** `signer`'s receipt for a fresh job, recorded in this node's ledger; the job. */
    const recordedFor = async (signer: Identity, nonce: string) => {
      await validator.ask({ type: "deposit", key: signer.publicKey, amount: 1_000_000 });
      const job = textJob(requester, nonce);
      const { receipt } = await proveOn(job, signer);
      const handled = await validator.ask<ReceiptHandled>({
        type: "receipt",
        receipt,
        job,
        origin: "ab".repeat(32),
      });
      assert.equal(handled.recorded, true);
      return job;
    };
    const refusal = async (job: ReturnType<typeof textJob>) => {
      const reply = await inference.ask<SubmitReply>({ type: "submit", job });
      if (reply.accepted) reply.handle.cancel();
      return reply.accepted ? undefined : reply.error.code;
    };
    // Control: its own receipt for a job (signed before a restart) still refuses the job.
    const own = await recordedFor(node.identity, "signed-here");
    assert.equal(await refusal(own), "duplicate_job");
    // Another key's receipt for the job, announced before this node ran it.
    const frontRun = await recordedFor(Identity.generate(), "front-run");
    assert.notEqual(
      await refusal(frontRun),
      "duplicate_job",
      "another key's receipt is not this node's: the job is not finished here",
    );
  } finally {
    await node.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// A node as it runs: a file put through `POST /v1/files` is a job's input by its CID
// (`veriflow_input`); the node reads it from its own store, the model reads its text before the
// prompt, and the job gets its receipt as any other.

Deno.test("a file put on a node is a job's input by its CID: the text the model reads before the prompt, with a receipt", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-input-node-" });
  try {
    await buildGptModel({ size: "tiny", seed: 0, outDir: join(dir, "model") });
    const models = new ModelRegistry({ intraOpThreads: 1 });
    const { cid: model } = await models.register(join(dir, "model"));
    const config = parseNodeConfig({
      dataDir: join(dir, "data"),
      http: { port: 0, hostname: "127.0.0.1" },
      network: { listen: { port: 0, hostname: "127.0.0.1" } },
      roles: { validator: false },
      dashboard: { enabled: false },
      heartbeatMs: 0,
    });
    const node = await startNode(config, { models });
    try {
      const stored = "Field notes, day three: the heron came back to the pond. ";
      const put = await fetch(`${node.url}/v1/files?name=notes.txt`, {
        method: "POST",
        body: stored,
        headers: { "content-type": "text/plain" },
      });
      assert.equal(put.status, 201);
      const { cid } = await put.json();
      const complete = async (body: Record<string, unknown>) => {
        const response = await fetch(`${node.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model, max_tokens: 8, seed: 5, temperature: 0.8, ...body }),
        });
        return { status: response.status, body: await response.json() };
      };
      const withInput = await complete({ prompt: "Day four: ", veriflow_input: cid });
      assert.equal(withInput.status, 200, JSON.stringify(withInput.body));
      assert.ok(withInput.body.veriflow_receipt, JSON.stringify(withInput.body));
      const inline = await complete({ prompt: stored + "Day four: " });
      assert.equal(withInput.body.choices[0].text, inline.body.choices[0].text);
    } finally {
      await node.shutdown();
      await node.finished;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
