// One run: what it is and what reproduces it (seed, dataset version, git commit, environment),
// parameters, metrics with their curves, tags, dataset inputs, child runs and its artifacts with
// previews of text, JSON, tables, images and HTML.

import {artifact, mlflow, ui} from '../api.js';
import {badge, el, link, replace, section, table} from '../dom.js';
import {lineChart} from '../chart.js';
import {duration, number, time} from '../format.js';
import {flatten} from './runs.js';

const TEXT = /\.(txt|log|md|py|yaml|yml|toml|cfg|ini|sh|json|csv|tsv|mlmodel|MLmodel|requirements|conda)$|^(MLmodel|requirements\.txt|conda\.yaml)$/i;
const IMAGE = /\.(png|jpe?g|gif|svg|webp)$/i;
const PREVIEW_BYTES = 1 << 20;

/**
 * A metric chart with its controls: x axis, log scale, smoothing; zooming asks the server for
 * the finer points of the range. `runs` is [{id, name}].
 */
export function metricChart(container, runs, key) {
  const state = {x: 'step', log: false, smoothing: 0, from: null, to: null};
  let drawn = null;
  const area = el('div', {'data-chart': key});
  const info = el('span', {class: 'muted small', 'data-field': 'points'});
  const draw = async () => {
    const parameters = new URLSearchParams({runs: runs.map((run) => run.id).join(','), key, x: state.x, points: String(Math.min(3000, Math.round((area.clientWidth || 900) * 1.5)))});
    if (state.smoothing > 0) parameters.set('smoothing', String(state.smoothing));
    if (state.from !== null) parameters.set('from', String(state.from));
    if (state.to !== null) parameters.set('to', String(state.to));
    const answer = await ui(`series?${parameters}`);
    const names = Object.fromEntries(runs.map((run) => [run.id, run.name]));
    const series = [];
    answer.series.forEach((one, index) => {
      const label = names[one.run_id] || one.run_id.slice(0, 8);
      if (one.smooth) {
        series.push({label: `${label} (raw)`, x: one.x, y: one.y, width: 1, colorIndex: index, faded: true});
        series.push({label, x: one.x, y: one.smooth, width: 2, colorIndex: index});
      } else {
        series.push({label, x: one.x, y: one.y, colorIndex: index});
      }
    });
    const palette = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#4b5563', '#ca8a04'];
    for (const one of series) one.color = `${palette[one.colorIndex % palette.length]}${one.faded ? '55' : ''}`;
    if (drawn) drawn.destroy();
    const zoomed = state.from !== null;
    drawn = lineChart(area, series, {
      time: state.x === 'time', log: state.log, xLabel: state.x === 'relative' ? 'seconds' : state.x,
      onZoom: (from, to) => {
        if (from === null && !zoomed) return;
        state.from = from; state.to = to; draw();
      },
      onDraw: () => { area.dataset.drawn = 'true'; performance.mark('chart-drawn'); },
    });
    info.textContent = `${number(answer.returned)} of ${number(answer.total_points)} points drawn${zoomed ? ' (zoomed; double-click to reset)' : ''}`;
    area.dataset.returned = answer.returned;
    area.dataset.total = answer.total_points;
  };
  const axis = el('select', {'aria-label': 'x axis', onchange: (event) => { state.x = event.target.value; state.from = state.to = null; draw(); }},
    [['step', 'step'], ['time', 'wall time'], ['relative', 'relative time']].map(([value, label]) => el('option', {value}, label)));
  const log = el('input', {type: 'checkbox', 'data-control': 'log', onchange: (event) => { state.log = event.target.checked; draw(); }});
  const smoothing = el('input', {type: 'range', min: '0', max: '0.99', step: '0.01', value: '0', 'data-control': 'smoothing', onchange: (event) => { state.smoothing = Number(event.target.value); draw(); }});
  replace(container,
    el('div', {class: 'chart-controls'}, el('strong', {}, key), el('label', {class: 'inline'}, 'x ', axis), el('label', {class: 'inline'}, log, ' log scale'),
      el('label', {class: 'inline'}, 'smoothing ', smoothing), info),
    area);
  return draw();
}

async function preview(runId, path, into) {
  replace(into, el('p', {class: 'muted'}, `Loading ${path}…`));
  const name = path.split('/').pop();
  if (/\.html?$/i.test(name)) {
    // A signed address valid a minute, served under its own policy: the report keeps its styles
    // (a blob: document would inherit this page's policy and lose them), its scripts never run.
    const {url} = await ui(`artifact-preview?${new URLSearchParams({run_id: runId, path})}`);
    const frame = el('iframe', {class: 'preview-html', sandbox: '', title: path, src: url, 'data-preview': path});
    replace(into, el('p', {class: 'muted small'}, 'Rendered in a sandbox: its scripts do not run.'), frame);
    return;
  }
  const blob = await artifact(runId, path);
  if (IMAGE.test(name)) {
    replace(into, el('img', {class: 'preview-image', alt: path, src: URL.createObjectURL(blob)}));
  } else if (TEXT.test(name) || blob.size < 64 * 1024) {
    let text = await blob.slice(0, PREVIEW_BYTES).text();
    if (/\.json$/i.test(name)) { try { text = JSON.stringify(JSON.parse(text), null, 2); } catch { /* shown as it is */ } }
    if (/\.(csv|tsv)$/i.test(name)) {
      const separator = name.toLowerCase().endsWith('.tsv') ? '\t' : ',';
      const lines = text.split('\n').filter(Boolean).slice(0, 200).map((line) => line.split(separator));
      replace(into, el('div', {class: 'table-wrap'}, table(lines[0] || [], lines.slice(1))));
      return;
    }
    replace(into, el('pre', {class: 'preview', 'data-preview': path}, text, blob.size > PREVIEW_BYTES ? `\n… (${number(blob.size)} bytes; the first 1 MiB shown)` : ''));
  } else {
    replace(into, el('p', {}, `${path}: ${number(blob.size)} bytes, no preview. `, el('a', {href: URL.createObjectURL(blob), download: name}, 'Download')));
  }
}

async function artifactTree(runId, path, into, viewer) {
  const answer = await mlflow(`artifacts/list?${new URLSearchParams({run_id: runId, path})}`);
  const files = answer.files || [];
  if (!files.length && !path) { replace(into, el('p', {class: 'muted'}, 'No artifacts.')); return; }
  replace(into, el('ul', {class: 'tree'}, files.map((file) => {
    const name = file.path.split('/').pop();
    if (file.is_dir) {
      const children = el('div', {});
      let open = false;
      return el('li', {}, el('button', {class: 'link', onclick: async () => {
        open = !open;
        if (open) await artifactTree(runId, file.path, children, viewer); else children.replaceChildren();
      }}, `▸ ${name}/`), children);
    }
    return el('li', {}, el('button', {class: 'link', 'data-artifact': file.path, onclick: () => preview(runId, file.path, viewer).catch((error) => replace(viewer, el('p', {class: 'error-text'}, error.message)))}, name),
      el('span', {class: 'muted small'}, file.file_size !== undefined ? ` ${number(Number(file.file_size))} B` : ''));
  })));
}

export async function render(context) {
  const runId = context.params.id;
  const [answer, reproduction] = await Promise.all([
    mlflow(`runs/get?run_id=${encodeURIComponent(runId)}`),
    ui(`runs/${encodeURIComponent(runId)}`),
  ]);
  if (!context.current()) return;
  const run = flatten(answer.run);
  const record = reproduction.run;
  const tag = (key) => run.tags[key];
  const children = await mlflow('runs/search', {experiment_ids: [run.experiment], filter: `tags.mlflow.parentRunId = '${runId.replace(/'/g, '')}'`, max_results: 200});
  const metricKeys = Object.keys(run.metrics).sort();
  const childRuns = (children.runs || []).map(flatten);
  // The children's own metrics (a search's parent often logs none), the first four by name.
  const childKeys = [...new Set(childRuns.flatMap((child) => Object.keys(child.metrics)))].sort().slice(0, 4);
  const chartArea = el('div', {id: 'metric-chart'});
  const viewer = el('div', {id: 'artifact-preview'});
  const tree = el('div', {id: 'artifacts'});
  const reproducibility = [
    ['dataset version', record ? record.dataset : (run.inputs.map((input) => `${input.dataset.name}@${input.dataset.digest}`).join(', ') || '—')],
    ['seed', record ? String(record.seed) : (run.params.seed || run.params.random_state || '—')],
    ['git commit', (record && record.git_commit) || tag('mlflow.source.git.commit') || '—'],
    ['source', tag('mlflow.source.name') || '—'],
    ['environment', record ? `causeway ${record.tool_version}` : (tag('mlflow.source.type') || '—')],
    ['user', run.user || tag('mlflow.user') || '—'],
  ];
  replace(context.main,
    el('div', {class: 'spread'},
      el('h1', {}, run.name, ' ', el('span', {class: `badge ${run.status === 'FINISHED' ? 'good' : run.status === 'FAILED' ? 'bad' : 'accent'}`}, (run.status || '').toLowerCase())),
      el('span', {class: 'muted small'}, link(`/ui/experiments/${encodeURIComponent(run.experiment)}`, 'experiment'), ` · run ${run.id} · started ${time(run.start)}${run.end ? ` · took ${duration(run.end - run.start)}` : ''}`)),
    el('div', {class: 'grid'},
      section('Reproducibility', table(['', ''], reproducibility, {class: 'kv', id: 'reproducibility'})),
      section('Parameters', Object.keys(run.params).length
        ? table(['parameter', 'value'], Object.entries(run.params).sort().map(([key, value]) => [key, el('span', {class: 'mono'}, value)]), {id: 'params'})
        : el('p', {class: 'muted'}, 'No parameters.'))),
    section('Metrics', metricKeys.length
      ? [table(['metric', 'latest', ''], metricKeys.map((key) => [key, number(run.metrics[key]),
        el('button', {class: 'link', 'data-metric': key, onclick: () => metricChart(chartArea, [{id: run.id, name: run.name}], key)}, 'chart')]), {id: 'metrics'}), chartArea]
      : el('p', {class: 'muted'}, 'No metrics.')),
    section('Artifacts', el('div', {class: 'grid'}, tree, viewer)),
    section('Dataset inputs', run.inputs.length
      ? table(['name', 'digest', 'context', 'source'], run.inputs.map((input) => [input.dataset.name, el('span', {class: 'mono'}, input.dataset.digest),
        ((input.tags || []).find((item) => item.key === 'mlflow.data.context') || {}).value || '—', input.dataset.source_type || '—']), {id: 'inputs'})
      : el('p', {class: 'muted'}, 'No dataset inputs logged.')),
    section(`Child runs (${childRuns.length})`, childRuns.length
      ? table(['run', 'status', ...childKeys], childRuns.map((child) => [link(`/ui/runs/${encodeURIComponent(child.id)}`, child.name), badge((child.status || '').toLowerCase()), ...childKeys.map((key) => number(child.metrics[key]))]), {id: 'children'})
      : el('p', {class: 'muted'}, 'None (search trials appear here).')),
    section('Tags', table(['tag', 'value'], Object.entries(run.tags).sort().map(([key, value]) => [key, el('span', {class: 'mono small'}, value)]))));
  await artifactTree(runId, '', tree, viewer).catch((error) => replace(tree, el('p', {class: 'error-text'}, error.message)));
  if (metricKeys.length) await metricChart(chartArea, [{id: run.id, name: run.name}], metricKeys.includes(context.query.get('metric')) ? context.query.get('metric') : metricKeys[0]);
  context.ready('run');
}
