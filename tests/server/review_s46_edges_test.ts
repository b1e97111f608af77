/**
 * Review at stop 46 of the operator's and the API's edges: who counts as this machine's own
 * client, which API keys a node may be configured with, and how numbers are read from flags.
 */
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import type { InferencePort, InferenceStats } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import type { DashboardSources } from "../../server/dashboard_routes.ts";
import { edgeConfig } from "../../server/edge_config.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { ApiKeysFileError } from "../../server/api_keys.ts";
import { describeAccess } from "../../server/client_access.ts";
import { resolveStartConfig } from "../../node/start_command.ts";
import { ConfigError } from "../../node/config.ts";
import { notWholeNumber, parseWholeNumber } from "../../node/number_flags.ts";

const SOURCES: DashboardSources = {
  node: { key: "00".repeat(32), version: "test" },
  tree: () => ({}),
  onLifecycle: () => () => {},
  peers: () => Promise.resolve([]),
  validator: () => Promise.resolve(undefined),
  storage: () => Promise.resolve(undefined),
};
const PORT: InferencePort = {
  submit: () => Promise.reject(new Error("no jobs")),
  models: () => Promise.resolve([{ cid: "bafkmodel", name: "m", kind: "text" }] as never),
  stats: () => Promise.resolve({} as InferenceStats),
};

Deno.test("a loopback request a reverse proxy relays (Forwarded, X-Forwarded-For, X-Real-IP) is not this machine's client: without keys /v1 and the dashboard's state refuse it", async () => {
  const jobs = new JobMonitor();
  const app = createApp({
    inference: jobs.wrap(PORT),
    edge: edgeConfig({}),
    dashboard: { sources: SOURCES, jobs, operatorToken: "op-token-0123456789abcdef" },
  });
  const loopback = { transport: "tcp", hostname: "127.0.0.1", port: 40000 } as const;
  const get = (path: string, headers: Record<string, string>) =>
    app.fetch(new Request(`http://127.0.0.1${path}`, { headers }), { remoteAddr: loopback });
  // A proxy on this machine reached by its public address keeps that address as `Host` (Caddy,
  // nginx's `proxy_set_header Host $host`), or sends the upstream's (nginx's default
  // `$proxy_host`): either names the node by an address, as this machine's own clients do.
  const relayed: Record<string, string>[] = [
    { host: "203.0.113.5", "x-forwarded-for": "198.51.100.7" },
    { host: "127.0.0.1:8080", "x-real-ip": "198.51.100.7" },
    { host: "[2001:db8::5]", forwarded: "for=198.51.100.7;proto=https" },
  ];
  for (const headers of relayed) {
    for (const path of ["/v1/models", "/dashboard/state"]) {
      const response = await get(path, headers);
      const { error } = await response.json();
      assertEquals([response.status, error?.code], [
        path === "/v1/models" ? 403 : 401,
        "api_key_required",
      ], `${path} ${JSON.stringify(headers)}`);
    }
  }
  // This machine's own client, which relays nobody, is still served without a key.
  for (const path of ["/v1/models", "/dashboard/state"]) {
    const own = await get(path, { host: "127.0.0.1:8080" });
    assertEquals(own.status, 200, path);
    await own.body?.cancel();
  }
});

Deno.test("an API key no client can send (a blank inside, a character outside visible ASCII) is refused at start naming the option, from a flag and from the keys file alike", async () => {
  for (
    const key of [
      "correct horse battery staple",
      "clé-secrète-0123456789",
      "tab\tseparated-key-0123",
    ]
  ) {
    const error = await assertRejects(
      () => resolveStartConfig(["--api-key", key]),
      ConfigError,
    );
    assert(error.message.includes("http.apiKeys"), error.message);
    // The message must not echo the secret itself.
    assert(!error.message.includes(key), error.message);
  }
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/keys`;
    await Deno.writeTextFile(file, "# keys\nclé-secrète-0123456789\n");
    const error = await assertRejects(
      () => Promise.resolve().then(() => describeAccess({ ...edgeConfig({ apiKeysFile: file }) })),
      ApiKeysFileError,
    );
    assert(error.message.includes("line 2"), error.message);
    assert(!error.message.includes("clé"), error.message);
    // A well-formed key (visible ASCII, one word) is still accepted both ways.
    await Deno.writeTextFile(file, "# keys\nsk-0123456789abcdef_~+/=.\n");
    assert(describeAccess({ ...edgeConfig({ apiKeysFile: file }) }).includes("1 API key"));
    const { config } = await resolveStartConfig(["--api-key", "sk-0123456789abcdef_~+/=."]);
    assertEquals(config.http.apiKeys, ["sk-0123456789abcdef_~+/=."]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a whole number past 2^53 is refused as too large, not read as a neighbouring number nobody wrote", () => {
  // 2^53 + 1 has no double of its own: Number() reads it as 2^53.
  assertEquals(parseWholeNumber("9007199254740993"), undefined);
  assertEquals(parseWholeNumber("99999999999999999999"), undefined);
  assertEquals(parseWholeNumber("9007199254740991"), Number.MAX_SAFE_INTEGER);
  const message = notWholeNumber("--quota", "99999999999999999999");
  assert(message.includes("too large"), message);
});
