/**
 * The dashboard's training view (`node/dashboard_sources.ts`) says which held-out text the node's
 * coordinator evaluates on: the public Brown split, or a private file by its size only.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { dashboardSources, type DashboardWiring } from "../../node/dashboard_sources.ts";
import {
  heldOutBytesNeeded,
  type HeldOutSource,
  publicHeldOutSource,
  readHeldOutFile,
} from "../../training/held_out_text.ts";
import type { TextShard } from "../../training/brown_corpus.ts";
import { TEST_HYPER, testSplit } from "../training/_fixtures.ts";
import { withEvalCoordinator } from "../training/_eval_coordinator.ts";

/** The training view's coordinator part for a coordinator on `heldOut`. */
async function viewOn(dir: string, heldOut: TextShard, heldOutSource: HeldOutSource) {
  return await withEvalCoordinator(heldOut, { heldOutSource, dir }, async (coordinator) => {
    const wiring = {
      publicKey: new Uint8Array(32),
      coordinator: () => coordinator,
      trainer: () => undefined,
    } as unknown as DashboardWiring;
    const view = await dashboardSources(wiring).training!();
    assert.ok(view?.coordinator !== undefined, "a coordinator's view");
    return view.coordinator;
  });
}

Deno.test("the training view names a private held-out file by its size, never its path or text", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-held-out-view-" });
  try {
    const path = join(dir, "operator-eval.txt");
    const text = "9876543210".repeat(heldOutBytesNeeded(TEST_HYPER.sampleBytes) / 10 + 1);
    await Deno.writeTextFile(path, text);
    const file = await readHeldOutFile(path, TEST_HYPER.sampleBytes);
    const view = await viewOn(dir, file.shard, file.source);
    assert.deepEqual(view.heldOut, { kind: "private_file", bytes: text.length });
    const shown = JSON.stringify(view);
    assert.ok(!shown.includes("operator-eval") && !shown.includes("9876543210"), shown);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the training view says when the coordinator evaluates on the public Brown split", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-held-out-view-" });
  try {
    const { heldOut } = await testSplit();
    const view = await viewOn(dir, heldOut, publicHeldOutSource(heldOut));
    assert.equal(view.heldOut?.kind, "public_brown_split");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
