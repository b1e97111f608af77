/**
 * `network.routing`: an operator sets how a routing node forwards jobs (the remote port's
 * timeouts, the queue hold before a second worker, the delivery floor, token gathering) from
 * `veriflow.json` or `VERIFLOW_NETWORK_ROUTING_*`; bad values are refused naming the key; the
 * node hands the values to its routing port and says them in its start log.
 */
import assert from "node:assert/strict";
import {
  ConfigError,
  envLayer,
  forwardingOptionsOf,
  parseNodeConfig,
  resolveNodeConfig,
} from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import {
  DEFAULT_FIRST_TOKEN_TIMEOUT_MS,
  DEFAULT_GATHER_MS,
  DEFAULT_STALL_TIMEOUT_MS,
  DEFAULT_START_TIMEOUT_MS,
  DEFAULT_TOKEN_BUDGET_MS,
  DEFAULT_TOKENS_PER_EVENT,
} from "../../inference/remote_port.ts";
import { DEFAULT_QUEUE_HOLD_MS } from "../../network/failover.ts";

Deno.test("by default a routing node forwards with the ports' own defaults", () => {
  const { routing } = parseNodeConfig({}).network;
  assert.deepEqual(forwardingOptionsOf(routing), {
    startTimeoutMs: DEFAULT_START_TIMEOUT_MS,
    stallTimeoutMs: DEFAULT_STALL_TIMEOUT_MS,
    firstTokenTimeoutMs: DEFAULT_FIRST_TOKEN_TIMEOUT_MS,
    queueHoldMs: DEFAULT_QUEUE_HOLD_MS,
    tokenBudgetMs: DEFAULT_TOKEN_BUDGET_MS,
    tokensPerEvent: DEFAULT_TOKENS_PER_EVENT,
    gatherMs: DEFAULT_GATHER_MS,
  });
});

Deno.test("a configured routing reaches the port's options; 0 turns the queue hold and the delivery floor off", () => {
  const { routing } = parseNodeConfig({
    network: {
      routing: {
        startTimeoutMs: 5_000,
        stallTimeoutMs: 20_000,
        firstTokenTimeoutMs: 120_000,
        queueHoldMs: 0,
        tokenBudgetMs: 0,
        tokensPerEvent: 1,
        gatherMs: 0,
      },
    },
  }).network;
  assert.deepEqual(forwardingOptionsOf(routing), {
    startTimeoutMs: 5_000,
    stallTimeoutMs: 20_000,
    firstTokenTimeoutMs: 120_000,
    queueHoldMs: Infinity,
    tokenBudgetMs: Infinity,
    tokensPerEvent: 1,
    gatherMs: 0,
  });
});

Deno.test("routing values a port cannot honour are refused, naming the key", () => {
  const refused = (routing: Record<string, unknown>, key: string, reason: RegExp) =>
    assert.throws(() => parseNodeConfig({ network: { routing } }), (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(error.message, new RegExp(`network\\.routing\\.${key}: `));
      assert.match(error.message, reason);
      return true;
    });
  refused(
    { stallTimeoutMs: 60_000, firstTokenTimeoutMs: 30_000 },
    "firstTokenTimeoutMs",
    /at least stallTimeoutMs/,
  );
  refused({ tokensPerEvent: 17 }, "tokensPerEvent", /<=16/);
  refused({ gatherMs: 51 }, "gatherMs", /<=50/);
  refused({ startTimeoutMs: 0 }, "startTimeoutMs", />=100/);
  // A timer cannot wait longer than 2³¹ − 1 ms: longer would fire at once.
  refused({ queueHoldMs: 2 ** 31 }, "queueHoldMs", /<=2147483647/);
  refused({ tokenBudgetMs: 1.5 }, "tokenBudgetMs", /integer|int/i);
  refused({ holdMs: 1 }, "holdMs", /unknown key/);
});

Deno.test("routing is set from the environment too", () => {
  const layer = envLayer({
    VERIFLOW_NETWORK_ROUTING_QUEUE_HOLD_MS: "0",
    VERIFLOW_NETWORK_ROUTING_START_TIMEOUT_MS: "5000",
  });
  const { config, origins } = resolveNodeConfig([layer]);
  assert.equal(config.network.routing.queueHoldMs, 0);
  assert.equal(config.network.routing.startTimeoutMs, 5_000);
  assert.deepEqual(origins.get("network.routing.queueHoldMs"), {
    source: "env",
    by: "VERIFLOW_NETWORK_ROUTING_QUEUE_HOLD_MS",
  });
  assert.deepEqual(origins.get("network.routing.gatherMs"), { source: "default" });
});

Deno.test("a routing node says its routing timeouts at start, from its configuration", async () => {
  const dataDir = await Deno.makeTempDir();
  const lines: string[] = [];
  const node = await startNode(
    parseNodeConfig({
      dataDir,
      roles: { inference: false, prover: false, validator: false },
      http: { port: 0 },
      network: {
        listen: { port: 0 },
        routing: { startTimeoutMs: 1_500, stallTimeoutMs: 45_000, queueHoldMs: 0 },
      },
      heartbeatMs: 0,
    }),
    { log: (line) => void lines.push(line) },
  );
  try {
    const routing = lines.find((line) => line.trimStart().startsWith("routing"));
    assert.ok(routing !== undefined, lines.join("\n"));
    assert.match(routing, /start within 1\.5 s/);
    assert.match(routing, /each event within 45 s/);
    assert.match(routing, /first token within 10 min/);
    assert.match(routing, /no second worker asked/);
    assert.match(routing, /2 s a token after the first/);
  } finally {
    await node.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});
