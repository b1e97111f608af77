/**
 * Review (s50) of `cli.ts status` (`client/status_command.ts`) as a peer reaches it: the node's
 * state carries strings peers chose (a peer's hello `version`, up to 32 characters of any
 * well-formed Unicode; its model CIDs; verdict subjects and reasons in the activity feed).
 *
 * - `--json` printed them as `JSON.stringify` leaves them: the C0 controls escaped, but not the
 *   C1 controls (U+009B is CSI: `\u009b2J` clears a terminal that takes 8-bit controls) nor the
 *   bidirectional overrides, which reorder what the operator reads. The node's text log escapes
 *   exactly these (`node/log_format.ts`) because peers' words reach it; the same words reached
 *   the operator's terminal through `status --json`. Escaped as `\uXXXX`, the JSON is the same
 *   value.
 */
import assert from "node:assert/strict";
import { runStatus } from "../../client/status_command.ts";
import { emptyInferenceStats, type InferencePort } from "../../inference/inference_port.ts";
import type { PeerInfo } from "../../network/network_actor.ts";
import { PeerHelloSchema, signPeerHello } from "../../protocols/peer_hello.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { createApp } from "../../server/app.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";

/** CSI (C1), "2J" (clear the screen), then a right-to-left override. */
const VERSION = "1.0\u009b2J\u202e0.1";

Deno.test({
  name:
    "review s50: status --json shows a peer's version with its C1 controls and bidi overrides escaped, the same JSON value",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const peer = Identity.generate();
    // A hello the node takes: the version is a well-formed string of at most 32 characters.
    const hello = signPeerHello(peer, { version: VERSION, roles: [], models: [] }, 1, Date.now());
    assert.ok(PeerHelloSchema.safeParse(hello).success);
    const info: PeerInfo = {
      key: toHex(peer.publicKey),
      address: "127.0.0.1:40001",
      outbound: false,
      protocols: [],
      models: [],
      convicted: false,
      roles: [],
      version: hello.version,
    };
    const port: InferencePort = {
      models: () => Promise.resolve([]),
      stats: () => Promise.resolve(emptyInferenceStats()),
      submit: () => Promise.reject(new Error("no jobs here")),
    };
    const jobs = new JobMonitor();
    const app = createApp({
      inference: jobs.wrap(port),
      dashboard: {
        sources: {
          node: { key: "00".repeat(32), version: "test" },
          tree: () => ({
            name: "node",
            kind: "system",
            status: "running",
            restarts: 0,
            children: [],
          }),
          onLifecycle: () => () => {},
          peers: () => Promise.resolve([info]),
          validator: () => Promise.resolve(undefined),
          storage: () => Promise.resolve(undefined),
        },
        jobs,
        operatorToken: "op-token-0123456789abcdef",
      },
    });
    const server = serve({ app, port: 0, hostname: "127.0.0.1" });
    try {
      const out: string[] = [];
      const code = await runStatus(["--url", server.url, "--json"], {
        out: (line) => void out.push(line),
        err: (line) => void out.push(line),
      });
      assert.equal(code, 0, out.join("\n"));
      const printed = out.join("\n");
      assert.equal(JSON.parse(printed).peers[0].version, VERSION, "the same value");
      // deno-lint-ignore no-control-regex -- what must not reach the terminal as it is
      const raw = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/.exec(printed)?.[0];
      assert.equal(raw, undefined, `printed raw: ${JSON.stringify(raw)}`);
    } finally {
      await server.shutdown();
    }
  },
});
