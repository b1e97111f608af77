/**
 * Review s46 of three small operator-facing edges: `/healthz` when the inference stats cannot
 * be had, a `Host` that writes the default port out, and `share --expires` that is not positive.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Hono } from "hono";
import { AskTimeoutError } from "../../actors/errors.ts";
import type { InferencePort, InferenceStats } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { edgeConfig } from "../../server/edge_config.ts";
import { healthRoutes } from "../../server/health_routes.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { runShare } from "../../storage/exchange_commands.ts";
import { runPut } from "../../storage/storage_commands.ts";
import { captureConsole as capture, exists } from "../_helpers/console_capture.ts";

/** A port whose models answer and whose stats do as `stats` says. */
function portWith(stats: () => Promise<InferenceStats>): InferencePort {
  return {
    submit: () => Promise.reject(new Error("no jobs")),
    models: () => Promise.resolve([{ cid: "bafkmodel", name: "m", kind: "text" }] as never),
    stats,
  };
}

Deno.test("/healthz whose inference stats time out or fail answers 503 with a body saying the node failed and why, not a 500", async () => {
  const failures: [string, () => Promise<InferenceStats>][] = [
    // What the local port's stats ask rejects with when the inference actor is wedged.
    ["timed out", () => Promise.reject(new AskTimeoutError("node/inference", 5_000))],
    ["failed", () => Promise.reject(new Error("actor stopped"))],
  ];
  for (const [how, stats] of failures) {
    const gateway = new InferenceGateway({ inference: portWith(stats) });
    // Alone (as mounted) and in the whole app (its error handler answered 500 internal_error).
    const apps: [string, (url: string) => Response | Promise<Response>][] = [
      [
        "routes",
        (url) => new Hono().route("/", healthRoutes(gateway, new MetricsRegistry())).request(url),
      ],
      [
        "app",
        (url) => createApp({ inference: portWith(stats), edge: edgeConfig({}) }).request(url),
      ],
    ];
    for (const [where, request] of apps) {
      const response = await request("http://127.0.0.1/healthz");
      assert.equal(response.status, 503, `${how}, ${where}`);
      const body = await response.json();
      assert.equal(body.status, "failed", `${how}, ${where}: ${JSON.stringify(body)}`);
      assert.equal(body.conditions?.[0]?.component, "inference", JSON.stringify(body));
      assert.equal(body.conditions[0].status, "failed");
    }
  }
});

/** The status of GET `url` from a loopback peer with `headers`. */
async function statusOf(
  app: ReturnType<typeof createApp>,
  url: string,
  headers: Record<string, string>,
): Promise<number> {
  const remoteAddr: Deno.Addr = { transport: "tcp", hostname: "127.0.0.1", port: 40000 };
  const response = await app.request(url, { headers }, { remoteAddr });
  await response.body?.cancel();
  return response.status;
}

Deno.test("a Host that writes the default port out (127.0.0.1:80, a listed NAME:80 or NAME:443) is the same host, not a misdirected request", async () => {
  const app = createApp({
    inference: portWith(() => Promise.resolve({} as InferenceStats)),
    edge: edgeConfig({ allowedHosts: ["proxy.example", "p80.example:80", "tls.example:443"] }),
  });
  const served: [string, string][] = [
    ["http://127.0.0.1/metrics", "127.0.0.1:80"],
    ["http://localhost/metrics", "localhost:80"],
    ["http://[::1]/metrics", "[::1]:80"],
    ["https://127.0.0.1/metrics", "127.0.0.1:443"],
    ["http://proxy.example/metrics", "proxy.example:80"],
    ["http://p80.example/metrics", "p80.example:80"],
    ["http://p80.example/metrics", "p80.example"],
    ["https://tls.example/metrics", "tls.example"],
    ["https://tls.example/metrics", "tls.example:443"],
  ];
  for (const [url, host] of served) {
    assert.equal(await statusOf(app, url, { host }), 200, `${host} on ${url}`);
  }
  // The port a name is listed with still counts, and other names stay out.
  const refused: [string, string][] = [
    ["http://p80.example:8080/metrics", "p80.example:8080"],
    ["http://tls.example/metrics", "tls.example"],
    ["https://p80.example/metrics", "p80.example"],
    ["http://evil.example/metrics", "evil.example:80"],
    ["http://127.0.0.1/metrics", "127.0.0.1:80@evil.example"],
    ["http://127.0.0.1/metrics", "127.0.0.1:80/x"],
  ];
  for (const [url, host] of refused) {
    assert.equal(await statusOf(app, url, { host }), 421, `${host} on ${url}`);
  }
});

Deno.test("cli share --expires 0s (a link expired when printed) is a usage error naming the flag, and no share is stored", async () => {
  const dir = await Deno.makeTempDir();
  const data = join(dir, "d");
  await Deno.writeTextFile(join(dir, "s.txt"), "private");
  const put = await capture(() => runPut(["--private", "--data", data, join(dir, "s.txt")]));
  assert.equal(put.code, 0, put.err);
  const cid = put.out.trim();
  for (const expires of ["0s", "0d", "000m"]) {
    const shared = await capture(() =>
      runShare([cid, "--expires", expires, "--data", data, "--url", "http://127.0.0.1:9"])
    );
    assert.equal(shared.code, 2, `${expires}: ${shared.err}`);
    assert.equal(shared.out, "");
    assert.match(shared.err, /--expires/);
  }
  const shares = join(data, "store", "shares");
  const records = await exists(shares) ? await Array.fromAsync(Deno.readDir(shares)) : [];
  assert.deepEqual(records, []);
  await Deno.remove(dir, { recursive: true });
});
