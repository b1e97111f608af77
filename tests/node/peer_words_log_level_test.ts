/**
 * The level of the node's JSON log line (`node/log_format.ts`) is the node's judgement, not a
 * peer's: words a line quotes do not set it, and a peer's refusal reason is quoted where it enters
 * the node's sentence (`protocols/session_handshake.ts`). Review s76 F4: a configured peer that
 * refused with "node crashed; operator gave up" turned the dial failure's `warn` into `error`,
 * which a collector's alert pages on.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { lineLogger, logRecord } from "../../node/log_format.ts";
import { Identity } from "../../protocols/identity.ts";
import { refuseHandshake } from "../../protocols/session_handshake.ts";
import { listenTcp } from "../../protocols/tcp_transport.ts";
import { eventually } from "../_helpers/wait.ts";

const REASON = "node crashed; operator gave up, escalated";

Deno.test("a configured peer's refusal reason saying 'crashed' is logged at the dial failure's warn, not error", async () => {
  const hostile = listenTcp(
    { hostname: "127.0.0.1", port: 0 },
    (duplex) => refuseHandshake(duplex, REASON),
  );
  const lines: string[] = [];
  const log = lineLogger("json", (l) => void lines.push(l));
  const system = new ActorSystem({ name: "s77-peer-words" });
  try {
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () =>
        new NetworkActor({
          identity: Identity.generate(),
          services: {},
          peers: [{ hostname: "127.0.0.1", port: hostile.addr.port }],
          log,
        }),
    });
    const line = await eventually(
      () => lines.map((l) => JSON.parse(l)).find((r) => r.msg.includes("operator gave up")),
      "the dial failure's line",
    );
    // The node's own words in it ("refused") make it a warning; the peer's, quoted, do not.
    assert.match(line.msg, /the peer refused the connection: "node crashed; operator gave up/);
    assert.equal(line.level, "warn", line.msg);
  } finally {
    await system.shutdown();
    hostile.close();
  }
});

Deno.test("quoted words set no level, an unclosed quote runs to the end, the node's own still do", () => {
  assert.equal(logRecord('peer x said "node crashed; gave up"').level, "info");
  assert.equal(logRecord('peer x said "a \\" crashed"').level, "info", "an escaped quote");
  assert.equal(logRecord('peer x said "cut off, crashed').level, "info", "cut to a length");
  assert.equal(logRecord('peer x: the peer refused the connection: "crashed"').level, "warn");
  assert.equal(logRecord('crashed actor "storage": disk gone').level, "error");
  assert.equal(logRecord('actor "storage" crashed: disk gone').level, "error");
  assert.equal(logRecord('peer x said "crashed"', "error").level, "error", "a level given wins");
});
