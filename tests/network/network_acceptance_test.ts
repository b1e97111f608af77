/**
 * The network, end to end, in separate processes that meet only on Hyperswarm (a local DHT
 * testnet on 127.0.0.1): a router (no model), two workers, and a validator that also stores.
 *
 * 1. A WebSocket client streams a seeded job through the router; the worker serving it (the
 *    one whose `/metrics` shows the running job) is killed with SIGKILL after the client has
 *    its first tokens; the client's stream completes on the other worker, identical to an
 *    undisturbed run of the same job, each position once, with the survivor's receipt. (The
 *    job is long — 300 tokens of the small model — so the worker is still generating when it
 *    is killed; if it ever finished first, the receipt's signer check fails, loudly.)
 * 2. The validator challenges that (resumed) receipt and finds it valid.
 * 3. A worker started with a tampered model joins, takes a job, is convicted with a fraud proof
 *    and slashed in the ledger of every honest node (router, worker, validator).
 * 4. A file put through the router gets its three copies of every block (the third after the
 *    `201`, in the background), and is read back through another node after its first holder
 *    was killed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { StreamClient } from "../../client/stream_client.ts";
import { ensureBuiltinModel } from "../../inference/builtin_model.ts";
import { loadOrCreateIdentity } from "../../node/node_identity.ts";
import { fromHex, toHex } from "../../protocols/hash.ts";
import { parseReceipt, receiptId, verifyReceipt } from "../../protocols/receipt.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { NodeProcess } from "../../tools/node_process.ts";
import { eventually } from "../_helpers/wait.ts";
import { NEWCOMER_EVERY } from "../../network/_worker_routing.ts";

/** Give-up time of a wait on other processes (meeting on the swarm, a challenge). */
const ACROSS_PROCESSES_MS = 45_000;
/** A lost peer is noticed within a second, not the default five. */
const CONFIG = { network: { keepaliveMs: 300, idleTimeoutMs: 1_000 } };
const TAMPERED_WORKER = new URL("./_tampered_worker.ts", import.meta.url).pathname;
/** Long enough that the serving worker is still generating when it is killed. */
const REQUEST = { prompt: "The network", max_tokens: 300, temperature: 0.8, top_k: 40, seed: 11 };

/** The keys of the peers a node's `/metrics` lists (one `veriflow_peer_info` per connection). */
function peerKeys(metrics: Map<string, number>): Set<string> {
  const keys = new Set<string>();
  for (const name of metrics.keys()) {
    const key = name.startsWith("veriflow_peer_info{") ? name.match(/key="([0-9a-f]+)"/) : null;
    if (key) keys.add(key[1]);
  }
  return keys;
}

Deno.test({
  name:
    "the network on Hyperswarm: failover mid-stream is invisible to the client, the validator accepts the resumed receipt, a tampered worker is slashed in every ledger, a file outlives its first holder",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "veriflow-network-" });
    const testnet = await startLocalTestnet();
    const processes: NodeProcess[] = [];
    try {
      const honest = await ensureBuiltinModel(join(root, "models"), "small", 0);
      const tampered = await ensureBuiltinModel(join(root, "models"), "tiny", 1);
      const configFile = join(root, "config.json");
      await Deno.writeTextFile(configFile, JSON.stringify(CONFIG));
      const common = [
        ...["--config", configFile, "--port", "0", "--heartbeat", "0", "--model", honest],
        ...testnet.bootstrap.flatMap((b) => ["--swarm-bootstrap", b]),
        ...["--swarm-bind", "127.0.0.1", "--no-listen"],
      ];
      const spawn = (name: string, args: string[], script?: string, leading: string[] = []) => {
        const p = NodeProcess.start(
          name,
          [...leading, ...common, "--data", join(root, name), ...args],
          script,
        );
        processes.push(p);
        return p;
      };
      const keyOf = async (name: string) =>
        toHex((await loadOrCreateIdentity(join(root, name))).publicKey);
      // Only the validator challenges: every receipt it hears of.
      const quiet = ["--challenge-probability", "0"];
      const validator = spawn("validator", [
        ...["--no-inference", "--no-prover", "--challenge-probability", "1"],
      ]);
      const workers = [spawn("w1", quiet), spawn("w2", quiet)];
      const router = spawn("router", ["--no-inference", "--no-prover", ...quiet]);
      const routerUrl = await router.httpUrl();
      const meets = (node: NodeProcess, peers: number, workersSeen = 0) =>
        eventually(
          async () => {
            const m = await node.metrics();
            return (m.get("veriflow_peers") ?? 0) >= peers &&
                (m.get("veriflow_peer_workers") ?? 0) >= workersSeen
              ? true
              : undefined;
          },
          `${node.name} to meet ${peers} peers`,
          { timeoutMs: ACROSS_PROCESSES_MS },
        );
      await meets(router, 3, 2);
      for (const node of [validator, ...workers]) await meets(node, 3);
      const workerKeys = await Promise.all(workers.map((w) => keyOf(w.name)));
      let killed = "";

      const client = await StreamClient.connect(routerUrl);
      try {
        // ---- 1. failover mid-stream ------------------------------------------------------
        const reference = client.infer({ ...REQUEST, nonce: "reference" });
        const expected: number[] = [];
        let expectedText = "";
        for await (const t of reference.tokens) {
          expected.push(t.token_id);
          expectedText += t.text;
        }
        await reference.done;
        const job = client.infer({ ...REQUEST, nonce: "failover" });
        const reader = job.tokens.getReader();
        const got: { index: number; id: number; text: string }[] = [];
        while (got.length < 8) {
          const { value } = await reader.read();
          assert.ok(value, "the job ended before the kill");
          got.push({ index: value.index, id: value.token_id, text: value.text });
        }
        const active = await Promise.all(
          workers.map(async (w) => (await w.metrics()).get("veriflow_inference_active_jobs")),
        );
        const serving = active.indexOf(1);
        assert.ok(serving >= 0 && active.lastIndexOf(1) === serving, `active jobs ${active}`);
        workers[serving].kill("SIGKILL");
        killed = workers[serving].name;
        const survivor = workers[1 - serving];
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          got.push({ index: value.index, id: value.token_id, text: value.text });
        }
        const summary = await job.done;
        assert.deepEqual(got.map((t) => t.index), expected.map((_, i) => i), "each token once");
        assert.deepEqual(got.map((t) => t.id), expected);
        assert.equal(got.map((t) => t.text).join(""), expectedText);
        assert.equal(summary.finish_reason, "length");
        const resumed = parseReceipt(summary.receipt);
        assert.equal(toHex(resumed.worker), workerKeys[1 - serving], "the resuming worker's");
        assert.equal(resumed.jobId, (await job.start).job_id);
        assert.equal(resumed.tokenCount, REQUEST.max_tokens);
        const check = verifyReceipt(resumed, {
          worker: fromHex(workerKeys[1 - serving]),
          output: expectedText,
        });
        assert.ok(check.ok, JSON.stringify(check));

        // ---- 2. the validator accepts the resumed receipt ---------------------------------
        const shortId = resumed.jobId.slice(0, 12);
        await eventually(
          () => validator.lines.find((l) => l.includes(`job ${shortId} → valid`)),
          "the validator's valid verdict on the resumed receipt",
          { timeoutMs: ACROSS_PROCESSES_MS },
        );
        await eventually(
          async () =>
            (await validator.metrics()).get("veriflow_validator_slashes_total") === 0
              ? true
              : undefined,
          "no slash in the validator's ledger",
        );

        // ---- 3. a tampered worker is slashed in every honest ledger ----------------------
        const cheater = spawn("cheater", quiet, TAMPERED_WORKER, [honest, tampered]);
        await cheater.httpUrl();
        const cheaterKey = await keyOf("cheater");
        await meets(router, 3, 2);
        // The honest worker has a track record here and room: the router gives the cheater, a
        // stranger, a newcomer's turn, one pick in NEWCOMER_EVERY (`network/worker_choice.ts`);
        // twice that many jobs at most, as a stranger asked last (the killed worker) holds turns
        // back for its while.
        let luredReceipt = undefined as ReturnType<typeof parseReceipt> | undefined;
        for (let n = 0; n < 2 * NEWCOMER_EVERY && luredReceipt?.worker === undefined; n++) {
          const job = client.infer({
            prompt: "A job",
            max_tokens: 24,
            seed: 2,
            nonce: `lure-${n}`,
          });
          for await (const _ of job.tokens) { /* read every token */ }
          const receipt = parseReceipt((await job.done).receipt);
          if (toHex(receipt.worker) === cheaterKey) luredReceipt = receipt;
        }
        assert.ok(luredReceipt !== undefined, "no job ran on the cheater");
        assert.equal(toHex(luredReceipt.worker), cheaterKey, "the lured job ran on the cheater");
        for (const node of [router, survivor, validator]) {
          await eventually(
            async () => {
              const keys = [...(await node.metrics()).keys()];
              return keys.find((k) =>
                k.startsWith("veriflow_peer_info{") && k.includes(cheaterKey) &&
                k.includes(`convicted="true"`)
              );
            },
            `${node.name}'s ledger to slash the cheater (receipt ${
              receiptId(luredReceipt).slice(0, 12)
            })`,
            { timeoutMs: ACROSS_PROCESSES_MS },
          );
          assert.ok(((await node.metrics()).get("veriflow_validator_slashes_total") ?? 0) >= 1);
        }
      } finally {
        client.close();
      }

      // ---- 4. a file outlives its first holder --------------------------------------------
      // The holders are ranked below over the nodes alive: each must have every other as a
      // peer, by key (a count of connections also counts a second connection to one peer).
      const alive = processes.filter((p) => p.name !== killed);
      const ids = await Promise.all(
        alive.map(async (node) => ({ id: await keyOf(node.name), node })),
      );
      for (const node of alive) {
        await eventually(
          async () => {
            const keys = peerKeys(await node.metrics());
            return ids.every((p) => p.node === node || keys.has(p.id)) ? true : undefined;
          },
          `${node.name} to have every other node as a peer`,
          { timeoutMs: ACROSS_PROCESSES_MS },
        );
      }
      const objects = async () => {
        let n = 0;
        for (const node of alive) n += (await node.metrics()).get("veriflow_storage_objects") ?? 0;
        return n;
      };
      const before = await objects();
      const bytes = new Uint8Array(700_000).map((_, i) => (i * 7919) % 251);
      const put = await fetch(`${routerUrl}/v1/files?name=data.bin`, {
        method: "POST",
        body: bytes,
      });
      assert.equal(put.status, 201);
      const { cid, chunks } = await put.json() as { cid: string; chunks: number };
      const holders = rankPeers(cid, ids);
      // The 201 comes once two holders have each block; the third copies follow in the
      // background. The holder is killed once they are in, not while they may be: three copies
      // of every block (the leaves and the root: too few leaves for inner nodes), and the
      // router's own copy of the root if it is not one of its holders.
      const copies = 3 * (chunks + 1) +
        (holders.slice(0, 3).some((h) => h.node === router) ? 0 : 1);
      await eventually(
        async () => (await objects()) - before >= copies ? true : undefined,
        `the file's ${copies} copies`,
        { timeoutMs: ACROSS_PROCESSES_MS },
      );
      const first = holders[0].node;
      first.kill("SIGKILL");
      await first.exited;
      const reader = holders.slice(1).find((h) => h.node !== router)!.node;
      const back = await fetch(`${await reader.httpUrl()}/v1/files/${cid}`);
      assert.equal(back.status, 200);
      assert.deepEqual(new Uint8Array(await back.arrayBuffer()), bytes);
    } catch (error) {
      for (const p of processes) console.error(`--- ${p.name} ---\n${p.tail(30)}`);
      throw error;
    } finally {
      for (const p of processes) p.kill("SIGKILL");
      await Promise.all(processes.map((p) => p.exited));
      await testnet.stop();
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});
