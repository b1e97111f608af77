/**
 * Network bench: what forwarding a job to another node costs, measured side by side.
 *
 * 1. **Relayed vs direct.** Two node processes on 127.0.0.1, both in their default
 *    configuration (`cli.ts start` with only ports and data directories set): B runs the model,
 *    A runs none and forwards its clients' jobs to B over TCP. A WebSocket client streams the
 *    same job through A and directly on B, interleaved, and the table prints the medians of
 *    tokens/s and time to first token (TTFT) and their ratio and difference.
 *    Goals: relayed/direct tokens/s ≥ 0.95; TTFT added ≤ 5 ms. Printed twice: first unpinned
 *    (the headline: on a 2-core box whatever A spends is taken from B's compute, since
 *    onnxruntime's threads use every core they are given), then, as a labelled extra row, with
 *    B pinned to one core and A and the client to the other (`taskset`; two cores standing in
 *    for the two machines a relay and a worker are).
 * 2. **Relay throughput.** In this process, three connections over loopback TCP: a synthetic
 *    worker that emits tokens as fast as it can, a relay (a `RemoteInferencePort` to the worker
 *    served to the client with `serveInference`, exactly what a forwarding node does per job),
 *    and a client. Many concurrent jobs; the table prints tokens relayed per second and per
 *    CPU-second of the relay, beside the same jobs read directly from the worker. Tokens, not
 *    frames: a relay that falls behind gets the tokens ready meanwhile in one frame (a `tokens`
 *    event), which is most of what it relays here, where 64 jobs run flat out.
 *    Goal: ≥ 50,000 relayed tokens per second per core.
 *
 * ```
 * deno run -A bench/network_bench.ts [--runs N (15)] [--tokens N (100)] [--size tiny|small]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import process from "node:process";
import { NodeProcess } from "../tools/node_process.ts";
import { Connection } from "../protocols/connection.ts";
import { connectTcp, listenTcp } from "../protocols/tcp_transport.ts";
import { Identity } from "../protocols/identity.ts";
import type { TextJob } from "../protocols/job.ts";
import { RemoteInferencePort } from "../inference/remote_port.ts";
import { serveInference } from "../inference/serve_inference.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  JobSummary,
  StreamedToken,
} from "../inference/inference_port.ts";
import { INFERENCE_PROTOCOL } from "../protocols/inference_messages.ts";
import { median } from "./_stats.ts";
import { canPin, pinSelf, relayedVsDirect } from "./_relayed_vs_direct.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "15" },
    // The default model (brown) reads 128 positions: 100 tokens after the 19-byte prompt fit.
    tokens: { type: "string", default: "100" },
    size: { type: "string" },
    "relay-jobs": { type: "string", default: "64" },
    "relay-tokens": { type: "string", default: "2000" },
    // Internal: this script as the relay bench's worker or client process.
    role: { type: "string" },
    port: { type: "string" },
  },
});
const RUNS = Number(flags.runs);
const TOKENS = Number(flags.tokens);
const RELAY_JOBS = Number(flags["relay-jobs"]);
const RELAY_TOKENS = Number(flags["relay-tokens"]);

// ---------------------------------------------------------------------------------------------
// 1. Relayed vs direct, two node processes

/**
 * One relayed-vs-direct comparison. `pinned`: the worker B on core 0, the relay A and the
 * client on core 1 — two cores standing in for two machines, so that what A and the client
 * spend is not taken from B's compute. Unpinned, all three share both cores.
 */
async function relayedVsDirectOverTcp(pinned: boolean): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "veriflow-netbench-" });
  const size = flags.size === undefined ? [] : ["--model-size", flags.size];
  const common = ["--port", "0", "--heartbeat", "0", ...size];
  const cpus = (core: string) => pinned ? { cpus: core } : {};
  const b = NodeProcess.start(
    "B",
    [...common, "--data", join(root, "b"), "--p2p-port", "0"],
    undefined,
    cpus("0"),
  );
  let a: NodeProcess | undefined;
  try {
    if (pinned) await pinSelf("1");
    const bPort = await b.p2pPort();
    a = NodeProcess.start(
      "A",
      [
        ...common,
        "--data",
        join(root, "a"),
        "--p2p-port",
        "0",
        "--no-inference",
        "--no-prover",
        "--peer",
        `127.0.0.1:${bPort}`,
      ],
      undefined,
      cpus("1"),
    );
    const model = flags.size ? `--model-size ${flags.size}` : "built-in default model (brown)";
    const placement = pinned
      ? "B on core 0, A and the client on core 1 (two cores for two machines)"
      : "all processes on both cores (the relay's CPU comes out of B's)";
    await relayedVsDirect(a, b, {
      runs: RUNS,
      tokens: TOKENS,
      title: `relayed vs direct: default node config (${model}), ${placement}; ` +
        `${TOKENS} tokens, ${RUNS} interleaved runs each, medians`,
      relayLabel: "relayed",
      goals: { ratio: 0.95, addedMs: 5 },
    }, 10_000);
  } finally {
    if (pinned) await pinSelf(`0-${navigator.hardwareConcurrency - 1}`);
    await Promise.all([a?.stop(), b.stop()]);
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Relay throughput, in process

/** A worker that emits `RELAY_TOKENS` tokens per job as fast as its reader pulls. */
class SyntheticPort implements InferencePort {
  submit(job: TextJob): Promise<InferenceHandle> {
    let index = 0;
    const done = Promise.withResolvers<JobSummary>();
    const tokens = new ReadableStream<StreamedToken>({
      pull(controller) {
        const token: StreamedToken = { index, tokenId: index % 256, text: "x" };
        index++;
        if (index === RELAY_TOKENS) {
          token.finishReason = "length";
          controller.enqueue(token);
          controller.close();
          done.resolve({
            jobId: "0".repeat(64),
            finishReason: "length",
            usage: { promptTokens: 1, completionTokens: index },
            timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
          });
          return;
        }
        controller.enqueue(token);
      },
    }, { highWaterMark: 0 });
    return Promise.resolve({
      jobId: "0".repeat(64),
      model: { cid: job.model, name: "synthetic", kind: "text" },
      promptTokens: 1,
      tokens,
      done: done.promise,
      cancel: () => tokens.cancel().catch(() => {}),
    });
  }
  models() {
    return Promise.resolve([]);
  }
  stats(): Promise<InferenceStats> {
    throw new Error("unused");
  }
}

/** A connection to `address` with the handshake and the inference protocol. */
async function dial(port: number): Promise<Connection> {
  return await Connection.open(await connectTcp({ hostname: "127.0.0.1", port }), {
    identity: Identity.generate(),
    protocols: [INFERENCE_PROTOCOL],
  });
}

/** Serve `port` to every connection accepted on a free loopback port; returns that port. */
function listen(port: InferencePort): { port: number; close(): Promise<void> } {
  const identity = Identity.generate();
  const listener = listenTcp({ hostname: "127.0.0.1", port: 0 }, (duplex) => {
    Connection.open(duplex, { identity, protocols: [INFERENCE_PROTOCOL] }).then(
      // Every job of the run on one connection, as a relay multiplexes its clients.
      (connection) => serveInference(connection, port, { maxJobs: RELAY_JOBS }),
      () => {},
    );
  });
  return { port: listener.addr.port, close: () => listener.close() };
}

async function drive(port: InferencePort): Promise<{ frames: number; ms: number }> {
  const job: TextJob = {
    kind: "text",
    model: "synthetic",
    prompt: "x",
    params: { maxTokens: RELAY_TOKENS, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
    nonce: "n",
  };
  const t0 = performance.now();
  let frames = 0;
  await Promise.all(Array.from({ length: RELAY_JOBS }, async (_, i) => {
    const handle = await port.submit({ ...job, nonce: `n${i}` });
    for await (const _ of handle.tokens) frames++;
    await handle.done;
  }));
  return { frames, ms: performance.now() - t0 };
}

/** A child process of this script in another role; its first stdout line, parsed. */
async function child(args: string[]): Promise<{ line: string; process: Deno.ChildProcess }> {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) break;
    text += value;
  }
  reader.releaseLock();
  return { line: text.split("\n")[0], process };
}

async function clientRun(port: number): Promise<{ frames: number; ms: number }> {
  const { line, process } = await child([
    "--role",
    "client",
    "--port",
    String(port),
    "--relay-jobs",
    String(RELAY_JOBS),
    "--relay-tokens",
    String(RELAY_TOKENS),
  ]);
  await process.status;
  return JSON.parse(line);
}

/**
 * The relay in this process, the worker and the client in two others: this process's CPU
 * time during a run is the relay's alone.
 */
async function relayThroughput(): Promise<void> {
  const worker = await child(["--role", "worker"]);
  const workerPort = Number(worker.line);
  const upstream = new RemoteInferencePort(await dial(workerPort));
  const relay = listen(upstream);
  try {
    await clientRun(relay.port); // warm up both paths
    await clientRun(workerPort);
    const relayed: { perS: number; perCore: number; cpuShare: number }[] = [];
    const direct: number[] = [];
    for (let run = 0; run < 3; run++) {
      const cpu0 = process.cpuUsage();
      const r = await clientRun(relay.port);
      const cpu = process.cpuUsage(cpu0);
      const cpuS = (cpu.user + cpu.system) / 1e6;
      relayed.push({
        perS: r.frames / (r.ms / 1000),
        perCore: r.frames / cpuS,
        cpuShare: cpuS / (r.ms / 1000),
      });
      const d = await clientRun(workerPort);
      direct.push(d.frames / (d.ms / 1000));
    }
    const rp = median(relayed.map((r) => r.perS));
    const rc = median(relayed.map((r) => r.perCore));
    const share = median(relayed.map((r) => r.cpuShare));
    const dp = median(direct);
    console.log(
      `\nrelay throughput: ${RELAY_JOBS} concurrent jobs × ${RELAY_TOKENS} tokens, worker, relay ` +
        `and client in three processes over loopback TCP, 3 runs, medians`,
    );
    console.log("| path | tokens/s | relay CPU | relayed tokens per relay CPU-second |");
    console.log("| --- | ---: | ---: | ---: |");
    console.log(`| worker → client | ${dp.toFixed(0)} | — | — |`);
    console.log(
      `| worker → relay → client | ${rp.toFixed(0)} | ${(share * 100).toFixed(0)} % of a core | ${
        rc.toFixed(0)
      } |`,
    );
    console.log(
      `relayed tokens per core ${rc.toFixed(0)} (goal ≥ 50,000: ${
        rc >= 50_000 ? "met" : "NOT met"
      }); relayed/direct tokens/s ${(rp / dp).toFixed(2)}`,
    );
  } finally {
    await upstream.connection.close();
    await relay.close();
    worker.process.kill("SIGTERM");
    await worker.process.status;
  }
}

if (flags.role === "worker") {
  const served = listen(new SyntheticPort());
  console.log(served.port);
  // Runs until the parent stops it.
} else if (flags.role === "client") {
  const connection = await dial(Number(flags.port));
  const result = await drive(new RemoteInferencePort(connection));
  console.log(JSON.stringify(result));
  await connection.close();
  Deno.exit(0);
} else {
  await relayThroughput();
  // Headline: the nodes as they run here, sharing the cores. Extra, labelled: each on its own.
  await relayedVsDirectOverTcp(false);
  if (await canPin()) await relayedVsDirectOverTcp(true);
  else console.log("\n(taskset or a second core is missing: no pinned relayed-vs-direct row)");
}
