// Line charts over uPlot (vendored, MIT): hover values in the legend, drag to zoom (double-click
// resets), optional log scale, several series on one x axis. The wrapper owns aligning series
// with different x values and telling the page when the person zoomed, so it can ask the
// server for finer points.

import {el} from './dom.js';

export const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#4b5563', '#ca8a04'];

/** Merges series with their own x values onto one sorted x axis (missing points are null). */
export function align(series) {
  const xs = [...new Set(series.flatMap((one) => one.x))].sort((left, right) => left - right);
  const position = new Map(xs.map((x, index) => [x, index]));
  const columns = series.map((one) => {
    const column = new Array(xs.length).fill(null);
    one.x.forEach((x, index) => { column[position.get(x)] = one.y[index]; });
    return column;
  });
  return [xs, ...columns];
}

/**
 * Draws `series` ([{label, x, y, color?, width?, dash?}]) into `container`.
 * Options: `time` (x is epoch ms), `log` (log y), `height`, `yLabel`, `onZoom(min, max)` (null,
 * null when zoomed back out), `onDraw()`.
 * Returns {chart, destroy()}.
 */
export function lineChart(container, series, options = {}) {
  const holder = el('div', {class: 'chart'});
  container.replaceChildren(holder);
  if (!window.uPlot) {
    holder.append(el('p', {class: 'muted'}, 'The chart library did not load.'));
    return {chart: null, destroy() {}};
  }
  if (!series.length || series.every((one) => one.x.length === 0)) {
    holder.append(el('p', {class: 'muted'}, 'No points in this range.'));
    return {chart: null, destroy() {}};
  }
  let data = align(series);
  if (options.time) data = [data[0].map((x) => x / 1000), ...data.slice(1)];
  let dropped = 0;
  if (options.log) {
    data = [data[0], ...data.slice(1).map((column) => column.map((value) => {
      if (value !== null && value <= 0) { dropped += 1; return null; }
      return value;
    }))];
  }
  const full = [data[0][0], data[0][data[0].length - 1]];
  let timer = null;
  const width = () => Math.max(320, (container.clientWidth || 900) - 8);
  const chart = new window.uPlot({
    width: width(),
    height: options.height || 280,
    scales: {x: {time: Boolean(options.time)}, y: options.log ? {distr: 3} : {}},
    axes: [{}, {label: options.yLabel || '', size: 64}],
    cursor: {drag: {x: true, y: false}},
    series: [
      {label: options.xLabel || (options.time ? 'time' : 'step')},
      ...series.map((one, index) => ({
        label: one.label,
        stroke: one.color || PALETTE[index % PALETTE.length],
        width: one.width || 1.5,
        dash: one.dash,
        spanGaps: true,
        show: one.show !== false,
        points: {show: false},
      })),
    ],
    hooks: {
      setScale: [(self, key) => {
        if (key !== 'x' || !options.onZoom) return;
        clearTimeout(timer);
        timer = setTimeout(() => {
          const {min, max} = self.scales.x;
          const zoomedOut = min <= full[0] && max >= full[1];
          const scale = options.time ? 1000 : 1;
          if (zoomedOut) options.onZoom(null, null); else options.onZoom(min * scale, max * scale);
        }, 150);
      }],
      draw: [() => options.onDraw && options.onDraw()],
    },
  }, data, holder);
  if (dropped) holder.append(el('p', {class: 'muted small'}, `${dropped} points at or below zero are not drawn on the log scale.`));
  const resize = () => chart.setSize({width: width(), height: options.height || 280});
  window.addEventListener('resize', resize);
  return {chart, destroy() { window.removeEventListener('resize', resize); chart.destroy(); }};
}
