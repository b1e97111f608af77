/**
 * Review at stop 47 of "nothing lost on a crash" for a whole node process: real `cli.ts start`
 * processes killed with SIGKILL at chosen moments, then started again on the same data directory.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { NodeProcess } from "../../tools/node_process.ts";
import { StreamClient } from "../../client/stream_client.ts";

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
