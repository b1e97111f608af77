import assert from "node:assert/strict";
import { FreedMemory } from "../../storage/freed_memory.ts";

Deno.test("freed memory is released every so many bytes moved, and after a large transfer only", () => {
  let releases = 0;
  const memory = new FreedMemory(() => releases++, 1000);
  memory.moved(600);
  assert.equal(releases, 0);
  memory.moved(600); // 1,200 since the last release
  assert.equal(releases, 1);
  memory.moved(100);
  memory.ended(); // 100 < 1000 / 8: a small transfer costs no release
  assert.equal(releases, 1);
  memory.moved(100); // 200 since the last release: an eighth of 1,000 has moved
  memory.ended();
  assert.equal(releases, 2);
  memory.ended(); // nothing moved since
  assert.equal(releases, 2);
});

Deno.test("without a way to release, releasing says so and does nothing", () => {
  const memory = new FreedMemory(null, 10);
  assert.equal(memory.release(), false);
  memory.moved(100); // must not throw
});

Deno.test("on Linux with glibc the default release reaches malloc_trim", {
  ignore: Deno.build.os !== "linux" || Deno.build.env !== "gnu",
}, () => {
  // The suite runs with -A: FFI is allowed, so the lookup must find glibc's malloc_trim.
  assert.equal(new FreedMemory().release(), true);
});
