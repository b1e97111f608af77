/**
 * A web page of another origin, open in the operator's browser on the node's machine, is never
 * "this machine" (`fromThisMachine`), whatever `http.allowedOrigins` says (review s78 dash, F1):
 * with `--allow-origin '*'` it got the dashboard's state and socket with every client's job text
 * and, without API keys, ran jobs and stored files. The node's own page and the operator's tools
 * (no `Origin`) keep this machine's access. Requests go over real loopback connections, as the
 * page's would.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import type { InferencePort, InferenceStats } from "../../inference/inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";
import { accessWarnings, describeAccess, type EdgeEnv } from "../../server/client_access.ts";
import { createApp } from "../../server/app.ts";
import type { EdgeConfig } from "../../server/edge_config.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import { quietSources } from "./_dashboard_sources.ts";
import { oneTokenJob } from "./_one_token_job.ts";

/** The site the operator happens to visit. */
const EVIL = "https://evil.example";
const KEY = "a-long-random-api-key-1234";
const OPERATOR = "op-token-0123456789abcdef";
/** What another client's job answered: no page of another origin may read it. */
const SECRET = "secret answer";

/** A port whose every job answers {@link SECRET} in one token, counting the jobs it ran. */
function secretPort(): InferencePort & { jobs: number } {
  const port = {
    jobs: 0,
    submit: () => {
      port.jobs++;
      return oneTokenJob(SECRET);
    },
    models: () => Promise.resolve([{ cid: "m", name: "m", kind: "text" as const }]),
    stats: () => Promise.resolve({} as InferenceStats),
  };
  return port;
}

/**
 * A node with the dashboard and a stand-in for `POST /v1/files` (counting the puts that reach
 * it), on a free loopback port, after one client job whose text is {@link SECRET}.
 */
async function withNode(
  edge: Partial<EdgeConfig>,
  body: (url: string, counts: { puts: number; jobs: () => number }) => Promise<void>,
): Promise<void> {
  const port = secretPort();
  const jobs = new JobMonitor();
  const inference = jobs.wrap(port);
  const earlier = await inference.submit({} as TextJob);
  for await (const _ of earlier.tokens) { /* another client's job, run to its end */ }
  await earlier.done;
  const app = createApp({
    inference,
    edge,
    dashboard: { sources: quietSources(), jobs, operatorToken: OPERATOR, tickMs: 60_000 },
  });
  const counts = { puts: 0, jobs: () => port.jobs };
  const files = new Hono<EdgeEnv>();
  files.post("/files", (c) => {
    counts.puts++;
    return c.json({ cid: "stand-in" }, 201);
  });
  app.route("/v1", files);
  const server = serve({ app, hostname: "127.0.0.1", port: 0 });
  try {
    await body(server.url, counts);
  } finally {
    await server.shutdown();
  }
}

/** The job texts a `/dashboard/state` answer carries. */
async function stateTexts(response: Response): Promise<string[]> {
  const state = await response.json();
  return (state.jobs.recent as { text: string }[]).map((job) => job.text);
}

/** The `access` the dashboard socket's `hello` grants a page of `origin` (none: no `Origin`). */
async function socketAccess(url: string, origin?: string): Promise<string> {
  const socket = new WebSocket(
    `${url.replace("http:", "ws:")}/dashboard/live`,
    // Deno's WebSocket takes handshake headers; a browser sends its page's origin itself.
    (origin === undefined ? undefined : { headers: { origin } }) as unknown as string[],
  );
  const hello = Promise.withResolvers<string>();
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "hello") hello.resolve(message.access);
  };
  socket.onerror = () => hello.reject(new Error("the socket was refused"));
  try {
    return await hello.promise;
  } finally {
    const closed = new Promise((resolve) => socket.onclose = resolve);
    socket.close();
    await closed;
  }
}

const completion = (origin?: string): RequestInit => ({
  method: "POST",
  // The "simple request" a page sends without a preflight.
  headers: { "content-type": "text/plain", ...(origin === undefined ? {} : { origin }) },
  body: JSON.stringify({ prompt: "x", max_tokens: 1 }),
});

Deno.test("with --allow-origin '*' and no API keys, a page of another origin on this machine is refused the /v1 POSTs (403 api_key_required, naming its origin), the dashboard's state (401) and a reading socket; the operator's tools and the node's own page still work", async () => {
  await withNode({ allowedOrigins: ["*"] }, async (url, counts) => {
    const before = counts.jobs();
    for (const origin of [EVIL, "null", "http://127.0.0.1:1"]) {
      const post = await fetch(`${url}/v1/completions`, completion(origin));
      const { error } = await post.json();
      assert.deepEqual([post.status, error.code], [403, "api_key_required"], origin);
      assert.ok(error.message.includes(`web page from ${origin}`), error.message);
      const put = await fetch(`${url}/v1/files`, {
        method: "POST",
        headers: { origin },
        body: "junk",
      });
      assert.equal(put.status, 403, origin);
      await put.body?.cancel();
      const state = await fetch(`${url}/dashboard/state`, { headers: { origin } });
      assert.equal(state.status, 401, origin);
      assert.doesNotMatch(await state.text(), new RegExp(SECRET));
      assert.equal(await socketAccess(url, origin), "none", origin);
    }
    assert.equal(counts.jobs(), before, "no page's job ran");
    assert.equal(counts.puts, 0, "no page's file was stored");

    // The operator's tools send no Origin: this machine, as before.
    const tool = await fetch(`${url}/v1/completions`, completion());
    assert.equal(tool.status, 200);
    await tool.body?.cancel();
    const put = await fetch(`${url}/v1/files`, { method: "POST", body: "mine" });
    assert.equal(put.status, 201);
    await put.body?.cancel();
    assert.deepEqual(await stateTexts(await fetch(`${url}/dashboard/state`)), [SECRET, SECRET]);
    assert.equal(await socketAccess(url), "read");
    // The node's own page (its origin is the address it was served at): this machine too.
    const own = new URL(url).origin;
    const page = await fetch(`${url}/v1/completions`, completion(own));
    assert.equal(page.status, 200);
    await page.body?.cancel();
    const state = await fetch(`${url}/dashboard/state`, { headers: { origin: own } });
    assert.equal(state.status, 200);
    assert.ok((await stateTexts(state)).includes(SECRET));
    assert.equal(await socketAccess(url, own), "read");
  });
});

Deno.test("with --allow-origin '*' and an API key, a keyless page of another origin on this machine reads neither the dashboard's state nor its socket; with the key it reads the numbers, never job text", async () => {
  await withNode({ allowedOrigins: ["*"], apiKeys: [KEY] }, async (url) => {
    const keyless = await fetch(`${url}/dashboard/state`, { headers: { origin: EVIL } });
    assert.equal(keyless.status, 401);
    assert.doesNotMatch(await keyless.text(), new RegExp(SECRET));
    assert.equal(await socketAccess(url, EVIL), "none");
    const keyed = await fetch(`${url}/dashboard/state`, {
      headers: { origin: EVIL, authorization: `Bearer ${KEY}` },
    });
    assert.equal(keyed.status, 200);
    assert.equal(keyed.headers.get("access-control-allow-origin"), EVIL);
    assert.deepEqual(await stateTexts(keyed), [""]);
    // The operator's own tool, on this machine, with no Origin: every job's text.
    assert.deepEqual(await stateTexts(await fetch(`${url}/dashboard/state`)), [SECRET]);
  });
});

Deno.test("an origin listed by name is let in as a client elsewhere is, never as this machine: keyless, its /v1 POST gets 403; with a key, 200", async () => {
  const app = "https://app.example";
  await withNode({ allowedOrigins: [app], apiKeys: [] }, async (url) => {
    const keyless = await fetch(`${url}/v1/completions`, completion(app));
    assert.equal(keyless.status, 403);
    assert.equal(keyless.headers.get("access-control-allow-origin"), app, "readable by the page");
    await keyless.body?.cancel();
  });
  await withNode({ allowedOrigins: [app], apiKeys: [KEY] }, async (url) => {
    const init = completion(app);
    const keyed = await fetch(`${url}/v1/completions`, {
      ...init,
      headers: { ...init.headers as Record<string, string>, authorization: `Bearer ${KEY}` },
    });
    assert.equal(keyed.status, 200);
    await keyed.body?.cancel();
  });
});

Deno.test("--allow-origin '*' without API keys gets one warning line at start naming the flag and the risk; with a key, or listed origins, none", () => {
  const base = { apiKeys: [], allowUnauthenticatedRemote: false, allowedOrigins: ["*"] };
  const [warning, ...more] = accessWarnings(base);
  assert.deepEqual(more, []);
  assert.match(warning, /^warning: --allow-origin '\*' \(http\.allowedOrigins\) without API keys/);
  assert.match(warning, /every web site your browser visits/);
  assert.match(warning, /\/metrics/);
  assert.doesNotMatch(warning, /\n/, "one line");
  // Open to anyone without a key: any site may then run jobs through the operator's browser.
  const [open] = accessWarnings({ ...base, allowUnauthenticatedRemote: true });
  assert.match(open, /run jobs, store files/);
  assert.deepEqual(accessWarnings({ ...base, apiKeys: [KEY] }), []);
  assert.deepEqual(accessWarnings({ ...base, allowedOrigins: ["https://app.example"] }), []);
  // The start line still names the origins.
  assert.ok(describeAccess(base).includes("browser origins *"), describeAccess(base));
});
