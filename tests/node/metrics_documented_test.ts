/**
 * docs/API.md's `/metrics` tables against what a node serves and what the code can emit (review
 * s74 F5: `veriflow_process_rss_bytes`, the three `veriflow_prover_*`, the validator's gauge and
 * counters were served and listed in no doc). Two rules, so the tables cannot drift again:
 *
 * - every family a running node serves is a row of the tables;
 * - every family the tables list is one the code emits (a `"veriflow_…"` name in a source file:
 *   a node serves some only with peers, models, a forwarding role).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { parsePrometheusText } from "../server/_prometheus_text.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * The families the `GET /metrics` section's tables list: each row's first cell, its names in
 * backticks, labels dropped; a name written `_stake` after `veriflow_ledger_balance` is the
 * shorthand for `veriflow_ledger_stake` (the full name's first two words, then the suffix).
 */
export function documentedFamilies(markdown: string): Set<string> {
  const start = markdown.indexOf("## `GET /metrics`");
  assert.ok(start >= 0, "docs/API.md has a GET /metrics section");
  const end = markdown.indexOf("\n## ", start + 1);
  const section = markdown.slice(start, end < 0 ? undefined : end);
  const families = new Set<string>();
  for (const row of section.split("\n").filter((l) => l.startsWith("| `"))) {
    const cell = row.split("|")[1];
    let stem: string | undefined;
    for (const [, name] of cell.matchAll(/`((?:veriflow)?_[a-z0-9_]+)(?:\{[^}]*\})?`/g)) {
      if (name.startsWith("veriflow_")) {
        stem = name.split("_").slice(0, 2).join("_");
        families.add(name);
      } else if (stem !== undefined) {
        families.add(stem + name);
      }
    }
  }
  return families;
}

/** Every `"veriflow_…"` name in the project's source files (not tests, benches or scratch). */
async function emittedNames(): Promise<Set<string>> {
  const names = new Set<string>();
  const skip = new Set(["node_modules", "tests", "tmp", "bench", ".git"]);
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory && !skip.has(entry.name)) await walk(path);
      else if (entry.isFile && entry.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(path);
        for (const [, name] of text.matchAll(/"(veriflow_[a-z0-9_]+)"/g)) names.add(name);
      }
    }
  };
  await walk(ROOT);
  return names;
}

Deno.test("the shorthand of the metric tables reads as the docs mean it", () => {
  const table = [
    "## `GET /metrics`",
    "| `veriflow_ledger_balance`, `_stake`, `_stake_locked` | gauge |",
    "| `veriflow_http_refused_total{code}` | counter |",
    "## next",
    "| `veriflow_not_here` | gauge |",
  ].join("\n");
  assert.deepEqual(
    [...documentedFamilies(table)].sort(),
    [
      "veriflow_http_refused_total",
      "veriflow_ledger_balance",
      "veriflow_ledger_stake",
      "veriflow_ledger_stake_locked",
    ],
  );
});

Deno.test({
  name:
    "every family a node serves is in docs/API.md's /metrics tables, and every family listed there is one the code emits",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const documented = documentedFamilies(await Deno.readTextFile(join(ROOT, "docs/API.md")));
    const dir = await Deno.makeTempDir();
    // A worker with storage, a validator, a prover and a configured peer that is not there (its
    // `veriflow_static_peer_up` series): as many families as one node serves.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const deadPeer = `127.0.0.1:${(probe.addr as Deno.NetAddr).port}`;
    probe.close();
    const node = await startNode(parseNodeConfig({
      dataDir: dir,
      http: { port: 0 },
      heartbeatMs: 0,
      model: { workers: 0 },
      network: { listening: false, peers: [deadPeer] },
    }));
    try {
      const text = await (await fetch(`${node.url}/metrics`)).text();
      parsePrometheusText(text); // a valid exposition first
      // Its families: one `# TYPE` line each (a histogram's `_bucket`, `_sum`, `_count` in one).
      const served = text.split("\n").filter((l) => l.startsWith("# TYPE "))
        .map((l) => l.split(" ")[2]);
      const undocumented = served.filter((name) => !documented.has(name));
      assert.deepEqual(undocumented.sort(), [], "served, in no row of docs/API.md's tables");
      const emitted = await emittedNames();
      const unknown = [...documented].filter((name) => !emitted.has(name));
      assert.deepEqual(unknown.sort(), [], "listed in docs/API.md, emitted by no code");
    } finally {
      await node.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
