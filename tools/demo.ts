/**
 * `deno task demo`: a Veriflow network on this machine, narrated. Everything runs on 127.0.0.1:
 * a local Hyperswarm DHT testnet, and four node processes that find each other on it, knowing
 * no addresses:
 *
 * - **router** — runs no jobs itself (its model serves only its validator); takes the client's jobs and forwards them to a worker;
 * - **worker** — runs the model and signs receipts;
 * - **validator** — runs no jobs; challenges every receipt it hears of (probability 1 here);
 * - **cheater** — joins later: a worker that serves the model's CID with other weights.
 *
 * The client streams a job through the router (tokens printed as they arrive), gets the
 * worker's signed receipt, and the validator's verdict on it arrives. Then the cheater joins,
 * takes a job, is convicted with a fraud proof and slashed, and the router sends it no more
 * work. A file put through the router is spread over the four nodes (three copies of each
 * chunk); its first holder is killed with SIGKILL, another node reads it back byte for byte,
 * and the survivors restore the third copies. Last, a short training round on TCP: a
 * coordinator and three trainers on disjoint shards of the Brown corpus train a small model
 * together; one of them is lazy, is caught by a step challenge, slashed and left out, and the
 * round's model — lower held-out loss than where it started — is served by the trainers and
 * writes through the coordinator's API. Everything else shuts down cleanly; the exit status is
 * 0 only if every step happened. Stopped early (Ctrl-C, SIGTERM, SIGHUP), it stops its nodes and
 * its testnet and removes its temporary directory (the nodes' identities) before it exits, with
 * 128 + the signal's number as a shell reports it.
 *
 * ```
 * deno task demo            # or: deno run -A tools/demo.ts [--quiet]
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { StreamClient } from "../client/stream_client.ts";
import { ensureBuiltinModel } from "../inference/builtin_model.ts";
import { type LocalTestnet, startLocalTestnet } from "../network/swarm_testnet.ts";
import { loadOrCreateIdentity } from "../node/node_identity.ts";
import { toHex } from "../protocols/hash.ts";
import { NodeProcess } from "./node_process.ts";
import { rankPeers } from "../storage/rendezvous.ts";
import { flagProblem } from "../node/_unknown_flag.ts";
import { NEWCOMER_EVERY } from "../network/_worker_routing.ts";
import { stopSignalNames, StopSignals } from "../node/stop_signals.ts";

/** Exit status for a bad flag, as every `cli.ts` command answers one. */
const EXIT_USAGE = 2;

/** The flags, or exit 2 with one line naming the bad one (not an uncaught error's stack). */
function parseFlags(args: string[]): { quiet?: boolean } {
  try {
    return parseArgs({ args, strict: true, options: { quiet: { type: "boolean" } } }).values;
  } catch (error) {
    // `--quite` is told `did you mean --quiet?`, as every command tells a mistyped flag.
    console.error(
      `error: ${flagProblem(error, ["quiet"])} (usage: cli.ts demo [--quiet]; see cli.ts demo ` +
        "--help)",
    );
    Deno.exit(EXIT_USAGE);
  }
}

const values = parseFlags(Deno.args);
// File paths, not URL pathnames: those are percent-encoded (a space is `%20`) and named no file
// in a checkout whose path has a space.
const CHEATING_WORKER = fileURLToPath(
  new URL("../tests/network/_tampered_worker.ts", import.meta.url),
);
const LAZY_TRAINER = fileURLToPath(new URL("../tests/training/_lazy_trainer.ts", import.meta.url));
const STEP_TIMEOUT_MS = 60_000;

/**
 * What the demo started, for {@link cleanUp}: at its end, or on a stop signal. Deno's default
 * action for SIGTERM ends the process without running `finally`, so a demo stopped by `timeout`
 * or a process manager left its nodes running and its directory with their identities behind
 * (review s78, finding 2).
 */
const started: { root?: string; processes: NodeProcess[]; testnet?: LocalTestnet } = {
  processes: [],
};
let cleaning: Promise<void> | undefined;

/** Kill every node, stop the testnet, remove the temporary directory: once. */
function cleanUp(): Promise<void> {
  return cleaning ??= (async () => {
    for (const p of started.processes) p.kill("SIGKILL");
    // Gone before their directory is removed: a dying node's last write would make it fail.
    await Promise.all(started.processes.map((p) => p.exited.catch(() => {})));
    await started.testnet?.stop().catch(() => {});
    if (started.root !== undefined) {
      await Deno.remove(started.root, { recursive: true }).catch(() => {});
    }
  })();
}

/** Exit statuses for a stop signal: 128 + its number, as a shell reports a process it ended. */
const SIGNAL_EXIT: Partial<Record<Deno.Signal, number>> = {
  SIGHUP: 129,
  SIGINT: 130,
  SIGTERM: 143,
};
/** The stop signal's exit status once one came; the demo then exits with it. */
let stoppedWith: number | undefined;
const stops = new StopSignals(() => performance.now());
for (const name of stopSignalNames()) {
  Deno.addSignalListener(name, () => {
    // A terminal's Ctrl-C often arrives twice (`deno task` forwards it): one stop. A second
    // one, meant, exits at once.
    const action = stops.next();
    if (action === "ignore") return;
    const status = SIGNAL_EXIT[name] ?? 1;
    if (action === "force") Deno.exit(status);
    stoppedWith = status;
    console.error(`\ndemo stopped (${name}): stopping its nodes and removing its files`);
    cleanUp().finally(() => Deno.exit(status));
  });
}

const say = (text: string) => console.log(`\n▶ ${text}`);
const detail = (text: string) => console.log(`  ${text}`);

/** Echo, as they come, the lines of `node` that match `shown`, tagged with its name. */
function echoLines(node: NodeProcess, name: string, shown: RegExp): void {
  let seen = 0;
  const timer = setInterval(() => {
    for (; seen < node.lines.length; seen++) {
      if (shown.test(node.lines[seen])) detail(`[${name}] ${node.lines[seen]}`);
    }
  }, 50);
  node.exited.finally(() => clearInterval(timer));
}

/** Poll `probe` until it gives a value (or fail after STEP_TIMEOUT_MS, naming `what`). */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main(): Promise<number> {
  const root = started.root = await Deno.makeTempDir({ prefix: "veriflow-demo-" });
  const processes = started.processes;
  try {
    say("Building the model (the built-in GPT-style tiny model) and a cheaper substitute");
    const honest = await ensureBuiltinModel(join(root, "models"), "tiny", 0);
    const substitute = await ensureBuiltinModel(join(root, "models"), "tiny", 1);

    say("Starting a Hyperswarm DHT testnet on 127.0.0.1 (nothing leaves this machine)");
    const testnet = started.testnet = await startLocalTestnet();
    detail(`bootstrap ${testnet.bootstrap.join(", ")}`);
    const swarm = [
      ...testnet.bootstrap.flatMap((b) => ["--swarm-bootstrap", b]),
      "--swarm-bind",
      "127.0.0.1",
      "--no-listen", // no TCP peers: the swarm is the only way the nodes meet
    ];
    const common = ["--port", "0", "--heartbeat", "0", "--model", honest, ...swarm];
    /** Start a node; `script` with `leading` arguments runs another entry point (the cheater). */
    const start = (name: string, args: string[], script?: string, leading: string[] = []) => {
      const node = NodeProcess.start(
        name,
        [...leading, ...common, "--data", join(root, name), ...args],
        script,
      );
      processes.push(node);
      // Show what each node says about the network and the proofs, as it happens.
      if (!values.quiet) echoLines(node, name, /validator:|convicted|swarm joined|peer up/);
      return node;
    };
    const keyOf = async (name: string) =>
      toHex((await loadOrCreateIdentity(join(root, name))).publicKey);

    say("Starting the validator, the worker and the router; they find each other on the swarm");
    const validator = start("validator", [
      "--no-inference",
      "--no-prover",
      "--challenge-probability",
      "1",
    ]);
    const worker = start("worker", []);
    const router = start("router", ["--no-inference", "--no-prover"]);
    const routerUrl = await router.httpUrl();
    await Promise.all([validator.httpUrl(), worker.httpUrl()]);
    const workerKey = await keyOf("worker");
    await waitFor("the router to find the worker", async () => {
      const m = await router.metrics();
      return (m.get("veriflow_peer_workers") ?? 0) >= 1 ? true : undefined;
    });
    // Receipts are announced to the validators connected at the time: wait until all three
    // have met (each node sees the two others).
    for (const node of [router, worker, validator]) {
      await waitFor(`${node.name} to meet the two others`, async () => {
        const m = await node.metrics();
        return (m.get("veriflow_peers") ?? 0) >= 2 ? true : undefined;
      });
    }
    detail(`router ${routerUrl} sees the worker ${workerKey.slice(0, 16)}…`);

    say("A client streams a job through the router; it runs on the worker");
    const client = await StreamClient.connect(routerUrl);
    try {
      const job = client.infer({ prompt: "Once upon a time", max_tokens: 24, seed: 7 });
      let text = "";
      for await (const token of job.tokens) {
        text += token.text;
        if (!values.quiet) await Deno.stdout.write(new TextEncoder().encode(token.text));
      }
      const done = await job.done;
      console.log();
      const receipt = done.receipt as Record<string, unknown> & {
        worker: string;
        jobId: string;
        tokenCount: number;
        commitment: { root: string };
      };
      say("The receipt the client got, signed by the worker (checked by the router on the way)");
      detail(`job      ${receipt.jobId}`);
      detail(`worker   ${receipt.worker}`);
      detail(`tokens   ${receipt.tokenCount} (${[...text].length} characters)`);
      detail(`commits  Merkle root ${receipt.commitment.root} over every token's fingerprint`);
      if (receipt.worker !== workerKey) throw new Error("the receipt is not the worker's");

      say("The validator challenges it: proof data fetched from the worker, one forward pass");
      const verdict = await waitFor("the validator's verdict", () => {
        const line = validator.lines.find((l) => l.includes("→ valid"));
        return Promise.resolve(line);
      });
      detail(`verdict  ${verdict.replace(/^validator: /, "")}`);
      await waitFor("the router to record the verdict", async () => {
        const m = await router.metrics();
        return (m.get("veriflow_validator_peer_verdicts_total") ?? 0) >= 1 ? true : undefined;
      });
      detail("the router recorded the validator's signed verdict in its own ledger");

      say("A cheating worker joins: it serves the model's CID with other weights");
      const cheater = start("cheater", [], CHEATING_WORKER, [honest, substitute]);
      await cheater.httpUrl();
      const cheaterKey = await keyOf("cheater");
      await waitFor("the router to find the cheater", async () => {
        const m = await router.metrics();
        return (m.get("veriflow_peer_workers") ?? 0) >= 2 ? true : undefined;
      });
      // The router prefers a worker with a record (jobs it ran to their end here) and gives a
      // newcomer one pick in NEWCOMER_EVERY (`network/worker_choice.ts`): jobs are sent until one
      // lands on the new worker, at most two rounds of turns.
      let luredWorker: string | undefined;
      let sent = 0;
      while (luredWorker !== cheaterKey && sent < 2 * NEWCOMER_EVERY) {
        sent++;
        const lured = client.infer({ prompt: "A job for the network", max_tokens: 24, seed: sent });
        for await (const _ of lured.tokens) { /* read every token */ }
        luredWorker = ((await lured.done).receipt as { worker: string }).worker;
      }
      const cheated = luredWorker === cheaterKey ? 1 : 0;
      detail(`job ${sent} ran on the newcomer ${luredWorker!.slice(0, 16)}… (a new worker's turn)`);
      if (cheated === 0) throw new Error("no job reached the cheater");

      say("The validator proves the fraud; every ledger slashes the cheater");
      await waitFor("the router to slash the cheater", async () => {
        const m = await router.metrics();
        return (m.get("veriflow_validator_slashes_total") ?? 0) >= 1 ? true : undefined;
      });
      const row = await waitFor("the router's peer table to show the conviction", async () => {
        const keys = [...(await router.metrics()).keys()];
        return keys.find((k) =>
          k.startsWith("veriflow_peer_info{") && k.includes(cheaterKey) &&
          k.includes(`convicted="true"`)
        );
      });
      detail(`router's peer table: ${row}`);

      say("The router routes around the convicted cheater: the next job runs on the worker");
      const after = client.infer({ prompt: "And after that?", max_tokens: 12, seed: 3 });
      for await (const _ of after.tokens) { /* read every token */ }
      const afterReceipt = (await after.done).receipt as { worker: string };
      detail(`ran on ${afterReceipt.worker.slice(0, 16)}… (the honest worker)`);
      if (afterReceipt.worker !== workerKey) throw new Error("the job went to the cheater again");
    } finally {
      client.close();
    }

    await storageAcrossTheSwarm({ router, worker, validator, cheater: processes[3] }, keyOf);
    await trainingRound(root, processes, keyOf);

    say("Shutting down: each node stops its actors in reverse order");
    await Promise.all(processes.map((p) => p.stop()));
    await testnet.stop();
    started.testnet = undefined;
    say("Done.");
    return 0;
  } catch (error) {
    if (stoppedWith !== undefined) return stoppedWith; // its nodes were stopped under it
    console.error(`\ndemo failed: ${(error as Error).message}`);
    for (const p of processes) console.error(`--- ${p.name} ---\n${p.tail(20)}`);
    return 1;
  } finally {
    await cleanUp();
  }
}

/**
 * A file put through the router lands on three of the four nodes (rendezvous placement over
 * every node that stores); its first holder is killed; another node reads it back, and the
 * survivors restore the third copy.
 */
async function storageAcrossTheSwarm(
  nodes: Record<string, NodeProcess>,
  keyOf: (name: string) => Promise<string>,
): Promise<void> {
  say("Storage: a file put through the router is spread over the nodes that store");
  const all = Object.values(nodes);
  for (const node of all) {
    await waitFor(`${node.name} to meet the three others`, async () => {
      const m = await node.metrics();
      return (m.get("veriflow_peers") ?? 0) >= all.length - 1 ? true : undefined;
    });
  }
  const text = Array.from({ length: 40_000 }, (_, i) => `line ${i} of a file stored in Veriflow`)
    .join("\n");
  const bytes = new TextEncoder().encode(text);
  const routerUrl = await nodes.router.httpUrl();
  const put = await fetch(`${routerUrl}/v1/files?name=story.txt`, {
    method: "POST",
    body: bytes,
    headers: { "content-type": "text/plain" },
  });
  if (put.status !== 201) throw new Error(`put failed: ${put.status} ${await put.text()}`);
  const { cid, chunks } = await put.json() as { cid: string; chunks: number };
  detail(`put ${bytes.length} bytes → ${cid} (${chunks} chunks of 256 KiB, 3 copies each)`);
  const ids = await Promise.all(
    Object.entries(nodes).map(async ([name, node]) => ({ id: await keyOf(name), name, node })),
  );
  const [first, ...others] = rankPeers(cid, ids);
  detail(
    `holders of its manifest: ${[first, ...others].slice(0, 3).map((h) => h.name).join(", ")}`,
  );

  say(`Killing ${first.name}, the file's first holder, with SIGKILL`);
  first.node.kill("SIGKILL");
  await first.node.exited;
  const reader = others.find((o) => o.name !== "router") ?? others[0];
  const got = await fetch(`${await reader.node.httpUrl()}/v1/files/${cid}`);
  const back = new Uint8Array(await got.arrayBuffer());
  const same = got.status === 200 && back.length === bytes.length &&
    back.every((b, i) => b === bytes[i]);
  detail(
    `read back through ${reader.name}: ${back.length} bytes, ${same ? "identical" : "DIFFERENT"}`,
  );
  if (!same) throw new Error(`the file did not read back through ${reader.name}`);
  // Every survivor that held one of the departed holder's chunks runs a repair pass and logs it;
  // a pass may find that another survivor is the one to send the copy ("repaired 0"), so wait
  // for the pass that restored copies, and show every pass so far.
  const passes = await waitFor("the survivors to restore three copies", () => {
    const lines = others.flatMap((o) =>
      o.node.lines.filter((l) => l.includes("holder(s) left; repaired")).map((l) =>
        `[${o.name}] ${l}`
      )
    );
    return Promise.resolve(lines.some((l) => /repaired [1-9]/.test(l)) ? lines : undefined);
  });
  for (const line of passes) detail(line);
}

/**
 * One DiLoCo round over TCP on 127.0.0.1: a coordinator and three trainers (one lazy), a small
 * model (one block, width 32) and 12 local steps each, so it takes seconds.
 */
async function trainingRound(
  root: string,
  processes: NodeProcess[],
  keyOf: (name: string) => Promise<string>,
): Promise<void> {
  say("Training: three nodes train a model together; their data never leaves them");
  const config = join(root, "training.json");
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      // Opening a challenged step computes for seconds on a busy machine: patient peers.
      network: { keepaliveMs: 2_000, idleTimeoutMs: 30_000 },
      training: {
        arch: { numLayers: 1, hiddenSize: 32, numHeads: 2, contextLength: 64 },
        corpusDocs: 40,
      },
    }),
  );
  const common = ["--config", config, "--port", "0", "--heartbeat", "0"];
  const shown = /^training: (round|coordinating)|^trainer: round|^lazy trainer|training fraud/;
  const start = (name: string, args: string[], script?: string) => {
    const node = NodeProcess.start(name, [...common, "--data", join(root, name), ...args], script);
    processes.push(node);
    if (!values.quiet) echoLines(node, name, shown);
    return node;
  };
  const coordinator = start("coordinator", [
    ...["--coordinate-training", "--training-rounds", "1", "--training-steps", "12"],
    ...["--training-min-trainers", "3", "--training-challenge-probability", "1"],
    ...["--challenge-probability", "1", "--no-inference", "--p2p-port", "0"],
  ]);
  const peers = [`127.0.0.1:${await coordinator.p2pPort()}`];
  const trainer = (name: string, i: number, script?: string) => {
    const node = start(name, [
      ...["--train", "--train-shard", `${i}/3`, "--p2p-port", "0"],
      ...peers.flatMap((p) => ["--peer", p]),
      ...["--challenge-probability", "0", "--training-challenge-probability", "0"],
    ], script);
    return node;
  };
  const t0 = trainer("trainer-a", 0);
  peers.push(`127.0.0.1:${await t0.p2pPort()}`);
  const t1 = trainer("trainer-b", 1);
  peers.push(`127.0.0.1:${await t1.p2pPort()}`);
  trainer("lazy-trainer", 2, LAZY_TRAINER);
  const lazyKey = await keyOf("lazy-trainer");
  detail(`the third trainer, ${lazyKey.slice(0, 16)}…, is lazy: it sends a shuffled delta`);

  const done = await coordinator.waitForLine(
    /^training: round 0 done: model (\S+) .*held-out loss ([\d.]+) nats\/byte$/,
    STEP_TIMEOUT_MS * 2,
  );
  const before = Number(
    (await coordinator.waitForLine(/\(held-out loss ([\d.]+)\)$/))[1],
  );
  const [model, after] = [done[1], Number(done[2])];
  say("The round's model, from the two honest trainers' deltas");
  detail(`model    ${model}`);
  detail(`held-out ${before.toFixed(3)} → ${after.toFixed(3)} nats/byte`);
  if (!(after < before)) throw new Error("the round did not lower the held-out loss");
  if (!done[0].includes(`excluded ${lazyKey.slice(0, 16)}`)) {
    throw new Error("the lazy trainer's delta was not excluded");
  }
  for (const node of [coordinator, t0, t1]) {
    await waitFor(`${node.name} to slash the lazy trainer in its ledger`, () =>
      Promise.resolve(
        node.lines.find((l) =>
          l.startsWith(`validator: training fraud by trainer ${lazyKey.slice(0, 16)}`)
        ),
      ));
  }
  detail(
    "the coordinator's and both honest trainers' ledgers slashed the lazy trainer (the fraud " +
      "proof was gossiped, and each re-ran the step before it settled)",
  );

  say("The trained model is served: a job on it through the coordinator runs on a trainer");
  const url = await coordinator.httpUrl();
  const answer = await waitFor("a job on the round's model", async () => {
    const response = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, prompt: "The ", max_tokens: 40, seed: 5 }),
    });
    const body = await response.json();
    return response.status === 200 ? body as { choices: { text: string }[] } : undefined;
  });
  detail(
    `"The ${answer.choices[0].text}"  (one round of 12 steps: bytes that begin to look like text)`,
  );
}

const status = await main();
Deno.exit(stoppedWith ?? status);
