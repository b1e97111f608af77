import assert from "node:assert/strict";
import { z } from "zod";
import { defineMessage, MessageRegistry } from "../../protocols/message_registry.ts";
import { createCoreRegistry } from "../../protocols/messages.ts";
import { InvalidBodyError, UnknownTypeError } from "../../protocols/protocol_errors.ts";

const Reply = defineMessage("reg.reply", z.object({ ok: z.boolean() }));
const Ask = defineMessage("reg.ask", z.object({ q: z.string().max(5) }), { reply: Reply });

Deno.test("registering a request registers its reply type too", () => {
  const registry = new MessageRegistry().register(Ask);
  assert.ok(registry.has("reg.ask") && registry.has("reg.reply"));
});

Deno.test("parseBody returns the parsed body and strips unknown keys", () => {
  const registry = new MessageRegistry([Ask]);
  assert.deepEqual(registry.parseBody("reg.ask", { q: "hi", junk: 1 }), { q: "hi" });
});

Deno.test("parseBody refuses unknown types and bad bodies with typed errors", () => {
  const registry = new MessageRegistry([Ask]);
  assert.throws(() => registry.parseBody("reg.nope", {}), UnknownTypeError);
  assert.throws(
    () => registry.parseBody("reg.ask", { q: "too long" }, { envelopeId: 4 }),
    (e: unknown) =>
      e instanceof InvalidBodyError && e.code === "invalid_body" && e.envelopeId === 4,
  );
});

Deno.test("two different definitions cannot claim one type name", () => {
  const registry = new MessageRegistry([Ask]);
  registry.register(Ask); // same definition again: fine
  assert.throws(() => registry.register(defineMessage("reg.ask", z.null())), TypeError);
});

Deno.test("type names are validated and reply/chunk are exclusive", () => {
  assert.throws(() => defineMessage("Bad Name", z.null()), TypeError);
  assert.throws(() => defineMessage("", z.null()), TypeError);
  assert.throws(() => defineMessage("a.b", z.null(), { reply: Reply, chunk: Reply }), TypeError);
});

Deno.test("the core registry holds the control messages", () => {
  const registry = createCoreRegistry();
  for (const t of ["ping", "pong", "error", "credit", "cancel", "end"]) {
    assert.ok(registry.has(t), t);
  }
  assert.throws(() => registry.parseBody("credit", { chunks: 0 }), InvalidBodyError);
});
