/**
 * Review (stop 52) of the memory a replicated put holds (`storage/replicated_store.ts`): a put
 * resolves once w holders acknowledged, and the copies past the quorum are written in the
 * background, each holding its chunk until its holder answers or the peer timeout (10 s) ends it.
 * Nothing bounded them: a file put read its source as fast as the w fastest holders answered, so
 * behind a holder that answers slowly, or never (a hostile peer that takes `put_chunk` and keeps
 * quiet), the put held every chunk of the last 10 s of its upload — gigabytes at disk speed —
 * where the file store promises `concurrency` chunks whatever the file size.
 *
 * @module
 */
import assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { FileStore } from "../../storage/file_store.ts";
import { ReplicatedStore, type ReplicatedStoreOptions } from "../../storage/replicated_store.ts";
import { tracker, turns } from "../_helpers/fake_timers.ts";
import { pseudoRandomBytes, streamOf } from "./_helpers.ts";
import { MemoryPeer } from "./_memory_peer.ts";

/** A holder in memory; `held` keeps its writes waiting (unanswered) until `answer()`. */
class HeldWritePeer extends MemoryPeer {
  /** Writes not answered yet, each holding its chunk. */
  readonly waiting: (() => void)[] = [];
  /** Most writes waiting at once. */
  mostWaiting = 0;
  #held: boolean;

  constructor(held = false) {
    super();
    this.#held = held;
  }

  override async putChunk(cid: string, bytes: Uint8Array): Promise<void> {
    if (this.#held) {
      const answered = Promise.withResolvers<void>();
      this.waiting.push(answered.resolve);
      this.mostWaiting = Math.max(this.mostWaiting, this.waiting.length);
      await answered.promise;
    }
    await super.putChunk(cid, bytes);
  }

  /** Answer every waiting write, and every write from now on at once. */
  answer(): void {
    this.#held = false;
    for (const resolve of this.waiting.splice(0)) resolve();
  }
}

const CHUNK = 1024;
const CHUNKS = 48;
const CONCURRENCY = 4;
/** What the store may hold past its puts' quorum: 4 chunks. */
const BACKGROUND_BYTES = 4 * CHUNK;

Deno.test("a file put behind a holder that does not answer holds a bounded number of chunks, and every copy lands once it answers", async () => {
  const fast = [new HeldWritePeer(), new HeldWritePeer()];
  const slow = new HeldWritePeer(true);
  const store = new ReplicatedStore([...fast, slow], {
    replicas: 3,
    writeQuorum: 2,
    peerTimeoutMs: 600_000, // the slow holder is never cut off here: only memory is in question
    maxBackgroundBytes: BACKGROUND_BYTES,
  } as ReplicatedStoreOptions);
  const files = new FileStore(store, { chunkSize: CHUNK, concurrency: CONCURRENCY });
  const data = pseudoRandomBytes(CHUNKS * CHUNK, 52);
  const put = files.put(streamOf(data, CHUNK));
  const done = tracker(put);
  await turns(100); // far more than 48 puts to two holders in memory need
  // Past the quorum: at most the bound's worth of chunks, plus one per put in flight.
  const bound = BACKGROUND_BYTES / CHUNK + CONCURRENCY;
  assert.ok(
    slow.mostWaiting <= bound,
    `${slow.mostWaiting} chunks held for the slow holder at once; at most ${bound}`,
  );
  assert.equal(done(), false, "the put waits for the slow holder rather than hold more");
  slow.answer();
  await put;
  await store.flush();
  assert.ok(slow.mostWaiting <= bound, `${slow.mostWaiting} chunks held at once`);
  for (let i = 0; i < CHUNKS; i++) {
    const cid = cidOf(data.subarray(i * CHUNK, (i + 1) * CHUNK));
    for (const peer of [...fast, slow]) {
      assert.ok(peer.chunks.has(cid), `chunk ${i} on every holder`);
    }
  }
});

Deno.test("a put waiting for room behind a holder that does not answer ends with its caller's abort, and its copies still land", async () => {
  const fast = [new HeldWritePeer(), new HeldWritePeer()];
  const slow = new HeldWritePeer(true);
  const store = new ReplicatedStore([...fast, slow], {
    replicas: 3,
    writeQuorum: 2,
    peerTimeoutMs: 600_000,
    maxBackgroundBytes: BACKGROUND_BYTES,
  } as ReplicatedStoreOptions);
  const chunks = Array.from({ length: 6 }, (_, i) => pseudoRandomBytes(CHUNK, 100 + i));
  for (const chunk of chunks.slice(0, 4)) await store.put(chunk); // the bound, all waiting
  const cancel = new AbortController();
  const put = store.put(chunks[4], { signal: cancel.signal });
  const done = tracker(put);
  await turns(20);
  assert.equal(done(), false, "past the bound: it waits for room");
  const reason = new Error("the caller gave up");
  cancel.abort(reason);
  await assert.rejects(put, (error) => error === reason);
  slow.answer();
  await store.flush();
  for (const chunk of chunks.slice(0, 5)) {
    for (const peer of [...fast, slow]) assert.ok(peer.chunks.has(cidOf(chunk)));
  }
});
