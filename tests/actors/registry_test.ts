import assert from "node:assert/strict";
import { Registry } from "../../actors/registry.ts";
import { InvalidNameError, NameTakenError } from "../../actors/errors.ts";

Deno.test("registry keeps names unique and lets only the holder release a name", () => {
  const registry = new Registry<object>();
  const a = {};
  const b = {};
  registry.register("node/storage", a);
  registry.register("node/storage", a); // idempotent for the same owner
  assert.throws(() => registry.register("node/storage", b), NameTakenError);
  registry.unregister("node/storage", b); // a stale owner cannot evict the holder
  assert.equal(registry.get("node/storage"), a);
  registry.unregister("node/storage", a);
  assert.equal(registry.has("node/storage"), false);
  registry.register("node/storage", b);
  assert.deepEqual(registry.names(), ["node/storage"]);
  assert.equal(registry.size, 1);
});

Deno.test("registry rejects empty and padded names with InvalidNameError", () => {
  const registry = new Registry<object>();
  for (const bad of ["", " x", "x ", 42 as unknown as string]) {
    const error = (() => {
      try {
        registry.register(bad, {});
      } catch (e) {
        return e;
      }
    })();
    assert.ok(error instanceof InvalidNameError, `accepted ${JSON.stringify(bad)}`);
    assert.equal(error.code, "invalid_name");
  }
});
