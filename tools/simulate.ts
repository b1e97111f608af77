/**
 * The N-node simulation (`deno task simulate`): N Veriflow nodes in one process over in-memory
 * links, no model anywhere, and the figures of issue #12 — messages per job, time for a verdict
 * to reach every node, repair traffic after 10 % of storage nodes leave, memory per node. See
 * `network/simulation/simulation.ts` for what each figure measures.
 *
 * ```
 * deno run -A --v8-flags=--expose-gc tools/simulate.ts [--nodes 1000] [--degree 8] [--seed 1]
 *   [--challengers 1] [--stake global|direct] [--tokens 16] [--storage-fraction 0.2]
 *   [--chunks 1000] [--chunk-kib 16] [--replicas 3] [--leave-fraction 0.1] [--dir DIR] [--json]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { DEFAULT_SIMULATION, runSimulation } from "../network/simulation/simulation.ts";
import { formatReport } from "../network/simulation/report.ts";

const USAGE = `usage: deno run -A --v8-flags=--expose-gc tools/simulate.ts [options]
  --nodes N              nodes (default ${DEFAULT_SIMULATION.nodes})
  --degree D             mean peers per node (default ${DEFAULT_SIMULATION.degree})
  --seed S               seed of the topology, roles and data (default ${DEFAULT_SIMULATION.seed})
  --challengers K        validators that challenge the job, one verdict each (default ${DEFAULT_SIMULATION.challengers})
  --stake global|direct  stake in every ledger, or pledged to direct peers only (default ${DEFAULT_SIMULATION.stake})
  --tokens T             tokens the job streams (default ${DEFAULT_SIMULATION.tokens})
  --storage-fraction F   share of nodes that store chunks; 0 skips storage (default ${DEFAULT_SIMULATION.storageFraction})
  --chunks C             chunks stored (default ${DEFAULT_SIMULATION.chunks})
  --chunk-kib K          chunk size in KiB (default ${DEFAULT_SIMULATION.chunkBytes / 1024})
  --replicas R           copies per chunk (default ${DEFAULT_SIMULATION.replicas})
  --leave-fraction F     share of storage nodes that leave (default ${DEFAULT_SIMULATION.leaveFraction})
  --dir DIR              where ledgers and chunk stores go (default /dev/shm when present)
  --json                 print the report as JSON`;

/** Parse `args`, run, print; the exit code. */
export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        nodes: { type: "string" },
        degree: { type: "string" },
        seed: { type: "string" },
        challengers: { type: "string" },
        stake: { type: "string" },
        tokens: { type: "string" },
        "storage-fraction": { type: "string" },
        chunks: { type: "string" },
        "chunk-kib": { type: "string" },
        replicas: { type: "string" },
        "leave-fraction": { type: "string" },
        dir: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean" },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const number = (name: keyof typeof values, fallback: number): number => {
    const text = values[name];
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`--${name}: not a number ≥ 0`);
    return value;
  };
  const stake = values.stake ?? DEFAULT_SIMULATION.stake;
  if (stake !== "global" && stake !== "direct") {
    console.error(`--stake: global or direct\n${USAGE}`);
    return 2;
  }
  const json = values.json === true;
  let report;
  try {
    report = await runSimulation({
      nodes: number("nodes", DEFAULT_SIMULATION.nodes),
      degree: number("degree", DEFAULT_SIMULATION.degree),
      seed: number("seed", DEFAULT_SIMULATION.seed),
      challengers: number("challengers", DEFAULT_SIMULATION.challengers),
      stake,
      tokens: number("tokens", DEFAULT_SIMULATION.tokens),
      storageFraction: number("storage-fraction", DEFAULT_SIMULATION.storageFraction),
      chunks: number("chunks", DEFAULT_SIMULATION.chunks),
      chunkBytes: number("chunk-kib", DEFAULT_SIMULATION.chunkBytes / 1024) * 1024,
      replicas: number("replicas", DEFAULT_SIMULATION.replicas),
      leaveFraction: number("leave-fraction", DEFAULT_SIMULATION.leaveFraction),
      dir: values.dir,
      log: json ? undefined : (line) => console.error(`  … ${line}`),
    });
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    console.error(`${error.message}\n${USAGE}`);
    return 2;
  }
  console.log(json ? JSON.stringify(report, null, 2) : formatReport(report));
  return 0;
}

// Exits when done: timers other modules leave behind (request timeouts of closed peers) would
// otherwise keep the process up for seconds after the report.
if (import.meta.main) Deno.exit(await main(Deno.args));
