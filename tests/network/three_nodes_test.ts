/**
 * Three Veriflow nodes in three processes on 127.0.0.1, over TCP:
 *
 * - A: the client's node. No model runs its jobs; it forwards them to a worker peer.
 * - B: the worker. Runs the jobs and signs receipts; never validates its own.
 * - C: a validator that challenges every receipt it hears of.
 *
 * One flow: a WebSocket client on A streams a job that runs on B (tokens identical to the same
 * job run on B directly); cancelling on the client stops the job on B; B's receipt reaches C,
 * which challenges it with proof data fetched from B and spreads a verdict A and B record;
 * freezing B mid-stream gives the client `peer_timeout` within the idle timeout, killing it
 * gives `connection_closed` at once; B restarted with a tampered model is convicted by C and
 * slashed in all three ledgers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ensureBuiltinModel } from "../../inference/builtin_model.ts";
import { StreamClient } from "../../client/stream_client.ts";
import { Ledger } from "../../proof/ledger.ts";
import { loadOrCreateIdentity } from "../../node/node_identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { parseReceipt, receiptId } from "../../protocols/receipt.ts";
import { NodeProcess } from "../../tools/node_process.ts";
import { eventually } from "../_helpers/wait.ts";

/** Give-up time of a wait on another process (a redial, a verdict across three nodes). */
const ACROSS_PROCESSES_MS = 30_000;

const TAMPERED_WORKER = new URL("./_tampered_worker.ts", import.meta.url).pathname;

/** Keep the test quick: a dead peer is noticed within a second, not the default five. */
const CONFIG = { network: { keepaliveMs: 300, idleTimeoutMs: 1_000 } };

async function collect(stream: ReadableStream<{ text: string; token_id?: number }>) {
  const tokens: number[] = [];
  let text = "";
  for await (const t of stream) {
    text += t.text;
    if (t.token_id !== undefined) tokens.push(t.token_id);
  }
  return { tokens, text };
}

/** Start a long job through `client`, read a token, run `strike`, and time the failure. */
async function failureOf(
  client: StreamClient,
  prompt: string,
  strike: () => void,
): Promise<{ code: string; afterMs: number }> {
  const job = client.infer({ prompt, max_tokens: 400, temperature: 0.8, seed: 3 });
  job.done.catch(() => {});
  const reader = job.tokens.getReader();
  await reader.read();
  const struck = performance.now();
  strike();
  const failure = await (async () => {
    for (;;) if ((await reader.read()).done) return undefined;
  })().catch((error: Error & { code: string }) => error);
  assert.ok(failure instanceof Error, "the stream must fail, not end as if complete");
  await assert.rejects(job.done);
  return { code: failure.code, afterMs: performance.now() - struck };
}

Deno.test({
  name:
    "three nodes over TCP: a job on A runs on B, C validates B's receipt, a tampered B is slashed in every ledger",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "veriflow-3nodes-" });
    const models = join(root, "models");
    const honest = await ensureBuiltinModel(models, "small", 0);
    const tampered = await ensureBuiltinModel(models, "tiny", 1);
    const configFile = join(root, "config.json");
    await Deno.writeTextFile(configFile, JSON.stringify(CONFIG));
    const common = ["--config", configFile, "--port", "0", "--heartbeat", "0", "--model", honest];
    const dirs = { a: join(root, "a"), b: join(root, "b"), c: join(root, "c") };
    const processes: NodeProcess[] = [];
    const spawn = (name: string, args: string[], script?: string) => {
      const p = NodeProcess.start(name, args, script);
      processes.push(p);
      return p;
    };
    try {
      const c = spawn("C", [
        ...common,
        "--data",
        dirs.c,
        "--p2p-port",
        "0",
        "--no-inference",
        "--no-prover",
        "--challenge-probability",
        "1",
      ]);
      const cPort = await c.p2pPort();
      let b = spawn("B", [
        ...common,
        "--data",
        dirs.b,
        "--p2p-port",
        "0",
        "--peer",
        `127.0.0.1:${cPort}`,
        // Even drawing for every receipt, B must never challenge its own.
        "--challenge-probability",
        "1",
      ]);
      const bPort = await b.p2pPort();
      const a = spawn("A", [
        ...common,
        "--data",
        dirs.a,
        "--p2p-port",
        "0",
        "--no-inference",
        "--no-prover",
        "--peer",
        `127.0.0.1:${bPort}`,
        "--peer",
        `127.0.0.1:${cPort}`,
        // Even drawing for every receipt, B must never challenge its own.
        "--challenge-probability",
        "1",
      ]);
      const [aUrl, bUrl, cUrl] = await Promise.all([a.httpUrl(), b.httpUrl(), c.httpUrl()]);
      await eventually(
        async () => {
          const m = await a.metrics();
          return (m.get("veriflow_peers") ?? 0) >= 2 && (m.get("veriflow_peer_workers") ?? 0) >= 1
            ? true
            : undefined;
        },
        "A to be connected to B and C",
        { timeoutMs: ACROSS_PROCESSES_MS },
      );
      const keyOf = async (dir: string) => toHex((await loadOrCreateIdentity(dir)).publicKey);
      const bKey = await keyOf(dirs.b);
      const aKey = await keyOf(dirs.a);

      // 1. A client on A streams a job that runs on B: the same tokens as on B directly.
      const request = {
        prompt: "The network is",
        max_tokens: 24,
        temperature: 0.8,
        seed: 11,
      };
      const viaA = await StreamClient.connect(aUrl);
      const relayed = viaA.infer({ ...request, nonce: "via-a" });
      const relayedTokens = await collect(relayed.tokens);
      const relayedDone = await relayed.done;
      const direct = await StreamClient.connect(bUrl);
      const onB = direct.infer({ ...request, nonce: "on-b" });
      const directTokens = await collect(onB.tokens);
      await onB.done;
      assert.equal(relayedTokens.tokens.length, 24);
      assert.deepEqual(relayedTokens.tokens, directTokens.tokens);
      assert.equal(relayedTokens.text, directTokens.text);
      const receipt = relayedDone.receipt as { worker: string };
      assert.equal(receipt.worker, bKey, "the receipt handed to A's client is B's");
      const relayedId = receiptId(parseReceipt(relayedDone.receipt));
      assert.equal((await b.metrics()).get("veriflow_inference_jobs_finished_total"), 2);

      // 2. Cancelling on A's client stops the computation on B.
      const long = viaA.infer({ prompt: "Once", max_tokens: 400, temperature: 0.8, seed: 2 });
      const reader = long.tokens.getReader();
      await reader.read();
      await reader.read();
      long.cancel();
      await reader.cancel().catch(() => {});
      const cancelled = await eventually(
        async () => {
          const m = await b.metrics();
          return (m.get("veriflow_inference_jobs_cancelled_total") ?? 0) >= 1 &&
              m.get("veriflow_inference_active_jobs") === 0
            ? m
            : undefined;
        },
        "B to stop the cancelled job",
        { timeoutMs: ACROSS_PROCESSES_MS },
      );
      const generated = cancelled.get("veriflow_inference_tokens_generated_total")!;
      assert.ok(generated < 24 * 2 + 200, `B went on computing: ${generated} tokens in total`);

      // 3. B's receipt for A's job reaches C with A's signed assignment; C challenges it with
      //    proof data fetched from B and spreads a verdict that A and B record. B never
      //    validates its own. (The job B ran for its own client was requested by nobody else:
      //    it is not announced and earns nothing anywhere.)
      await eventually(
        async () => {
          const m = await c.metrics();
          return (m.get('veriflow_validator_verdicts_total{outcome="valid"}') ?? 0) >= 1
            ? true
            : undefined;
        },
        "C's valid verdict on B's receipt",
        { timeoutMs: ACROSS_PROCESSES_MS },
      );
      for (const [name, node] of [["A", a], ["B", b]] as const) {
        await eventually(
          async () => {
            const m = await node.metrics();
            return (m.get("veriflow_validator_peer_verdicts_total") ?? 0) >= 1 ? true : undefined;
          },
          `${name} to record C's verdict`,
          { timeoutMs: ACROSS_PROCESSES_MS },
        );
      }
      const bMetrics = await b.metrics();
      assert.equal(bMetrics.get("veriflow_validator_challenges_total"), 0);
      assert.ok((bMetrics.get("veriflow_validator_own_receipts_total") ?? 0) >= 2);

      // 4. B freezes mid-stream (SIGSTOP: its sockets stay open, nothing more comes): the
      //    keepalive notices, and the client on A gets peer_timeout within the idle timeout.
      const frozen = await failureOf(viaA, "Frozen", () => b.kill("SIGSTOP"));
      assert.equal(frozen.code, "peer_timeout");
      assert.ok(
        frozen.afterMs < CONFIG.network.idleTimeoutMs + 2_000,
        `noticed after ${frozen.afterMs} ms`,
      );
      b.kill("SIGCONT");
      // Thawed, B drops the connections its own clock now calls stale, and A redials: wait
      // until a job through A runs on B again.
      await eventually(
        async () => {
          const probe = viaA.infer({ prompt: "Back?", max_tokens: 2 });
          await collect(probe.tokens);
          return (await probe.done) ? true : undefined;
        },
        "A to forward jobs to B again after it thawed",
        { timeoutMs: ACROSS_PROCESSES_MS },
      );

      // 5. Killing B mid-stream (kill -9): the client on A gets connection_closed at once.
      const killed = await failureOf(viaA, "Again", () => b.kill("SIGKILL"));
      assert.equal(killed.code, "connection_closed");
      assert.ok(
        killed.afterMs < CONFIG.network.idleTimeoutMs + 2_000,
        `noticed after ${killed.afterMs} ms`,
      );
      await b.exited;

      // 6. B comes back (same key, same port) with a tampered model under the honest model's
      //    CID. C convicts it; A, B and C all slash it.
      b = spawn("B-tampered", [
        honest,
        tampered,
        ...common,
        "--data",
        dirs.b,
        "--p2p-port",
        String(bPort),
        "--peer",
        `127.0.0.1:${cPort}`,
        "--challenge-probability",
        "1",
      ], TAMPERED_WORKER);
      await b.p2pPort();
      await eventually(
        async () => {
          const m = await a.metrics();
          return (m.get("veriflow_peer_workers") ?? 0) >= 1 ? true : undefined;
        },
        "A to redial B",
        { timeoutMs: ACROSS_PROCESSES_MS },
      );
      const cheat = viaA.infer({ prompt: "Trust me", max_tokens: 16, nonce: "cheat" });
      await collect(cheat.tokens);
      const cheatDone = await cheat.done;
      const cheatReceipt = cheatDone.receipt as { worker: string };
      assert.equal(cheatReceipt.worker, bKey);
      for (const [name, node] of [["A", a], ["B", b], ["C", c]] as const) {
        await eventually(
          async () => {
            const m = await node.metrics();
            return (m.get("veriflow_validator_slashes_total") ?? 0) >= 1 ? true : undefined;
          },
          `${name} to slash the tampered worker`,
          { timeoutMs: ACROSS_PROCESSES_MS },
        );
      }
      // A routes no more jobs to the convicted worker, and its peer table says so.
      const peerRow = await eventually(
        async () => {
          const rows = [...(await a.metrics()).keys()].filter((k) =>
            k.startsWith("veriflow_peer_info{") && k.includes(`key="${bKey}"`)
          );
          return rows.find((k) => k.includes(`convicted="true"`));
        },
        "A's peer table to show B convicted",
        { timeoutMs: ACROSS_PROCESSES_MS },
      );
      assert.match(peerRow, /models="1"/);
      const refused = viaA.infer({ prompt: "Again?", max_tokens: 2 });
      await assert.rejects(refused.done, (e: Error & { code?: string }) => e.code === "no_worker");
      viaA.close();
      direct.close();
      await Promise.all([a.stop(), b.stop(), c.stop()]);

      // The ledgers themselves: the cheat's receipt is fraud in all three, B's stake is cut.
      for (const dir of [dirs.a, dirs.b, dirs.c]) {
        const ledger = await Ledger.open(join(dir, "ledger"), await loadOrCreateIdentity(dir));
        try {
          const frauds = ledger.entries().filter((e) => e.kind === "fraud");
          assert.equal(frauds.length, 1, `${dir}: one fraud settlement`);
          const slashed = frauds[0].body.slashed as number;
          assert.ok(slashed > 0);
          const stake = ledger.account(Uint8Array.from(bKey.match(/../g)!, (h) => parseInt(h, 16)))
            .stake;
          const pledged = ledger.entries().find((e) => e.kind === "stake" && e.body.key === bKey)!
            .body.amount as number;
          assert.equal(stake, pledged - slashed, `${dir}: B's stake is cut by the slash`);
          const valid = ledger.verdicts().filter((v) => v.outcome === "valid");
          assert.ok(valid.length >= 1, `${dir}: C's valid verdict recorded`);
          if (dir !== dirs.b) {
            // The relayed job is credited to B on A's word (its assignment), on A and on C.
            const record = ledger.receipt(relayedId);
            assert.equal(record?.requester, aKey, `${dir}: the relayed receipt's requester`);
            assert.ok(record.credit > 0);
          }
        } finally {
          await ledger.close();
        }
      }
      assert.ok(cUrl);
    } catch (error) {
      for (const p of processes) console.error(`--- ${p.name} ---\n${p.tail()}`);
      throw error;
    } finally {
      for (const p of processes) p.kill("SIGKILL");
      await Promise.all(processes.map((p) => p.exited.catch(() => {})));
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});
