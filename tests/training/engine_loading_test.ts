/**
 * The tensor engine of training (tfjs: megabytes of JavaScript evaluated by every process and
 * worker that loads it) is loaded by the code that trains, on first use: a node, a validator,
 * the wire protocols and the peer services import `training/training_engine.ts`, not
 * `training/local_trainer.ts` or `training/tf_backend.ts`. Judged on Deno's module graph: no
 * chain of static imports leads from them to `tf_backend.ts` (dynamic imports are the lazy
 * loads and are allowed).
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);
const ENGINE = new URL("training/tf_backend.ts", ROOT).href;

interface ModuleInfo {
  specifier: string;
  dependencies?: { code?: { specifier?: string }; isDynamic?: boolean }[];
}

/** The chain of static imports from `root` to `target`, or undefined when there is none. */
async function staticChain(root: string, target: string): Promise<string[] | undefined> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL(root, ROOT).pathname],
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const graph = JSON.parse(new TextDecoder().decode(stdout)) as { modules: ModuleInfo[] };
  const edges = new Map<string, string[]>();
  for (const m of graph.modules) {
    edges.set(
      m.specifier,
      (m.dependencies ?? []).filter((d) => !d.isDynamic && d.code?.specifier)
        .map((d) => d.code!.specifier!),
    );
  }
  const start = new URL(root, ROOT).href;
  assert.ok(edges.has(start), `${root} is in its own graph`);
  const from = new Map<string, string | null>([[start, null]]);
  const queue = [start];
  while (queue.length > 0) {
    const at = queue.shift()!;
    if (at === target) {
      const chain: string[] = [];
      for (let s: string | null = at; s !== null; s = from.get(s)!) {
        chain.unshift(s.replace(ROOT.href, ""));
      }
      return chain;
    }
    for (const next of edges.get(at) ?? []) {
      if (!from.has(next)) {
        from.set(next, at);
        queue.push(next);
      }
    }
  }
  return undefined;
}

for (
  const root of [
    "node/node.ts",
    "actors/validator_actor.ts",
    "network/peer_services.ts",
    "protocols/training_messages.ts",
    "training/step_verify.ts",
    "cli.ts",
  ]
) {
  Deno.test(`${root} does not load tfjs at import (training loads it on first use)`, async () => {
    const chain = await staticChain(root, ENGINE);
    assert.equal(chain, undefined, `static imports reach the engine: ${chain?.join(" → ")}`);
  });
}

Deno.test("the check can fail: training/local_trainer.ts reaches tfjs by static imports", async () => {
  const chain = await staticChain("training/local_trainer.ts", ENGINE);
  assert.deepEqual(chain, ["training/local_trainer.ts", "training/tf_backend.ts"]);
});
