/**
 * A node's job and receipt counts are totals since its process started, whatever its actors do
 * (review s71, finding 2): the inference and validator actors are crashed by a message they
 * cannot take (as on any bug in a handler) and restarted by their supervisor, and `/metrics`,
 * `/dashboard/state` (what the page draws) and `cli.ts status`'s lines still count every job and
 * receipt, including those made between two scrapes with a restart among them. Before the fix
 * the counts lived in each actor instance: the page and `status` fell back to 0, and `/metrics`
 * lost the work no scrape saw before a restart. Gauges (jobs running now) are the new actor's.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode, type VeriflowNode } from "../../node/node.ts";
import { NODE_ACTORS } from "../../node/_actor_names.ts";
import { describe } from "../../cli/status_command.ts";
import type { ValidatorMessage, ValidatorStats } from "../../actors/validator_messages.ts";
import { eventually } from "../_helpers/wait.ts";

/** A counter's value in a `/metrics` text. */
function metric(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  assert.ok(line !== undefined, `${series} in /metrics`);
  return Number(line.slice(series.length + 1));
}

/** What the three views say about jobs and receipts. */
interface Counts {
  metrics: { jobs: number; tokens: number; receipts: number; own: number };
  state: { jobs: number; tokens: number; received: number; own: number; active: number };
  status: { jobs: string; ledger: string };
}

async function counts(node: VeriflowNode): Promise<Counts> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  // deno-lint-ignore no-explicit-any
  const s: any = await (await fetch(`${node.url}/dashboard/state`)).json();
  const lines = describe(s);
  return {
    metrics: {
      jobs: metric(text, "veriflow_inference_jobs_finished_total"),
      tokens: metric(text, "veriflow_inference_tokens_generated_total"),
      receipts: metric(text, "veriflow_validator_receipts_total"),
      own: metric(text, "veriflow_validator_own_receipts_total"),
    },
    state: {
      jobs: s.jobs.stats.jobsFinished,
      tokens: s.jobs.stats.tokensGenerated,
      received: s.validator.stats.received,
      own: s.validator.stats.own,
      active: s.jobs.stats.activeJobs,
    },
    status: {
      jobs: lines.find((l) => l.startsWith("jobs "))!,
      ledger: lines.find((l) => l.startsWith("ledger "))!,
    },
  };
}

/** Crash each of `names` and wait until its supervisor has restarted it. */
async function crash(node: VeriflowNode, names: string[]): Promise<void> {
  const waiting = new Set(names);
  const restarted = Promise.withResolvers<void>();
  const unsubscribe = node.system.events.subscribe((event) => {
    if (event.type === "restarted" && waiting.delete(event.name) && waiting.size === 0) {
      restarted.resolve();
    }
  });
  try {
    for (const name of names) node.system.lookup<unknown>(name)!.tell(null as never);
    await restarted.promise;
  } finally {
    unsubscribe();
  }
}

Deno.test({
  name:
    "job and receipt counts survive an actor's restart on /metrics, /dashboard/state and status, also when no scrape saw the work before it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const node = await startNode(parseNodeConfig({
      dataDir: dir,
      http: { port: 0 },
      heartbeatMs: 0,
      model: { workers: 0, size: "tiny" },
      network: { listening: false },
      roles: { storage: false },
    }));
    const models = await (await fetch(`${node.url}/v1/models`)).json();
    const model = models.data[0].id;
    let tokens = 0;
    let sent = 0;
    const jobs = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const r = await fetch(`${node.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model, prompt: `job ${sent++}`, max_tokens: 4 }),
        });
        assert.equal(r.status, 200);
        tokens += (await r.json()).usage.completion_tokens;
      }
    };
    /**
     * The views once the validator has every receipt of the `sent` jobs (they reach it from the
     * prover after the job's end), asked directly: polling the views would spend their per-client
     * allowances.
     */
    const settled = async () => {
      await eventually(async () => {
        const validator = node.system.lookup<ValidatorMessage>(NODE_ACTORS.validator);
        const stats = await validator?.ask<ValidatorStats>({ type: "stats" });
        return stats?.received === sent;
      }, `${sent} receipts in the validator`);
      return await counts(node);
    };
    const expect = (c: Counts) => {
      assert.deepEqual(c.metrics, { jobs: sent, tokens, receipts: sent, own: sent });
      assert.deepEqual(c.state, { jobs: sent, tokens, received: sent, own: sent, active: 0 });
      assert.match(c.status.jobs, new RegExp(` ${sent} done, 0 failed, ${tokens} tokens$`));
      assert.match(c.status.ledger, new RegExp(`this run: receipts ${sent},`));
    };
    try {
      await jobs(3);
      expect(await settled());

      await crash(node, [NODE_ACTORS.inference, NODE_ACTORS.validator]);
      // Failed before the fix: the page and `status` said 0 done, 0 receipts.
      expect(await counts(node));

      // 2 jobs, a restart no scrape sees, 4 jobs, then a scrape.
      await jobs(2);
      await crash(node, [NODE_ACTORS.inference]);
      await jobs(4);
      // Failed before the fix: /metrics said 7 jobs (the 2 before the unseen restart were lost),
      // the page and `status` 4.
      expect(await settled());
    } finally {
      await node.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
