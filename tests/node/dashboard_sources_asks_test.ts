/**
 * The dashboard's storage panel (`node/dashboard_sources.ts`) asks the storage actor for counts it
 * keeps, and asks nothing again while an ask is unanswered.
 *
 * Review s74 F1: every snapshot (one a second per open page) asked for the whole `list`, which
 * reads every pinned manifest; with 2000 pins it took longer than the 1 s timeout, and the
 * timed-out asks, still in the mailbox, piled up: users' gets went from 5 ms to 3.6 s.
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { dashboardSources, type DashboardWiring } from "../../node/dashboard_sources.ts";
import { turns } from "../_helpers/fake_timers.ts";

/** A storage actor that records each ask and answers only when the test says. */
function heldStorage() {
  const asked: string[] = [];
  const waiting: { type: string; answer: (value: unknown) => void }[] = [];
  const ref = {
    name: "node/storage",
    ask: (message: StorageMessage) => {
      asked.push(message.type);
      return new Promise((resolve) => waiting.push({ type: message.type, answer: resolve }));
    },
  } as unknown as ActorRef<StorageMessage>;
  const answerAll = () => {
    for (const { type, answer } of waiting.splice(0)) {
      const value = type === "capacity"
        ? { usedBytes: 1, objectCount: 3, pinCount: 2 }
        : type === "file_counts"
        ? { files: 2, publicFiles: 1, chunks: 5 }
        : [
          { cid: "a", tier: "public", chunks: ["x", "y"] },
          { cid: "b", tier: "private", chunks: ["z", "w", "v"] },
        ];
      answer({ ok: true, value });
    }
  };
  return { ref, asked, answerAll };
}

function sourcesOver(storage: ActorRef<StorageMessage>) {
  return dashboardSources({
    publicKey: new Uint8Array(32),
    storage: () => storage,
    network: () => undefined,
    validator: () => undefined,
  } as unknown as DashboardWiring);
}

Deno.test("dashboard storage panel: counts come from file_counts, never the whole list", async () => {
  const storage = heldStorage();
  const sources = sourcesOver(storage.ref);
  const view = sources.storage!();
  await turns(2);
  storage.answerAll();
  const shown = await view as { files: number; publicFiles: number; chunks: number };
  assert.ok(!storage.asked.includes("list"), `asked ${storage.asked.join(", ")}`);
  assert.equal(shown.files, 2);
  assert.equal(shown.publicFiles, 1);
  assert.equal(shown.chunks, 5);
});

Deno.test("dashboard storage panel: a question still unanswered is not asked again", async () => {
  const storage = heldStorage();
  const sources = sourcesOver(storage.ref);
  const first = sources.storage!();
  await turns(2);
  const second = sources.storage!(); // the next tick, or a second page, before the first answer
  await turns(2);
  assert.equal(storage.asked.filter((t) => t === "capacity").length, 1);
  assert.equal(storage.asked.length, 2, `asked ${storage.asked.join(", ")}`);
  storage.answerAll();
  const [a, b] = await Promise.all([first, second]);
  assert.deepEqual(a, b);
  // Answered: the next snapshot asks afresh.
  const third = sources.storage!();
  await turns(2);
  assert.equal(storage.asked.length, 4);
  storage.answerAll();
  await third;
});
