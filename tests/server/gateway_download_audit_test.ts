/**
 * A file download from the owner's gateway that reaches a chunk the owner is challenging a holder
 * on waits at it until the challenge is answered (5 s at most), and is served whole; before, the
 * read threw `chunk_under_audit` after the headers were sent, and the client got a 200 and a
 * truncated body (review s81 vaudit2, F3). The honest holders pass and no verdict names them.
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import { unwrapReply } from "../../actors/storage_actor_messages.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { toHex } from "../../protocols/hash.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { createApp } from "../../server/app.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { possessionProof, type StoragePeer } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import {
  auditNodeOptions,
  auditRounds,
  CHUNK,
  identityOf,
  putFile,
} from "../storage/_audit_owner.ts";

/** One client's download of the file: its status and how many bytes arrived, or its error. */
interface Download {
  status: number;
  retryAfter?: string | null;
  bytes: number;
  error?: string;
  /** Whether the file's root was among the challenged chunks (read before the headers). */
  rootHeld?: boolean;
  /** Settles when `bytes` reaches the given count, or the stream ends or fails. */
  reached(count: number): Promise<void>;
  done: Promise<void>;
}

/** Start a download of `url`, read as it streams. */
function download(url: string): Download {
  const waits: { count: number; resolve: () => void }[] = [];
  const wake = (all: boolean) => {
    for (const w of [...waits]) {
      if (all || state.bytes >= w.count) {
        waits.splice(waits.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const state: Download = {
    status: 0,
    bytes: 0,
    reached: (count) => {
      if (state.bytes >= count) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waits.push({ count, resolve });
      return promise;
    },
    done: Promise.resolve(),
  };
  state.done = (async () => {
    try {
      const response = await fetch(url);
      state.status = response.status;
      state.retryAfter = response.headers.get("retry-after");
      const reader = response.body!.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        state.bytes += value.length;
        wake(false);
      }
    } catch (error) {
      state.error = String(error);
    } finally {
      wake(true);
    }
  })();
  return state;
}

/**
 * Keeps every chunk; on a challenge, starts a client's download of the file from the owner's
 * gateway and answers once the download has every byte before the first challenged chunk (so the
 * stream is past its headers and at a held chunk), or failed.
 */
class HonestHolder implements StoragePeer {
  readonly id: string;
  readonly chunks = new Map<string, Uint8Array>();
  constructor(
    readonly publicKey: Uint8Array,
    readonly during: (cids: readonly string[]) => Promise<void>,
  ) {
    this.id = toHex(publicKey);
  }
  putChunk(cid: string, bytes: Uint8Array): Promise<void> {
    this.chunks.set(cid, bytes.slice());
    return Promise.resolve();
  }
  getChunk(cid: string): Promise<Uint8Array> {
    const bytes = this.chunks.get(cid);
    return bytes ? Promise.resolve(bytes) : Promise.reject(new Error("not held"));
  }
  hasChunk(cid: string): Promise<boolean> {
    return Promise.resolve(this.chunks.has(cid));
  }
  async proveChunks(nonce: Uint8Array, cids: readonly string[]) {
    await this.during(cids);
    return await Promise.all(cids.map((cid) => {
      const bytes = this.chunks.get(cid);
      return bytes ? possessionProof(nonce, this.publicKey, bytes) : null;
    }));
  }
}

Deno.test("a gateway download reaching a chunk under challenge waits for the answer and is served whole; the honest holders are not blamed (review s81 vaudit2, F3)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gateway_download_audit_" });
  const verdicts: Verdict[] = [];
  const owner = new StorageActor({
    ...auditNodeOptions(dir, identityOf(1), 3),
    onVerdict: (v) => void verdicts.push(v),
  });
  await owner.preStart();
  const app = createApp({ inference: {} as InferencePort });
  const port = storageGateway({ ask: (m) => owner.receive(m as never) as never });
  app.route("/", gatewayRoutes(() => port));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  const url = `http://127.0.0.1:${server.addr.port}`;
  const content = pseudoRandomBytes(16 * CHUNK, 7);
  let file = "";
  let leaves: string[] = [];
  const downloads: Download[] = [];
  let midStream = 0; // challenges answered with a download stopped at a held chunk past its headers
  const during = async (cids: readonly string[]) => {
    if (file === "") return; // the put's placement checks
    const offsets = cids.map((cid) => leaves.indexOf(cid)).filter((i) => i >= 0);
    const got = download(`${url}/ipfs/${file}`);
    got.rootHeld = cids.includes(file);
    downloads.push(got);
    if (offsets.length === 0) return; // only the root asked: nothing streams before it
    const first = Math.min(...offsets) * CHUNK;
    await got.reached(first);
    if (first > 0 && got.error === undefined && got.bytes === first) midStream++;
  };
  const holders = [2, 3, 4].map((n) => new HonestHolder(identityOf(n).publicKey, during));
  try {
    unwrapReply(await owner.receive({ type: "set_peers", peers: holders }));
    const cid = await putFile(owner, content);
    leaves = unwrapReply<{ chunks: string[] }>(await owner.receive({ type: "stat", cid })).chunks;
    file = cid;
    await auditRounds(owner, 2);
    await Promise.all(downloads.map((d) => d.done));
  } finally {
    await server.shutdown();
    await owner.repairIdle();
    await owner.postStop();
    await Deno.remove(dir, { recursive: true });
  }
  assert.ok(downloads.length >= 6, `every challenge ran a download (${downloads.length})`);
  assert.ok(midStream > 0, "some download stood at a held chunk mid-stream");
  // Each download is served whole, or (its root read before any header while another challenge
  // holds it, as a raw block is) refused up front with a 503 to retry: never a 200 cut short.
  let whole = 0;
  for (const d of downloads) {
    if (d.status === 503) {
      assert.deepEqual({ retryAfter: d.retryAfter, error: d.error }, {
        retryAfter: "5",
        error: undefined,
      });
      continue;
    }
    assert.deepEqual(
      { status: d.status, bytes: d.bytes, error: d.error },
      { status: 200, bytes: content.length, error: undefined },
    );
    whole++;
  }
  assert.ok(whole > 0);
  // The honest holders answered in time: no verdict against any of them.
  assert.deepEqual(verdicts.filter((v) => v.outcome === "invalid"), []);
});
