/**
 * The simulation's figures as a person reads them: the four the issue asks for (messages per
 * job, time for a verdict to reach every node, repair traffic after storage nodes leave, memory
 * per node), each with the reference it should be judged against — the frames the flood
 * algorithm implies, the hops a latency would multiply, the bytes an ideal repair sends.
 *
 * @module
 */
import type { FloodReport, SimulationReport } from "./simulation.ts";

/** The report as aligned text lines (see the module doc). */
export function formatReport(report: SimulationReport): string {
  const { options, topology, job, receipt, verdict, storage, memory } = report;
  const lines: string[] = [];
  const row = (label: string, value: string) => lines.push(`${label.padEnd(34)}${value}`);
  const verdicts = options.challengers;
  lines.push(
    `Veriflow simulation: ${topology.nodes} nodes, ${topology.edges} links (mean degree ${
      topology.meanDegree.toFixed(1)
    }), seed ${options.seed}, stake ${
      options.stake === "global" ? "known in every ledger" : "pledged to direct peers only"
    }`,
  );
  row("built and connected in", seconds(report.buildMs));
  lines.push("");
  row(
    "Messages per job",
    `${count(job.total.frames)} frames, ${megabytes(job.total.bytes)} ` +
      `(${(job.total.frames / topology.nodes).toFixed(1)} per node)`,
  );
  row(
    "  job + receipt flood",
    `${count(job.receiptPhase.frames)} frames, ${megabytes(job.receiptPhase.bytes)} ` +
      `(the flood alone: ${count(job.expected.receiptFlood)} = 2 × (2·links − nodes))`,
  );
  row(
    `  verdict flood (${verdicts} verdict${verdicts === 1 ? "" : "s"})`,
    `${count(job.verdictPhase.frames)} frames, ${megabytes(job.verdictPhase.bytes)} ` +
      `(${count(job.expected.verdictFlood)} = 2·links − nodes + 1 per verdict, each after its ` +
      `author's stake pledge: at most as many again)`,
  );
  row(
    "  copies received by validators",
    `${count(job.receiptCopies)} receipts (the requester's own, from the job's stream, among ` +
      `them), ${count(job.verdictCopies)} verdicts ` +
      `(refused: ${job.refused.receipts} receipts, ${job.refused.verdicts} verdicts)`,
  );
  row("Receipt reaches every ledger", flood(receipt, topology.nodes, "the requester"));
  row(
    verdicts === 1 ? "Verdict reaches every ledger" : "Verdicts reach every ledger",
    flood(verdict, topology.nodes, verdicts === 1 ? "the challenger" : "the farthest challenger"),
  );
  lines.push(
    `${"".padEnd(34)}(both rows: message handling in one process, no link latency: add ` +
      `${receipt.hops} × L and ${verdict.hops} × L for a per-hop latency L)`,
  );
  if (storage !== undefined) {
    lines.push(
      `Repair after ${storage.departed} of ${storage.storageNodes} storage nodes leave ` +
        `(${count(storage.chunks)} chunks × ${
          storage.chunkBytes / 1024
        } KiB, r = ${storage.replicas})`,
    );
    row(
      "  lost copies",
      `${count(storage.lostCopies)} in ${count(storage.affectedChunks)} chunks: ideal ${
        megabytes(storage.idealBytes)
      }`,
    );
    const ratio = (bytes: number) =>
      storage.idealBytes > 0 ? `${(bytes / storage.idealBytes).toFixed(2)} × ideal` : "—";
    row(
      "  repair of the affected chunks",
      `${megabytes(storage.targeted.bytes)}, ${count(storage.targeted.frames)} frames (${
        ratio(storage.targeted.bytes)
      }), ${count(storage.targeted.repaired)} copies written, ${seconds(storage.targeted.ms)}`,
    );
    row(
      "  then a pass over every chunk",
      `${megabytes(storage.full.bytes)}, ${count(storage.full.frames)} frames, ${
        count(storage.full.repaired)
      } more copies written, ${seconds(storage.full.ms)}`,
    );
    row(
      "  chunks short of r after repair",
      `${storage.underReplicated} (of which lost with every copy: ${storage.targeted.lost})`,
    );
  }
  row(
    "Memory per node",
    `${kilobytes(memory.rssPerNode)} resident, ${kilobytes(memory.heapPerNode)} JS heap` +
      (memory.gc ? "" : " (no forced GC: run with --v8-flags=--expose-gc for steadier figures)"),
  );
  row("Total", seconds(report.totalMs));
  return lines.join("\n");
}

function flood(f: FloodReport, nodes: number, origin: string): string {
  if (f.reached === 0) return `0/${nodes} ledgers`;
  return `${f.reached}/${nodes} in ${seconds(f.allMs)} (median ${seconds(f.medianMs)}, p90 ${
    seconds(f.p90Ms)
  }; ${f.hops} hops from ${origin})`;
}

function count(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function kilobytes(bytes: number): string {
  return `${Math.round(bytes / 1e3)} kB`;
}
