/**
 * A small live line chart in SVG: a few series over time, no library. The dashboard calls
 * `update` with fresh points; the chart keeps the last `keep` of them.
 *
 * @module
 */
const SVG = "http://www.w3.org/2000/svg";

/**
 * @param {Element} host Where the chart goes (emptied).
 * @param {{series: {name: string, color: string}[], keep?: number, unit?: string,
 *   fit?: boolean}} options `fit`: spread the points present over the width (a chart of a few
 *   rounds), instead of one slot per kept point (a chart that scrolls in time)
 */
export function lineChart(host, options) {
  const keep = options.keep ?? 120;
  const width = 320;
  const height = 110;
  const pad = 4;
  host.replaceChildren();
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "chart");
  const paths = options.series.map((s) => {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", s.color);
    path.setAttribute("stroke-width", "1.6");
    svg.append(path);
    return path;
  });
  const label = document.createElement("div");
  label.className = "chart-label";
  host.append(svg, label);
  /** @type {number[][]} */
  let points = options.series.map(() => []);
  return {
    /**
     * Replace all points; a value that is not a finite number (`null`: a NaN or infinity in
     * JSON) is no point, as in `push`. @param {(number|null)[][]} values one array per series
     */
    set(values) {
      points = values.map((v) => v.filter(Number.isFinite).slice(-keep));
      this.draw();
    },
    /** Add one point per series (undefined: no point). @param {(number|undefined)[]} values */
    push(values) {
      values.forEach((v, i) => {
        if (v === undefined || !Number.isFinite(v)) return;
        points[i].push(v);
        if (points[i].length > keep) points[i].shift();
      });
      this.draw();
    },
    draw() {
      const all = points.flat();
      const max = Math.max(1e-9, ...all);
      const min = Math.min(0, ...all);
      const slots = options.fit ? Math.max(...points.map((p) => p.length)) : keep;
      paths.forEach((path, i) => {
        const p = points[i];
        const x = (j) => pad + (j / Math.max(1, slots - 1)) * (width - 2 * pad);
        const y = (v) => height - pad - ((v - min) / (max - min)) * (height - 2 * pad);
        path.setAttribute(
          "d",
          p.map((v, j) => `${j ? "L" : "M"}${x(j).toFixed(1)},${y(v).toFixed(1)}`).join(""),
        );
      });
      label.textContent = options.series.map((s, i) => {
        const last = points[i][points[i].length - 1];
        return `${s.name} ${last === undefined ? "–" : formatNumber(last)}${options.unit ?? ""}`;
      }).join(" · ");
    },
  };
}

/** @param {number} n */
export function formatNumber(n) {
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}
