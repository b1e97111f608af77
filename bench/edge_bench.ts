/**
 * Edge bench: what hostile request sizes cost a node's event loop and memory, with the edge's
 * limits (the defaults) and, as the baseline measured in the same run, with the limits raised
 * to what the node effectively accepted before they existed (1 GiB bodies, prompts of
 * 1,048,576 characters, any number of chat messages).
 *
 * The node's app (`createApp` over an InferenceActor with the built-in tiny model, served on
 * 127.0.0.1) runs in this process next to an event-loop probe: a timer re-armed every
 * millisecond that records the longest gap between its ticks. The load comes from a child
 * process, so sending it costs this loop nothing. Rows "in turn" send one request at a time:
 * their longest gap is the longest a single request held the loop. Rows "at once" are about
 * memory: the RSS growth while they run. Every row runs `--runs` times (3); the table shows the
 * median of the longest gaps and the largest RSS growth. The idle row (no load) is what the
 * probe sees from the machine alone (other processes preempting this one).
 *
 * Goal: no request holds the event loop for more than 50 ms; memory is bounded by the limits,
 * not by what clients send.
 *
 * ```
 * deno run -A bench/edge_bench.ts [--runs N (3)] [--body-mib N (100)] [--baseline-big]
 * ```
 * `--baseline-big` also runs the "at once" rows with raised limits: the reproduction,
 * which takes the process past 2 GB of RSS.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ActorSystem } from "../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../actors/inference_actor.ts";
import { LocalInferencePort } from "../inference/local_port.ts";
import { ModelRegistry } from "../inference/model_registry.ts";
import { buildGptModel } from "../inference/model_builder.ts";
import { createApp } from "../server/app.ts";
import { EDGE_DEFAULTS, type EdgeConfig } from "../server/edge_config.ts";
import { serve } from "../server/serve.ts";
import { GENERATION_LIMITS } from "../protocols/job.ts";
import { median } from "./_stats.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "3" },
    "body-mib": { type: "string", default: "100" },
    "baseline-big": { type: "boolean", default: false },
    // Internal: this script as the load generator, in its own process so that sending the load
    // does not delay this process's /healthz probes.
    role: { type: "string" },
    url: { type: "string" },
    load: { type: "string" },
  },
});
const RUNS = Number(flags.runs);
const BODY_MIB = Number(flags["body-mib"]);
const MIB = 1 << 20;
const GOAL_MS = 50;

/** The limits before they existed: what the schemas alone let through. */
const RAISED: Partial<EdgeConfig> = {
  maxRequestBytes: 1 << 30,
  maxPromptChars: GENERATION_LIMITS.maxPromptChars,
  maxChatMessages: 1_000_000,
};

interface Row {
  load: string;
  limits: "default" | "raised";
  /** Median over the runs of the longest event-loop gap. */
  gapMs: number;
  /** Largest RSS growth over the runs. */
  rssMib: number;
  statuses: string;
}

const encoder = new TextEncoder();

/** A completions body of about `bytes` bytes. */
function completionBody(bytes: number): Uint8Array<ArrayBuffer> {
  return encoder.encode(JSON.stringify({ prompt: "x".repeat(bytes - 32), max_tokens: 1 }));
}

/** A chat body of about `bytes` bytes in the smallest messages (the most items per byte). */
function chatBody(bytes: number): Uint8Array<ArrayBuffer> {
  const message = '{"role":"user","content":"x"}';
  const count = Math.floor((bytes - 64) / (message.length + 1));
  return encoder.encode(`{"max_tokens":1,"messages":[${Array(count).fill(message).join(",")}]}`);
}

/** A chat body of about `bytes` bytes: one message of empty text parts. */
function partsBody(bytes: number): Uint8Array<ArrayBuffer> {
  const part = '{"type":"text","text":""}';
  const count = Math.floor((bytes - 96) / (part.length + 1));
  return encoder.encode(
    `{"max_tokens":1,"messages":[{"role":"user","content":[${
      Array(count).fill(part).join(",")
    }]}]}`,
  );
}

/** One load: a body, where it goes, how many, at once or one after the other. */
interface Load {
  name: string;
  path: string;
  body: () => Uint8Array<ArrayBuffer>;
  times: number;
  parallel: boolean;
  /** Large enough that the raised-limits baseline runs only with --baseline-big. */
  big?: boolean;
}

const LOADS: Load[] = [
  {
    name: "idle (round trip only)",
    path: "",
    body: () => new Uint8Array(),
    times: 0,
    parallel: false,
  },
  {
    name: `8 × ${BODY_MIB} MiB completions bodies at once`,
    path: "/v1/completions",
    body: () => completionBody(BODY_MIB * MIB),
    times: 8,
    parallel: true,
    big: true,
  },
  {
    name: "4 × 30 MiB chat bodies at once",
    path: "/v1/chat/completions",
    body: () => chatBody(30 * MIB),
    times: 4,
    parallel: true,
    big: true,
  },
  {
    name: "1 MiB chat of 1-char messages, 4 in turn",
    path: "/v1/chat/completions",
    body: () => chatBody(MIB - 1024),
    times: 4,
    parallel: false,
  },
  {
    name: "1 MiB chat of empty parts, 4 in turn",
    path: "/v1/chat/completions",
    body: () => partsBody(MIB - 1024),
    times: 4,
    parallel: false,
  },
  {
    name: `completions, ${EDGE_DEFAULTS.maxPromptChars}-char prompt, 4 in turn`,
    path: "/v1/completions",
    body: () => completionBody(EDGE_DEFAULTS.maxPromptChars + 32),
    times: 4,
    parallel: false,
  },
  {
    name: "completions, 1,000,000-char prompt, 4 in turn",
    path: "/v1/completions",
    body: () => completionBody(1_000_032),
    times: 4,
    parallel: false,
  },
];

/** The load generator's side: send `load` to `url`, print each answer's status and code. */
async function generate(url: string, load: Load): Promise<void> {
  const body = load.body();
  const send = () =>
    fetch(`${url}${load.path}`, { method: "POST", body })
      .then(async (response) => {
        const text = await response.text();
        const code = /"code":"([a-z_]+)"/.exec(text)?.[1] ?? "ok";
        return `${response.status} ${code}`;
      })
      .catch((error) => `failed (${(error as Error).name})`);
  const statuses: string[] = [];
  if (load.parallel) statuses.push(...await Promise.all(Array.from({ length: load.times }, send)));
  else for (let i = 0; i < load.times; i++) statuses.push(await send());
  console.log(JSON.stringify(statuses));
}

if (flags.role === "load") {
  await generate(flags.url!, LOADS.find((load) => load.name === flags.load)!);
  Deno.exit(0);
}

/** One in-process node per limits, sharing the tiny model's registry and one actor system. */
async function startNodes(): Promise<{
  urls: Record<"default" | "raised", string>;
  close(): Promise<void>;
}> {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-edge-bench-" });
  await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
  const models = new ModelRegistry({ intraOpThreads: 1 });
  await models.register(dir);
  const system = new ActorSystem({ name: "edge-bench" });
  const inference = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () => new InferenceActor({ models }),
  });
  const port = new LocalInferencePort({ inference, models });
  const abort = new AbortController();
  const server = (edge: Partial<EdgeConfig>) =>
    serve({ app: createApp({ inference: port, edge }), signal: abort.signal });
  const servers = { default: server({}), raised: server(RAISED) };
  return {
    urls: { default: servers.default.url, raised: servers.raised.url },
    close: async () => {
      abort.abort();
      await Promise.all([servers.default.finished, servers.raised.finished]);
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Run `load` from a child process; the longest event-loop gap and RSS growth meanwhile. */
async function measure(
  url: string,
  load: Load,
): Promise<{ gapMs: number; rssMib: number; statuses: string[] }> {
  let running = true;
  let gapMs = 0;
  const rssBefore = Deno.memoryUsage().rss;
  let rssPeak = rssBefore;
  const probe = new Promise<void>((resolve) => {
    let last = performance.now();
    const tick = () => {
      const now = performance.now();
      gapMs = Math.max(gapMs, now - last);
      rssPeak = Math.max(rssPeak, Deno.memoryUsage().rss);
      last = now;
      if (running) setTimeout(tick, 1);
      else resolve();
    };
    setTimeout(tick, 1);
  });
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--role",
      "load",
      "--url",
      url,
      "--load",
      load.name,
      "--body-mib",
      String(BODY_MIB),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const statuses: string[] = JSON.parse(new TextDecoder().decode(output.stdout).trim() || "[]");
  if (load.times === 0) await new Promise((r) => setTimeout(r, 500)); // idle: probe a while
  running = false;
  await probe;
  return { gapMs, rssMib: (rssPeak - rssBefore) / MIB, statuses };
}

const nodes = await startNodes();
const rows: Row[] = [];
try {
  for (const load of LOADS) {
    for (const limits of ["default", "raised"] as const) {
      if (limits === "raised" && (load.big ? !flags["baseline-big"] : load.times === 0)) continue;
      const runs = [];
      for (let i = 0; i < RUNS; i++) runs.push(await measure(nodes.urls[limits], load));
      const counts = new Map<string, number>();
      for (const s of runs.flatMap((run) => run.statuses)) counts.set(s, (counts.get(s) ?? 0) + 1);
      const row: Row = {
        load: load.name,
        limits,
        gapMs: median(runs.map((run) => run.gapMs)),
        rssMib: Math.max(...runs.map((run) => run.rssMib)),
        statuses: [...counts].map(([s, n]) => `${n}×${s}`).join(" "),
      };
      rows.push(row);
      console.log(
        `${row.load} [${limits}]: longest event-loop gap ${
          runs.map((run) => run.gapMs.toFixed(1)).join(" / ")
        } ms, RSS +${row.rssMib.toFixed(0)} MiB, answers ${row.statuses}`,
      );
    }
  }
} finally {
  await nodes.close();
}

const idle = rows[0].gapMs;
console.log(
  `\n| load | limits | longest event-loop gap, median (ms) | RSS growth (MiB) | answers | goal ≤ ${GOAL_MS} ms |`,
);
console.log("| --- | --- | --- | --- | --- | --- |");
for (const row of rows) {
  const status = row.limits === "raised"
    ? "(baseline)"
    : row.load === LOADS[0].name
    ? "(machine noise)"
    : row.gapMs <= GOAL_MS
    ? "met"
    : "not met";
  console.log(
    `| ${row.load} | ${row.limits} | ${row.gapMs.toFixed(1)} | ${row.rssMib.toFixed(0)} | ` +
      `${row.statuses || "-"} | ${status} |`,
  );
}
console.log(
  `(idle: the probe's longest gap with no load, ${idle.toFixed(1)} ms, is the machine's noise)`,
);
Deno.exit(0);
