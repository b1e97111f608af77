/**
 * A node whose own hello breaks the grammar peers check it against is told so: at start when its
 * version does (`node/version.ts`, `startNode`), and in its log, once while it lasts, when its
 * hello does (`network/_peer_hellos.ts`). Before, every peer refused each hello in silence and
 * still sent it jobs (review s77 vstr F3: `0.1.0_dev`).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { checkVersion, InvalidVersionError, VERIFLOW_VERSION } from "../../node/version.ts";
import { Identity } from "../../protocols/identity.ts";
import type { PeerHelloBody } from "../../protocols/peer_hello.ts";
import { eventually } from "../_helpers/wait.ts";

/** Hellos signed before the test looks: enough for a second line, were it said each time. */
const HELLOS_SIGNED = 5;

Deno.test("a version off the hello's grammar is refused at start with invalid_version", () => {
  assert.equal(checkVersion(), VERIFLOW_VERSION, "this build's own version fits");
  for (const version of ["0.1.0", "1.2.3-rc.1+build.7", "v2"]) {
    assert.equal(checkVersion(version), version);
  }
  for (const version of ["0.1.0_dev", "0.1.0 beta", "0.1.0~1", "", "x".repeat(33)]) {
    assert.throws(
      () => checkVersion(version),
      (error: unknown) =>
        error instanceof InvalidVersionError && error.code === "invalid_version" &&
        error.message.includes(JSON.stringify(version)),
      version,
    );
  }
});

for (
  const [version, said] of [["0.1.0_dev", 1], ["0.1.0", 0]] as const
) {
  Deno.test(`a node whose hello states ${version} logs ${said} line saying peers refuse it`, async () => {
    const lines: string[] = [];
    let signed = 0;
    const system = new ActorSystem({ name: "s77-own-hello" });
    try {
      await system.spawn<NetworkMessage>({
        name: "node/network",
        factory: () =>
          new NetworkActor({
            identity: Identity.generate(),
            services: {},
            helloIntervalMs: 1,
            log: (line) => void lines.push(line),
            // Another load each time: each is signed anew (and checked).
            describe: (): Promise<PeerHelloBody> =>
              Promise.resolve({
                version,
                roles: ["inference"],
                models: [],
                load: { running: 0, queued: signed++ % 8, slots: 4, queueLimit: 8 },
              }),
          }),
      });
      await eventually(() => signed >= HELLOS_SIGNED || undefined, "hellos signed");
      const refused = lines.filter((l) => l.startsWith("hello: refused by every peer"));
      assert.equal(refused.length, said, lines.join("\n"));
      if (said > 0) assert.match(refused[0], /version: a hello's version is 1 to 32/);
    } finally {
      await system.shutdown();
    }
  });
}
