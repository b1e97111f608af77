/**
 * Relayed vs direct, shared by the network bench (TCP peers) and the swarm bench (Hyperswarm
 * peers): a WebSocket client streams the same job through a relay node A (which runs no model)
 * and directly on the worker B, interleaved, and the table prints the medians of tokens/s and
 * time to first token (TTFT), their ratio and difference, and the CPU each node spent per token.
 *
 * @module
 */
import { StreamClient } from "../client/stream_client.ts";
import type { NodeProcess } from "../tools/node_process.ts";
import { median } from "./_stats.ts";
import { ownCpuSeconds, treeCpuSeconds } from "./_cpu.ts";

/** One streamed job as the client saw it. */
export interface StreamRun {
  /** Tokens per second after the first. */
  tokensPerS: number;
  /** Time to first token, from the request. */
  ttftMs: number;
}

/** Stream one job of `tokens` tokens from the node at `url`. */
export async function streamOnce(url: string, nonce: string, tokens: number): Promise<StreamRun> {
  const client = await StreamClient.connect(url);
  try {
    const sent = performance.now();
    const job = client.infer({
      prompt: "The quick brown fox",
      max_tokens: tokens,
      temperature: 0.8,
      seed: 5,
      nonce,
    });
    let first = NaN;
    let last = NaN;
    let count = 0;
    for await (const _ of job.tokens) {
      last = performance.now();
      if (count === 0) first = last;
      count++;
    }
    await job.done;
    if (count !== tokens) throw new Error(`expected ${tokens} tokens, got ${count}`);
    return { tokensPerS: (count - 1) / ((last - first) / 1000), ttftMs: first - sent };
  } finally {
    client.close();
  }
}

/** What {@link relayedVsDirect} prints and checks. */
export interface RelayedVsDirectOptions {
  /** Interleaved runs per path. */
  runs: number;
  /** Tokens per job. */
  tokens: number;
  /** The first line of the table: what was measured, how. */
  title: string;
  /** Names of the relay's path (`relayed`, `via the router`) in the table. */
  relayLabel: string;
  /** After "CPU µs/token on A" in the header (" with its host"). */
  cpuNote?: string;
  /** Goals: relayed/direct tokens/s at least, TTFT added at most. */
  goals: { ratio: number; addedMs: number };
}

/** The medians {@link relayedVsDirect} measured. */
export interface RelayedVsDirectResult {
  /** Relayed tokens/s over direct. */
  ratio: number;
  /** Relayed TTFT minus direct, ms. */
  addedMs: number;
}

/**
 * Wait until relay `a` sees a worker, warm both paths up, stream `runs` jobs each way
 * interleaved (alternating which goes first, so drift hits both alike), print the table.
 */
export async function relayedVsDirect(
  a: NodeProcess,
  b: NodeProcess,
  options: RelayedVsDirectOptions,
  workerTimeoutMs = 30_000,
): Promise<RelayedVsDirectResult> {
  const { runs, tokens } = options;
  const [aUrl, bUrl] = await Promise.all([a.httpUrl(), b.httpUrl()]);
  const deadline = Date.now() + workerTimeoutMs;
  for (;;) {
    const m = await a.metrics();
    if ((m.get("veriflow_peer_workers") ?? 0) >= 1) break;
    if (Date.now() > deadline) throw new Error(`A found no worker:\n${a.tail()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // Warm up both paths (model pages, JIT, connection).
  await streamOnce(bUrl, "warm-b", tokens);
  await streamOnce(aUrl, "warm-a", tokens);
  const relayed: StreamRun[] = [];
  const direct: StreamRun[] = [];
  // CPU seconds A and B spent during the relayed and the direct runs: each with its child
  // processes (its swarm host, if any), and the children alone.
  const cpuSeconds = async (p: NodeProcess) => {
    const [tree, own] = await Promise.all([treeCpuSeconds(p.pid), ownCpuSeconds(p.pid)]);
    return { tree, children: tree - own };
  };
  const zero = () => ({ tree: 0, children: 0 });
  const cpu = { relayed: { a: zero(), b: zero() }, direct: { a: zero(), b: zero() } };
  for (let run = 0; run < runs; run++) {
    const order = run % 2 === 0 ? ["a", "b"] : ["b", "a"];
    for (const which of order) {
      const [a0, b0] = await Promise.all([cpuSeconds(a), cpuSeconds(b)]);
      if (which === "a") relayed.push(await streamOnce(aUrl, `a${run}`, tokens));
      else direct.push(await streamOnce(bUrl, `b${run}`, tokens));
      const [a1, b1] = await Promise.all([cpuSeconds(a), cpuSeconds(b)]);
      const into = which === "a" ? cpu.relayed : cpu.direct;
      for (const [sum, start, end] of [[into.a, a0, a1], [into.b, b0, b1]] as const) {
        sum.tree += end.tree - start.tree;
        sum.children += end.children - start.children;
      }
    }
  }
  const us = (s: number) => (s / (runs * tokens) * 1e6).toFixed(0);
  // "940 (250)": the node with its children, and in brackets the children's share, when any.
  const usPerToken = (s: { tree: number; children: number }) =>
    s.children > 0 ? `${us(s.tree)} (${us(s.children)})` : us(s.tree);
  const rt = median(relayed.map((r) => r.tokensPerS));
  const dt = median(direct.map((r) => r.tokensPerS));
  const rf = median(relayed.map((r) => r.ttftMs));
  const df = median(direct.map((r) => r.ttftMs));
  console.log(`\n${options.title}`);
  console.log(
    `| client | tokens/s | TTFT ms | CPU µs/token on A${options.cpuNote ?? ""} | CPU µs/token on B${
      options.cpuNote ?? ""
    } |`,
  );
  console.log("| --- | ---: | ---: | ---: | ---: |");
  console.log(
    `| on B (job on B) | ${dt.toFixed(0)} | ${df.toFixed(1)} | ` +
      `${usPerToken(cpu.direct.a)} | ${usPerToken(cpu.direct.b)} |`,
  );
  console.log(
    `| on A (job on B, ${options.relayLabel}) | ${rt.toFixed(0)} | ${rf.toFixed(1)} | ` +
      `${usPerToken(cpu.relayed.a)} | ${usPerToken(cpu.relayed.b)} |`,
  );
  const ratio = rt / dt;
  const addedMs = rf - df;
  const { goals } = options;
  console.log(
    `tokens/s ratio ${options.relayLabel}/direct ${ratio.toFixed(3)} (goal ≥ ${goals.ratio}: ${
      ratio >= goals.ratio ? "met" : "NOT met"
    }); TTFT added ${addedMs.toFixed(1)} ms (goal ≤ ${goals.addedMs} ms: ${
      addedMs <= goals.addedMs ? "met" : "NOT met"
    })`,
  );
  return { ratio, addedMs };
}

/** Pin every thread of this process to `cpus` (a taskset list). */
export async function pinSelf(cpus: string): Promise<void> {
  const { code } = await new Deno.Command("taskset", {
    args: ["-a", "-p", "-c", cpus, String(Deno.pid)],
    stdout: "null",
    stderr: "null",
  }).output();
  if (code !== 0) throw new Error(`taskset -p ${cpus} failed`);
}

/** Whether pinning can stand two cores in for two machines here. */
export async function canPin(): Promise<boolean> {
  if (navigator.hardwareConcurrency < 2) return false;
  try {
    return (await new Deno.Command("taskset", { args: ["-V"], stdout: "null", stderr: "null" })
      .output()).code === 0;
  } catch {
    return false;
  }
}
