/**
 * Streaming playback from `/ipfs/{cid}` in a real browser (Debian's chromium via playwright-core).
 * The media is a WAV built here byte by byte (10 s of 8 kHz, 16-bit mono sine, 160 KB): no
 * network and no encoder are needed to make it, and chromium plays WAV natively. (A video file
 * would need a hand-built WebM/MP4 muxer; the range path a `<video>` uses is the same one.)
 * The page plays it, seeks to 7 s, and the node must have answered a range request with 206.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  type PutHandle,
  StorageActor,
  storageGateway,
  type StorageMessage,
} from "../../actors/storage_actor.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";

const CHROMIUM = "/usr/bin/chromium";
const RATE = 8_000;
const SECONDS = 10;

function sineWav(): Uint8Array {
  const samples = RATE * SECONDS;
  const out = new Uint8Array(44 + samples * 2);
  const view = new DataView(out.buffer);
  const ascii = (at: number, text: string) =>
    [...text].forEach((c, i) => out[at + i] = c.charCodeAt(0));
  ascii(0, "RIFF");
  view.setUint32(4, 36 + samples * 2, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 16, true); // PCM header size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, RATE, true);
  view.setUint32(28, RATE * 2, true); // bytes per second
  view.setUint16(32, 2, true); // block align
  view.setUint16(34, 16, true); // bits per sample
  ascii(36, "data");
  view.setUint32(40, samples * 2, true);
  for (let i = 0; i < samples; i++) {
    view.setInt16(44 + i * 2, Math.round(8_000 * Math.sin((2 * Math.PI * 440 * i) / RATE)), true);
  }
  return out;
}

Deno.test({
  name: "chromium plays and seeks media served from /ipfs/{cid}: range requests answered 206",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const system = new ActorSystem({ name: "playback-test" });
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir }) as never,
    });
    const { cid } = await (await storage.ask<PutHandle>({
      type: "put",
      source: ReadableStream.from([sineWav()]),
    })).done;
    const app = createApp({ inference: {} as InferencePort });
    app.route("/", gatewayRoutes(() => storageGateway(storage)));
    app.get("/player", (c) => c.html(`<audio id="m" preload="auto" src="/ipfs/${cid}"></audio>`));
    const statuses: string[] = [];
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      async (req, info) => {
        const response = await app.fetch(req, info);
        statuses.push(`${response.status} ${req.headers.get("range") ?? "-"}`);
        return response;
      },
    );
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio"],
    });
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${server.addr.port}/player`);
      // A string, run in the page: this file is type-checked without the DOM library.
      const played = await page.evaluate(`(async () => {
        const m = document.getElementById("m");
        await m.play();
        const duration = m.duration;
        await new Promise((resolve) => {
          m.addEventListener("seeked", resolve, { once: true });
          m.currentTime = 7;
        });
        await new Promise((resolve) => m.addEventListener("timeupdate", resolve, { once: true }));
        return { duration, time: m.currentTime, error: m.error ? m.error.code : null };
      })()`) as { duration: number; time: number; error: number | null };
      assert.equal(played.error, null);
      assert.ok(Math.abs(played.duration - SECONDS) < 0.1, `duration ${played.duration}`);
      assert.ok(played.time >= 7, `seeked to ${played.time}`);
      assert.ok(statuses.some((s) => s.startsWith("206 bytes=")), statuses.join(", "));
    } finally {
      await browser.close();
      await server.shutdown();
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
