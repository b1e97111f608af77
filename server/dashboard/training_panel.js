/**
 * The training panel: the rounds this node coordinates (held-out bits per byte round by round,
 * who was left out and why) and this node's own local run (its loss, step by step). Drawn from
 * the snapshot's `training` (`TrainingView` in `server/dashboard_routes.ts`); hidden when the
 * node takes no part in training.
 *
 * @module
 */
import { lineChart } from "./charts.js";

/** `1 round`, `2 rounds`. */
const count = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;

/**
 * A round's held-out bits per byte: absent when the round was not evaluated, `null` when the
 * figure was not finite (JSON has no NaN: a diverged model's loss).
 */
const heldOut = (bits) =>
  bits === undefined ? "–" : Number.isFinite(bits) ? bits.toFixed(3) : "not finite";

/**
 * Which text the rounds are evaluated on (`TrainingView.coordinator.heldOut`): a private file is
 * named by its size only; the public split is flagged, every trainer can read it.
 */
const heldOutSource = (h) =>
  !h
    ? ""
    : h.kind === "private_file"
    ? `, evaluated on a private held-out file (${h.bytes} bytes)`
    : `, evaluated on the public Brown held-out split (trainers can read it: see --held-out)`;

/**
 * A round's left-out trainers: every one counted by reason, then the few the view names (a row
 * from an older node has no counts: its names only).
 */
const leftOut = (r) => {
  const named = r.excluded.map((e) => `${e.key.slice(0, 10)}… (${e.reason})`).join(", ");
  const counts = r.excludedCounts ?? [];
  if (counts.length === 0) return named || "–";
  const total = counts.reduce((n, c) => n + c.count, 0);
  const shown = counts.map((c) => `${c.count} ${c.reason}`).join(", ");
  return `${total} left out: ${shown}` + (named ? `; e.g. ${named}` : "");
};

/**
 * @param {{ panel: HTMLElement, roundsChart: HTMLElement, stepsChart: HTMLElement,
 *   summary: HTMLElement, rounds: HTMLElement }} hosts
 */
export function trainingPanel(hosts) {
  const roundsChart = lineChart(hosts.roundsChart, {
    series: [{ name: "held-out", color: "#3fb68b" }],
    unit: " bits/byte",
    keep: 200,
    fit: true,
  });
  const stepsChart = lineChart(hosts.stepsChart, {
    series: [{ name: "local training loss", color: "#5aa7f0" }],
    unit: " bits/byte",
    keep: 1000,
    fit: true,
  });
  return {
    /** @param {any} training the snapshot's `training` (null: no part in training) */
    render(training) {
      hosts.panel.hidden = !training;
      if (!training) return;
      const c = training.coordinator;
      const t = training.trainer;
      hosts.roundsChart.hidden = !c;
      hosts.stepsChart.hidden = !t;
      if (c) {
        roundsChart.set([[c.initialBitsPerByte, ...c.rounds.map((r) => r.bitsPerByte)]]);
      }
      if (t) stepsChart.set([t.losses]);
      const parts = [];
      if (c) {
        parts.push(
          `coordinating: round ${c.round}, ${count(c.trainers, "trainer")}, model ${
            c.model.slice(0, 14)
          }…` +
            (c.convicted.length ? `, ${c.convicted.length} convicted` : "") +
            (c.unbacked ? `, ${count(c.unbacked, "joiner")} without stake for a seat` : "") +
            heldOutSource(c.heldOut),
        );
      }
      if (t) {
        const now = t.current
          ? `training round ${t.current.round}: step ${t.current.step}/${t.current.steps}`
          : "waiting for a round";
        parts.push(
          `trainer: ${now}; ${count(t.rounds, "round")} trained, ` +
            `${count(t.challenges, "challenge")} answered`,
        );
      }
      hosts.summary.textContent = parts.join(" · ");
      const rows = (c?.rounds ?? []).slice(-20).reverse().map((r) => {
        const row = document.createElement("tr");
        const cell = (text, className) => {
          const td = document.createElement("td");
          td.textContent = text;
          if (className) td.className = className;
          row.append(td);
        };
        cell(String(r.round));
        cell(r.model.slice(0, 14) + "…", "mono");
        cell(heldOut(r.bitsPerByte));
        cell(String(r.accepted));
        cell(leftOut(r), r.excluded.length || r.excludedCounts?.length ? "bad" : undefined);
        return row;
      });
      hosts.rounds.replaceChildren(...rows);
    },
  };
}
