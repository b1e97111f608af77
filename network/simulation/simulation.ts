/**
 * The N-node simulation (issue #12, "scale, simulated"): N nodes in one process, each the real
 * NetworkActor and ValidatorActor with its own ledger, joined by in-memory links along a sparse
 * random graph. No model runs anywhere: one worker answers with scripted tokens and a receipt it
 * really signs (`scripted_inference_port.ts`), and a designated challenger, holding no model,
 * signs an `inconclusive` verdict. Everything between them is the protocol as deployed: the
 * requester's `NetworkInferencePort` submits the job and signs its assignment, its validator
 * announces the receipt, and every validator gossips what is new to its ledger.
 *
 * Measured:
 *
 * - **messages per job**: every frame on every link from the submission until the verdict has
 *   reached every ledger and the last duplicate copy has been dropped (job, receipt flood,
 *   verdict flood);
 * - **time for a verdict to reach every node**: from the moment the challenger may conclude
 *   until the last ledger records the verdict. In one process this is message *processing*
 *   (decode, checks, a ledger write per node, re-encode for each peer) on this machine's cores,
 *   not network latency; the hops the flood needs are reported so a per-hop latency can be
 *   added (the flood takes the shortest paths when latency dominates);
 * - **repair traffic after 10 % of storage nodes leave** (`storage_repair.ts`);
 * - **memory per node**: resident set and JS heap after building and connecting the nodes,
 *   minus before, over N.
 *
 * Node keys come from the seed (as the topology and the roles do), so a run repeats its
 * placements and its repair figures; only timings and memory vary.
 *
 * Stake: a ledger records a receipt only if its worker has stake there, and a peer's verdict
 * only if its validator has. By default (`stake: "global"`) the worker's and the challengers'
 * pledges are put into every ledger before the job (after the memory figure is taken: it is of
 * empty ledgers): the steady state of a network whose pledges have spread. `stake: "direct"` runs
 * the protocol from the start, every node pledging to its own peers on connect and every ledger
 * passing new pledges on (gossip) — N pledge floods while the nodes connect, so it is slow at
 * 1,000 nodes. Each peer's pledge budget (64 at once, then one per 12 s) lets only part of them
 * through at once; the rest is queued and trickles on for many minutes after the job
 * (`pledge_sync.ts`, `MAX_QUEUED_PLEDGES`), so the job runs before every ledger knows every
 * stake: the receipt brings its worker's pledge to a ledger that refuses it for want of stake,
 * and the verdict goes after its author's (review s82 sim F1).
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorStats } from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { sha256 } from "../../protocols/hash.ts";
import type { TextJob } from "../../protocols/job.ts";
import { signStakePledge, type StakePledge } from "../../protocols/stake_pledge.ts";
import type { ServedModelInfo } from "../../inference/inference_port.ts";
import { NetworkInferencePort } from "../network_inference_port.ts";
import { randomIndex, sampleIndices, seededRandom } from "./_random.ts";
import { ArrivalLog, RECEIPT_KEY } from "./arrival_log.ts";
import { connectNodes, type SimNode, spawnSimNode } from "./sim_node.ts";
import { SCRIPTED_MODEL, ScriptedInferencePort } from "./scripted_inference_port.ts";
import { quiesce } from "./settle.ts";
import { simulateStorageRepair, type StorageRepairReport } from "./storage_repair.ts";
import { hopDistances, randomTopology } from "./topology.ts";
import { type Traffic, TrafficMeter } from "./traffic_meter.ts";

/** Options of {@link runSimulation}; every field has a default ({@link DEFAULT_SIMULATION}). */
export interface SimulationOptions {
  /** Nodes. */
  nodes: number;
  /** Mean peers per node. */
  degree: number;
  /** Seed of the topology, the roles and the chunk bytes. */
  seed: number;
  /** Validators that challenge the job (each floods one verdict). */
  challengers: number;
  /** Where stake is known: in every ledger, or only at direct peers (see the module doc). */
  stake: "global" | "direct";
  /** Tokens the job streams. */
  tokens: number;
  /** Share of the nodes that are storage nodes (0: skip the storage part). */
  storageFraction: number;
  /** Chunks stored before the departure. */
  chunks: number;
  /** Bytes per chunk. */
  chunkBytes: number;
  /** Copies per chunk. */
  replicas: number;
  /** Share of the storage nodes that leave. */
  leaveFraction: number;
  /** Parent directory for ledgers and chunk stores (default: a RAM disk when there is one). */
  dir?: string;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** The defaults: the figures at the seed network's size. */
export const DEFAULT_SIMULATION: Readonly<SimulationOptions> = Object.freeze({
  nodes: 1000,
  degree: 8,
  seed: 1,
  challengers: 1,
  stake: "global",
  tokens: 16,
  storageFraction: 0.2,
  chunks: 1000,
  // Small chunks keep 3 × chunks × size in RAM modest; the repair ratio does not depend on it.
  chunkBytes: 16 * 1024,
  replicas: 3,
  leaveFraction: 0.1,
});

/**
 * Stake every simulated node pledges: far above any slash a 16-token job locks (reward × the
 * slash multiplier), so no receipt is refused for stake it has.
 */
const SIMULATED_STAKE = 1_000_000;
/** Nodes spawned, and links opened, at once: bounds the handshakes in flight. */
const BATCH = 50;

/** How far a flood got and how long it took. */
export interface FloodReport {
  /** Nodes whose ledger has it. */
  reached: number;
  /** Time until the last of them had it, ms (from the flood's start; NaN if none). */
  allMs: number;
  /** Median over the nodes that have it, ms. */
  medianMs: number;
  /** 90th percentile, ms. */
  p90Ms: number;
  /** Hops from its origin to the farthest node (the floor with a per-hop latency). */
  hops: number;
}

/** Everything {@link runSimulation} measured. */
export interface SimulationReport {
  /** The options it ran with (without `log`). */
  options: Omit<SimulationOptions, "log">;
  /** The graph. */
  topology: { nodes: number; edges: number; meanDegree: number };
  /** Spawning and connecting, ms. */
  buildMs: number;
  /** Memory per node, bytes (after − before, over the nodes). */
  memory: { rssPerNode: number; heapPerNode: number; gc: boolean };
  /** The job. */
  job: {
    /** Every frame and byte from submission until the verdict settled everywhere. */
    total: Traffic;
    /** Submission, tokens, end and the receipt's flood (with its acknowledgements). */
    receiptPhase: Traffic;
    /** The verdicts' flood. */
    verdictPhase: Traffic;
    /** Frames the flood algorithm implies (see {@link expectedFrames}). */
    expected: { receiptFlood: number; verdictFlood: number; pledgesAhead: number };
    /** Receipt announcements validators received from peers, over all nodes. */
    receiptCopies: number;
    /** Verdict copies validators received from peers (recorded or refused), over all nodes. */
    verdictCopies: number;
    /** Receipts and verdicts ledgers refused, over all nodes. */
    refused: { receipts: number; verdicts: number };
    /** Submission to the requester's receipt, ms. */
    jobMs: number;
  };
  /** The receipt's spread (from the submission). */
  receipt: FloodReport;
  /**
   * The verdicts' spread, from the moment the challengers may conclude: a node counts once it has
   * every verdict; the hops are the most any verdict needs from its signer.
   */
  verdict: FloodReport;
  /** The storage part (absent when `storageFraction` is 0). */
  storage?: StorageRepairReport;
  /** Wall time of the whole run, ms. */
  totalMs: number;
}

/**
 * Frames a flood over `edges` links among `nodes` nodes costs when every node passes a new item
 * on to every peer but the one it came from: Σ (degree − 1) = 2·edges − nodes sends, plus the
 * origin's one extra (it has no sender to skip). A receipt announcement is a request, so it
 * costs its acknowledgement too; a verdict is a notification. The receipt has no extra send: its
 * origin, the requester, has it from the worker on the job's stream and skips the worker
 * (the requester's copy is among the validators' `receiptCopies`, one more than the links
 * carried). `pledgesAhead`: at most one stake pledge of the verdict's author ahead of each verdict
 * copy (`PledgeSync.sendAhead`: none to the author itself, none on a link that carried the
 * pledge in the last minute).
 */
export function expectedFrames(
  nodes: number,
  edges: number,
): { receiptFlood: number; verdictFlood: number; pledgesAhead: number } {
  const sends = 2 * edges - nodes;
  return { receiptFlood: 2 * sends, verdictFlood: sends + 1, pledgesAhead: sends + 1 };
}

/**
 * Node `index`'s secret key, from the seed: the keys decide where chunks are placed (and so the
 * repair figures), and with the seed they repeat from run to run.
 */
function simulatedSecretKey(seed: number, index: number): Uint8Array {
  return sha256(new TextEncoder().encode(`veriflow/simulation/key/${seed}/${index}`));
}

/** Run the simulation of the module doc. */
export async function runSimulation(
  overrides: Partial<SimulationOptions> = {},
): Promise<SimulationReport> {
  const options: SimulationOptions = { ...DEFAULT_SIMULATION, ...overrides };
  checkOptions(options);
  const { log = () => {} } = options;
  const started = performance.now();
  const n = options.nodes;
  const topology = randomTopology({ nodes: n, degree: options.degree, seed: options.seed });
  const random = seededRandom(options.seed ^ 0x5eed);
  const requester = randomIndex(random, n);
  const peersOfRequester = topology.neighbours[requester];
  const worker = peersOfRequester[randomIndex(random, peersOfRequester.length)];
  const others = Array.from({ length: n }, (_, i) => i).filter((i) =>
    i !== requester && i !== worker
  );
  const challengers = sampleIndices(random, others.length, options.challengers).map((i) =>
    others[i]
  );
  const isChallenger = new Set(challengers);
  const dir = await Deno.makeTempDir({ dir: options.dir ?? await ramDisk(), prefix: "vf-sim-" });
  const system = new ActorSystem({ name: "simulation" });
  const meter = new TrafficMeter();
  const arrivals = new ArrivalLog(n);
  const gate = Promise.withResolvers<void>();
  try {
    // ---- build -------------------------------------------------------------------------
    const identities = Array.from(
      { length: n },
      (_, i) => Identity.fromSecretKey(simulatedSecretKey(options.seed, i)),
    );
    const before = memory();
    const now = Date.now();
    const pledges = identities.map((id) => signStakePledge(id, SIMULATED_STAKE, now));
    const nodes: SimNode[] = [];
    for (let first = 0; first < n; first += BATCH) {
      const batch = [];
      for (let i = first; i < Math.min(n, first + BATCH); i++) {
        batch.push(spawnSimNode({
          system,
          index: i,
          identity: identities[i],
          ledgerDir: `${dir}/ledger-${i}`,
          arrivals,
          challenger: isChallenger.has(i),
          modelGate: gate.promise,
          inference: i === worker ? new ScriptedInferencePort(identities[i]) : undefined,
          pledge: options.stake === "direct" ? pledges[i] : undefined,
        }));
      }
      nodes.push(...await Promise.all(batch));
    }
    log(`spawned ${n} nodes (${ms(started)})`);
    for (let first = 0; first < topology.edges.length; first += BATCH) {
      await Promise.all(
        topology.edges.slice(first, first + BATCH).map(([a, b]) =>
          connectNodes(nodes[a], nodes[b], meter)
        ),
      );
    }
    // Every mailbox, answered in order: what a node queued before has been handled.
    const drain = () =>
      Promise.all(nodes.flatMap((node) => [
        node.validator.ask({ type: "stats" }),
        node.network.ask({ type: "listening" }),
      ]));
    await quiesce(meter, drain);
    const buildMs = performance.now() - started;
    log(`connected ${topology.edges.length} links (${ms(started)})`);
    const after = memory();
    if (options.stake === "global") {
      const known: StakePledge[] = [pledges[worker], ...challengers.map((c) => pledges[c])];
      for (let first = 0; first < n; first += BATCH) {
        await Promise.all(
          nodes.slice(first, first + BATCH).flatMap((node) =>
            known.map((pledge) => node.validator.ask({ type: "pledge", pledge }))
          ),
        );
      }
      log(`stake of the worker and ${challengers.length} challenger(s) in every ledger`);
    }

    // ---- the job and its receipt -------------------------------------------------------
    const origin = nodes[requester];
    // Built as a node builds its own (`system` given): its receipts reach its validator through
    // the node's inbox, and it writes the record of its workers its network actor routes by
    // (`worker_record.ts`). The simulated nodes share one actor system, so one record too: only
    // this requester routes jobs, so only it writes and reads it.
    const port = new NetworkInferencePort(origin.network, origin.validator, origin.identity, {
      system,
    });
    const listed = await port.models();
    if (!listed.some((m: ServedModelInfo) => m.cid === SCRIPTED_MODEL.cid)) {
      throw new Error("the requester does not see the worker's model");
    }
    const job: TextJob = {
      kind: "text",
      model: SCRIPTED_MODEL.cid,
      prompt: "a simulated job",
      params: {
        maxTokens: options.tokens,
        temperature: 0,
        topK: 0,
        topP: 1,
        seed: 0,
        stop: [],
      },
      nonce: `simulation-${options.seed}`,
    };
    const s0 = meter.snapshot();
    const jobStart = performance.now();
    const handle = await port.submit(job);
    await Array.fromAsync(handle.tokens);
    const summary = await handle.done;
    const jobMs = performance.now() - jobStart;
    if (summary.receipt === undefined) {
      throw new Error(`the job ended without a receipt: ${summary.error?.message ?? "?"}`);
    }
    const quiescent = (signal: AbortSignal) => quiesce(meter, drain, signal);
    await flood(arrivals, quiescent, () => arrivals.complete(RECEIPT_KEY));
    await quiesce(meter, drain);
    const s1 = meter.snapshot();
    log(`receipt in ${arrivals.count(RECEIPT_KEY)}/${n} ledgers (${ms(started)})`);

    // ---- the verdicts ----------------------------------------------------------------
    const verdictStart = performance.now();
    gate.resolve();
    const verdictKeys = () => arrivals.keys("verdict:");
    await flood(
      arrivals,
      quiescent,
      () =>
        verdictKeys().length === challengers.length &&
        verdictKeys().every((k) => arrivals.complete(k)),
    );
    await quiesce(meter, drain);
    const s2 = meter.snapshot();
    const least = Math.min(n, ...verdictKeys().map((k) => arrivals.count(k)));
    log(
      `${verdictKeys().length} verdict(s), the least spread in ${
        verdictKeys().length === 0 ? 0 : least
      }/${n} ledgers (${ms(started)})`,
    );

    const stats = await Promise.all(
      nodes.map((node) => node.validator.ask<ValidatorStats>({ type: "stats" })),
    );
    const sum = (f: (s: ValidatorStats) => number) => stats.reduce((a, s) => a + f(s), 0);
    const receiptHops = Math.max(...hopDistances(topology, requester));
    // Every verdict's spread at once: a node has them when it has the last of them (NaN while
    // it lacks one), and the hops are those of the verdict whose signer is farthest from a node.
    const keys = verdictKeys();
    const allVerdicts = new Float64Array(keys.length === 0 ? 0 : n).fill(-Infinity);
    for (const k of keys) {
      arrivals.times(k).forEach((t, i) => allVerdicts[i] = Math.max(allVerdicts[i], t));
    }
    const verdictHops = Math.max(
      0,
      ...keys.map((k) => Math.max(...hopDistances(topology, arrivals.first(k)!))),
    );
    const verdict = spread(allVerdicts, verdictStart, verdictHops);

    // ---- storage -----------------------------------------------------------------------
    let storage: StorageRepairReport | undefined;
    const storageCount = Math.round(n * options.storageFraction);
    if (storageCount > 0) {
      storage = await simulateStorageRepair({
        nodes: sampleIndices(random, n, storageCount).map((i) => identities[i]),
        chunks: options.chunks,
        chunkBytes: options.chunkBytes,
        replicas: options.replicas,
        leaveFraction: options.leaveFraction,
        seed: options.seed,
        dir,
      });
      log(`storage repair measured (${ms(started)})`);
    }

    const { log: _log, ...plain } = options;
    return {
      options: plain,
      topology: {
        nodes: n,
        edges: topology.edges.length,
        meanDegree: (2 * topology.edges.length) / n,
      },
      buildMs,
      memory: {
        rssPerNode: (after.rss - before.rss) / n,
        heapPerNode: (after.heapUsed - before.heapUsed) / n,
        gc: after.gc,
      },
      job: {
        total: TrafficMeter.between(s0, s2),
        receiptPhase: TrafficMeter.between(s0, s1),
        verdictPhase: TrafficMeter.between(s1, s2),
        expected: expectedFrames(n, topology.edges.length),
        receiptCopies: sum((s) => s.fromPeers),
        verdictCopies: sum((s) => s.peerVerdicts + s.refusedVerdicts),
        refused: { receipts: sum((s) => s.refused), verdicts: sum((s) => s.refusedVerdicts) },
        jobMs,
      },
      receipt: spread(arrivals.times(RECEIPT_KEY), jobStart, receiptHops),
      verdict,
      storage,
      totalMs: performance.now() - started,
    };
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Throws a `RangeError` naming the first option out of range. */
export function checkOptions(options: SimulationOptions): void {
  const integer = (name: keyof SimulationOptions, least: number, most = Infinity) => {
    const v = options[name] as number;
    if (!Number.isInteger(v) || v < least || v > most) {
      throw new RangeError(`${name} must be an integer in [${least}, ${most}], got ${v}`);
    }
  };
  const share = (name: keyof SimulationOptions) => {
    const v = options[name] as number;
    if (!(v >= 0 && v <= 1)) throw new RangeError(`${name} must be in [0, 1], got ${v}`);
  };
  integer("nodes", 3);
  integer("degree", 2, options.nodes - 1);
  integer("seed", 0, 2 ** 32 - 1);
  // Requester and worker never challenge: the rest may.
  integer("challengers", 1, options.nodes - 2);
  integer("tokens", 1, 4096);
  share("storageFraction");
  integer("chunks", 1);
  integer("chunkBytes", 1, 512 * 1024);
  integer("replicas", 1);
  share("leaveFraction");
}

/**
 * Wait until `done` holds (checked at every arrival), or until the network is quiescent without
 * it: a flood that stopped short (ledgers refused it) ends there.
 */
async function flood(
  arrivals: ArrivalLog,
  quiescent: (signal: AbortSignal) => Promise<void>,
  done: () => boolean,
): Promise<void> {
  const stop = new AbortController();
  try {
    await Promise.race([arrivals.until(done), quiescent(stop.signal)]);
  } finally {
    stop.abort();
  }
}

function spread(times: Float64Array, from: number, hops: number): FloodReport {
  const arrived = [...times].filter((t) => !Number.isNaN(t)).map((t) => t - from).sort((a, b) =>
    a - b
  );
  const at = (q: number) => arrived[Math.min(arrived.length - 1, Math.floor(q * arrived.length))];
  return {
    reached: arrived.length,
    allMs: arrived.length > 0 ? arrived[arrived.length - 1] : NaN,
    medianMs: arrived.length > 0 ? at(0.5) : NaN,
    p90Ms: arrived.length > 0 ? at(0.9) : NaN,
    hops,
  };
}

/** Resident set and heap now, after a collection when the runtime exposes one. */
function memory(): { rss: number; heapUsed: number; gc: boolean } {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const { rss, heapUsed } = Deno.memoryUsage();
  return { rss, heapUsed, gc: gc !== undefined };
}

/** `/dev/shm` when it is a writable directory: ledgers `fsync` every entry, a RAM disk makes that free. */
async function ramDisk(): Promise<string | undefined> {
  try {
    const info = await Deno.stat("/dev/shm");
    return info.isDirectory ? "/dev/shm" : undefined;
  } catch {
    return undefined;
  }
}

function ms(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}
