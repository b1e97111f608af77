/**
 * Streaming video from `/ipfs/{cid}` in a real browser (Debian's chromium via playwright-core).
 *
 * The video is made inside chromium, with no network and no encoder on the machine: a canvas
 * animation recorded by `MediaRecorder` from `canvas.captureStream()` (WebM, 4 s, 320×240, a high
 * bit rate over a noisy half, so the file spans several 256 KiB chunks and its id is a multi-block
 * UnixFS DAG). The test stores it through the node's StorageActor (put), then a `<video>` plays
 * it from `/ipfs/{cid}` and seeks to 3 s.
 *
 * What it proves: chromium takes the bytes as video (its dimensions, decoded frames), the seek
 * lands (currentTime ≈ 3 s) and shows the frame recorded then — the top half's grey level encodes
 * the recording time, read back from the decoded frame (measured: 191 expected, 190.9 read) — and
 * the node answered the element's range request with 206 and `video/webm` (sniffed: the put
 * recorded no type). Chromium asks `bytes=0-` and, on localhost, has the whole 2.5 MB before the
 * seek, so no mid-file range is asked here; those are `gateway_routes_test.ts`'s.
 *
 * What it does not: MediaRecorder's WebM has no duration and no cues, so `duration` is Infinity
 * and chromium seeks by reading clusters forward (indexing them as it reads), not through a cue
 * index; a file remuxed with cues is not made here.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { PutHandle, StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";

const CHROMIUM = "/usr/bin/chromium";
const WIDTH = 320;
const HEIGHT = 240;
const RECORD_MS = 4_000;
const SEEK_TO_S = 3;
/** The grey a frame recorded at `SEEK_TO_S` shows; ±40 is ±0.6 s of recording time. */
const GREY_AT_SEEK = Math.round((255 * SEEK_TO_S * 1000) / RECORD_MS);
const GREY_TOLERANCE = 40;
/** A 256 KiB chunk: the file must span several, so its id is a dag-pb root over raw leaves. */
const CHUNK_BYTES = 256 * 1024;

/**
 * Run in the page (a string: this file is type-checked without the DOM library). Draws a grey
 * top half whose level is the time since the start (0 → 255 over `RECORD_MS`) over a noisy
 * bottom half, records it, and returns the WebM as base64.
 */
const RECORD_IN_PAGE = `(async () => {
  const canvas = document.createElement("canvas");
  canvas.width = ${WIDTH};
  canvas.height = ${HEIGHT};
  document.body.append(canvas);
  const g = canvas.getContext("2d");
  const noise = g.createImageData(${WIDTH}, ${HEIGHT / 2});
  const start = performance.now();
  const draw = () => {
    const grey = Math.min(255, Math.round((255 * (performance.now() - start)) / ${RECORD_MS}));
    g.fillStyle = "rgb(" + grey + "," + grey + "," + grey + ")";
    g.fillRect(0, 0, ${WIDTH}, ${HEIGHT / 2});
    for (let o = 0; o < noise.data.length; o += 65536) {
      crypto.getRandomValues(noise.data.subarray(o, o + 65536));
    }
    g.putImageData(noise, 0, ${HEIGHT / 2});
  };
  draw();
  const timer = setInterval(draw, 20);
  const type = ["video/webm;codecs=vp8", "video/webm;codecs=vp9", "video/webm"]
    .find((t) => MediaRecorder.isTypeSupported(t));
  const recorder = new MediaRecorder(canvas.captureStream(30), {
    mimeType: type,
    videoBitsPerSecond: 4000000,
  });
  const parts = [];
  recorder.ondataavailable = (e) => parts.push(e.data);
  const stopped = new Promise((resolve) => recorder.onstop = resolve);
  recorder.start(250);
  await new Promise((resolve) => setTimeout(resolve, ${RECORD_MS}));
  recorder.stop();
  await stopped;
  clearInterval(timer);
  const bytes = new Uint8Array(await new Blob(parts).arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return { type, base64: btoa(text) };
})()`;

/** Run in the page: play, seek to `SEEK_TO_S`, and read back what the element shows. */
const PLAY_AND_SEEK_IN_PAGE = `(async () => {
  const v = document.getElementById("v");
  const ranges = (r) => Array.from({ length: r.length }, (_, i) => [r.start(i), r.end(i)]);
  const once = (name) => new Promise((resolve, reject) => {
    v.addEventListener(name, resolve, { once: true });
    v.addEventListener("error", () => reject(new Error("media error " + v.error.code)), { once: true });
  });
  if (v.readyState < 1) await once("loadedmetadata");
  const duration = v.duration;
  await v.play();
  const seeked = once("seeked");
  v.currentTime = ${SEEK_TO_S};
  await seeked;
  const time = v.currentTime;
  const canvas = document.createElement("canvas");
  canvas.width = v.videoWidth;
  canvas.height = v.videoHeight;
  const g = canvas.getContext("2d");
  g.drawImage(v, 0, 0);
  const top = g.getImageData(0, 0, canvas.width, canvas.height / 2).data;
  let sum = 0;
  for (let i = 0; i < top.length; i += 4) sum += top[i];
  await once("timeupdate"); // it plays on after the seek
  return {
    duration: Number.isFinite(duration) ? duration : String(duration),
    width: v.videoWidth,
    height: v.videoHeight,
    time,
    grey: sum / (top.length / 4),
    seekable: ranges(v.seekable),
    framesDecoded: v.getVideoPlaybackQuality().totalVideoFrames,
    error: v.error ? v.error.code : null,
  };
})()`;

/** What {@link PLAY_AND_SEEK_IN_PAGE} returns. */
interface Playback {
  duration: number | string;
  width: number;
  height: number;
  time: number;
  grey: number;
  seekable: [number, number | null][];
  framesDecoded: number;
  error: number | null;
}

Deno.test({
  name:
    "chromium plays a WebM video recorded in the page from /ipfs/{cid} and seeks to the frame recorded then; range requests answered 206",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await Deno.stat(CHROMIUM).catch(() => {
      throw new Error(
        `${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)`,
      );
    });
    const dir = await Deno.makeTempDir();
    const system = new ActorSystem({ name: "playback-test" });
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir }) as never,
    });
    let cid = "";
    const app = createApp({ inference: {} as InferencePort });
    app.route("/", gatewayRoutes(() => storageGateway(storage)));
    app.get("/recorder", (c) => c.html("<!doctype html><body></body>"));
    app.get("/player", (c) => c.html(`<video id="v" muted preload="auto" src="/ipfs/${cid}">`));
    const served: { status: number; range: string; type: string }[] = [];
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      async (req, info) => {
        const response = await app.fetch(req, info);
        if (new URL(req.url).pathname.startsWith("/ipfs/")) {
          served.push({
            status: response.status,
            range: req.headers.get("range") ?? "-",
            type: response.headers.get("content-type") ?? "-",
          });
        }
        return response;
      },
    );
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
    });
    try {
      const page = await browser.newPage();
      const base = `http://127.0.0.1:${server.addr.port}`;
      await page.goto(`${base}/recorder`);
      const recorded = await page.evaluate(RECORD_IN_PAGE) as { type: string; base64: string };
      const video = Uint8Array.from(atob(recorded.base64), (ch) => ch.charCodeAt(0));
      assert.ok(video.length > 2 * CHUNK_BYTES, `recorded ${video.length} bytes`);

      cid = (await (await storage.ask<PutHandle>({
        type: "put",
        source: ReadableStream.from([video]),
      })).done).cid;
      assert.ok(cid.startsWith("bafybei"), `${cid} is a dag-pb root over several leaves`);

      await page.goto(`${base}/player`);
      const played = await page.evaluate(PLAY_AND_SEEK_IN_PAGE) as Playback;
      const story = `${recorded.type}, ${video.length} bytes: ${JSON.stringify(played)}; ` +
        `requests: ${JSON.stringify(served)}`;
      assert.equal(played.error, null, story);
      assert.deepEqual([played.width, played.height], [WIDTH, HEIGHT], story);
      assert.ok(played.framesDecoded > 0, story);
      assert.ok(played.time >= SEEK_TO_S && played.time < SEEK_TO_S + 0.5, story);
      assert.ok(Math.abs(played.grey - GREY_AT_SEEK) <= GREY_TOLERANCE, story);
      assert.ok(served.every((r) => r.type === "video/webm"), story);
      assert.ok(served.some((r) => r.status === 206 && r.range.startsWith("bytes=")), story);
      assert.ok(served.every((r) => r.status === 200 || r.status === 206), story);
    } finally {
      await browser.close();
      await server.shutdown();
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
