// Monitoring: per model over time, drift of every feature and of the score (PSI, KS), live
// metrics per version as labels arrive, traffic, latency and error rates, and the alerts'
// history — the windows the loop's rules judged, from the stored summaries.

import {ui} from '../api.js';
import {el, link, replace, section, table} from '../dom.js';
import {lineChart} from '../chart.js';
import {duration, number} from '../format.js';
import {eventRows} from './events.js';

const enc = encodeURIComponent;

async function list(context) {
  const {models} = await ui('models');
  if (!context.current()) return;
  replace(context.main, el('h1', {}, 'Monitoring'),
    section('Models', models.length ? table(['model', 'champion'], models.map((model) => [link(`/ui/monitoring/${enc(model.model)}`, model.model), model.champion ? `v${model.champion}` : '—']), {id: 'monitored'})
      : el('p', {class: 'muted'}, 'No registered models yet.')));
  context.ready('monitoring-list');
}

function chartSection(title, id, draw) {
  const area = el('div', {id});
  const holder = section(title, area);
  return {holder, draw: () => draw(area)};
}

export async function render(context) {
  if (context.name === 'monitoring-list') return list(context);
  const model = context.params.model;
  const query = context.query;
  const parameters = new URLSearchParams({points: '240'});
  if (query.get('from')) parameters.set('from', query.get('from'));
  if (query.get('to')) parameters.set('to', query.get('to'));
  const answer = await ui(`monitoring/${enc(model)}?${parameters}`);
  if (!context.current()) return;
  const series = answer.series;
  const versions = series.versions;
  const zoom = (from, to) => { context.setQuery({from: from === null ? null : Math.floor(from), to: to === null ? null : Math.ceil(to)}, {push: true}); context.refresh(); };
  const options = {time: true, onZoom: zoom, height: 220};
  const perVersion = (value) => versions.map((one) => ({label: `v${one.version}`, x: one.points.map((point) => point.start_ms), y: one.points.map(value)}));
  const champion = versions.reduce((best, one) => (!best || one.points.length > best.points.length ? one : best), null);
  const metricKeys = [...new Set(versions.flatMap((one) => one.points.flatMap((point) => Object.keys((point.outcomes && point.outcomes.metrics) || {}))))].sort();
  const featureChoice = el('select', {'aria-label': 'version for drift'}, versions.map((one) => el('option', {value: one.version, selected: champion && one.version === champion.version}, `v${one.version}`)));
  const preferred = ['roc_auc', 'recall', 'accuracy', 'rmse'].find((key) => metricKeys.includes(key)) || metricKeys[0];
  const metricChoice = el('select', {'aria-label': 'live metric'}, metricKeys.map((key) => el('option', {value: key, selected: key === preferred}, key)));
  const statisticChoice = el('select', {'aria-label': 'drift statistic'}, [['psi', 'PSI'], ['ks', 'KS distance (numeric features)']].map(([value, label]) => el('option', {value}, label)));
  const drift = chartSection('Drift per feature against the version\'s baseline', 'drift-chart', (area) => {
    const chosen = versions.find((one) => String(one.version) === featureChoice.value) || champion;
    if (!chosen) return lineChart(area, [], options);
    const statistic = statisticChoice.value;
    area.dataset.statistic = statistic;
    const withDrift = chosen.points.filter((point) => point.drift);
    const value = (drifted) => (drifted && drifted[statistic] !== null && drifted[statistic] !== undefined ? drifted[statistic] : null);
    const lines = series.features.map((name, index) => ({label: name, x: withDrift.map((point) => point.start_ms), y: withDrift.map((point) => value(point.drift.features[index]))}))
      .filter((line) => statistic === 'psi' || line.y.some((one) => one !== null));
    // The eight features that drifted most are drawn; the others are one click away in the legend.
    const largest = (line) => Math.max(0, ...line.y.filter((value) => value !== null));
    const shown = new Set([...lines].sort((left, right) => largest(right) - largest(left)).slice(0, 8).map((line) => line.label));
    for (const line of lines) line.show = shown.has(line.label);
    lines.push({label: 'score', x: withDrift.map((point) => point.start_ms), y: withDrift.map((point) => value(point.drift.score)), width: 2.5, dash: [6, 4]});
    return lineChart(area, lines, {...options, yLabel: statistic === 'psi' ? 'PSI' : 'KS'});
  });
  const live = chartSection('Live metrics per version (labelled predictions)', 'live-chart', (area) => lineChart(area,
    perVersion((point) => (point.outcomes && point.outcomes.metrics[metricChoice.value] !== undefined ? point.outcomes.metrics[metricChoice.value] : null)), {...options, yLabel: metricChoice.value || ''}));
  const traffic = chartSection('Predictions per interval', 'traffic-chart', (area) => lineChart(area, perVersion((point) => point.predictions), {...options, yLabel: 'predictions'}));
  const latency = chartSection('Scoring latency (ms): p50 solid, p99 dashed', 'latency-chart', (area) => lineChart(area, [
    ...perVersion((point) => point.latency_p50_ms).map((line) => ({...line, label: `${line.label} p50`})),
    ...perVersion((point) => point.latency_p99_ms).map((line, index) => ({...line, label: `${line.label} p99`, dash: [5, 4], colorIndex: index})),
  ], {...options, yLabel: 'ms'}));
  const errors = chartSection('Error rate (requests the replicas failed)', 'errors-chart', (area) => lineChart(area,
    perVersion((point) => (point.requests ? point.errors / point.requests : null)), {...options, yLabel: 'share'}));
  featureChoice.addEventListener('change', () => drift.draw());
  statisticChoice.addEventListener('change', () => drift.draw());
  metricChoice.addEventListener('change', () => live.draw());
  drift.holder.insertBefore(el('div', {class: 'row small'}, 'version ', featureChoice, ' statistic ', statisticChoice), drift.holder.children[1]);
  if (metricKeys.length) live.holder.insertBefore(el('div', {class: 'row small'}, 'metric ', metricChoice), live.holder.children[1]);
  const empty = versions.length === 0;
  replace(context.main,
    el('div', {class: 'spread'}, el('h1', {}, `Monitoring of ${model}`),
      el('div', {class: 'row small'}, el('span', {class: 'muted'}, empty ? 'no traffic summarised yet' : `intervals of ${duration(series.step_ms)}`),
        query.get('from') ? el('button', {onclick: () => zoom(null, null)}, 'Show everything') : null,
        link(`/ui/loop/${enc(model)}`, 'loop'), link(`/ui/models/${enc(model)}`, 'versions'))),
    empty ? section('No data yet', el('p', {}, 'The loop summarises the prediction log as it arrives: serve the model (', el('code', {}, 'causeway serve'), ') and run the loop (', el('code', {}, 'causeway loop run'), ').')) : null,
    empty ? null : [drift.holder, live.holder, el('div', {class: 'grid'}, traffic.holder, latency.holder), errors.holder],
    section('Alerts', answer.alerts.length ? table(['when', 'kind', 'subject', 'actor', 'what'], eventRows(answer.alerts), {id: 'alerts'}) : el('p', {class: 'muted'}, 'No alert has fired.')));
  if (!empty) {
    drift.draw(); live.draw(); traffic.draw(); latency.draw(); errors.draw();
  }
  context.ready('monitoring');
}
