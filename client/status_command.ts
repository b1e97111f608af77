/**
 * `cli.ts status`: ask a running node what it is doing — its peers, jobs, ledger and storage —
 * from the dashboard's state (`GET /dashboard/state`), as a few readable lines or as JSON.
 *
 * @module
 */
import { parseArgs } from "node:util";

const HELP = `Usage: cli.ts status [--url URL] [--api-key KEY] [--json]

Ask a running node for its peers, jobs, ledger and storage.

  --url URL       the node's HTTP API (default http://127.0.0.1:8080)
  --api-key KEY   an API key or the operator token, for a node on another machine
                  (default: $VERIFLOW_API_KEY)
  --json          print the node's whole state as JSON
  -h, --help      this text

Examples:
  deno run -A cli.ts status
  deno run -A cli.ts status --url http://127.0.0.1:8090 --json | jq .peers

Exit codes: 0 the node answered · 1 no node answered, or it refused (the line says what to
do) · 2 bad flags.`;

/** What {@link runStatus} needs from the process; tests substitute their own. */
export interface StatusIo {
  /** Writes a line to stdout. */
  out(line: string): void;
  /** Writes a line to stderr. */
  err(line: string): void;
  /** Reads an environment variable. */
  env?(name: string): string | undefined;
}

const PROCESS_IO: StatusIo = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  env: (name) => Deno.env.get(name),
};

// deno-lint-ignore no-explicit-any
type State = any;

/**
 * Run `status`; resolves with the exit code.
 *
 * @param args The flags after `status`.
 * @param io Output and environment.
 */
export async function runStatus(args: string[], io: StatusIo = PROCESS_IO): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        url: { type: "string", default: "http://127.0.0.1:8080" },
        "api-key": { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    io.err(`error: ${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const base = values.url.replace(/\/+$/, "").replace(/^ws/, "http");
  const key = values["api-key"] ?? io.env?.("VERIFLOW_API_KEY");
  let response: Response;
  try {
    response = await fetch(`${base}/dashboard/state`, {
      headers: key ? { authorization: `Bearer ${key}` } : {},
    });
  } catch (error) {
    io.err(
      `error: no node answered at ${base} (${(error as Error).message}); start one with ` +
        `\`deno task start\`, or give its address with --url`,
    );
    return 1;
  }
  if (!response.ok) {
    const body = await response.text();
    io.err(
      `error: ${base} answered ${response.status}: ${body.slice(0, 300)}` +
        (response.status === 401 ? "\n(pass --api-key KEY or set VERIFLOW_API_KEY)" : "") +
        (response.status === 404
          ? "\n(its dashboard is off: start it without --no-dashboard)"
          : ""),
    );
    return 1;
  }
  const state: State = await response.json();
  if (values.json) {
    io.out(JSON.stringify(state, null, 2));
    return 0;
  }
  for (const line of describe(state)) io.out(line);
  return 0;
}

/** The state as a few lines a person reads at a glance. */
export function describe(s: State): string[] {
  const lines = [`node ${s.node.key} (v${s.node.version})`];
  const countTree = (n: State): { actors: number; restarts: number; down: number } => {
    const below = (n.children ?? []).map(countTree);
    return below.reduce(
      (a: State, b: State) => ({
        actors: a.actors + b.actors,
        restarts: a.restarts + b.restarts,
        down: a.down + b.down,
      }),
      { actors: 1, restarts: n.restarts ?? 0, down: n.status === "running" ? 0 : 1 },
    );
  };
  const t = countTree(s.tree);
  lines.push(`actors   ${t.actors} (${t.down} not running, ${t.restarts} restarts)`);
  const peers: State[] = s.peers ?? [];
  lines.push(
    `peers    ${peers.length}` +
      (peers.length
        ? ": " +
          peers.map((p) =>
            `${p.key.slice(0, 12)} ${p.roles.join("+") || "?"}${p.convicted ? " CONVICTED" : ""}`
          ).join(", ")
        : ""),
  );
  const j = s.jobs?.stats;
  if (j) {
    lines.push(
      `jobs     ${j.activeJobs} running, ${j.queuedJobs} queued, ${j.jobsFinished} done, ` +
        `${j.jobsFailed} failed, ${j.tokensGenerated} tokens`,
    );
  }
  if (s.validator) {
    const v = s.validator.stats;
    const a = s.validator.account;
    lines.push(
      `ledger   credit ${a.balance}, stake ${a.stake} (locked ${a.locked}); receipts ` +
        `${v.received}, challenged ${v.challenged}, fraud ${v.verdicts.fraud}, slashes ${v.slashes}`,
    );
  } else lines.push("ledger   none (--no-validator)");
  if (s.storage) {
    const c = s.storage.capacity;
    lines.push(
      `storage  ${c.usedBytes} bytes${c.quotaBytes ? ` of ${c.quotaBytes}` : ""}, ` +
        `${s.storage.files} files, ${s.storage.storagePeers} storage peers`,
    );
  } else lines.push("storage  none (--no-storage)");
  return lines;
}
