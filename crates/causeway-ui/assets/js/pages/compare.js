// Two to ten runs side by side: parameters with the differing ones highlighted, latest metrics,
// and one metric's curves overlaid.

import {mlflow} from '../api.js';
import {el, link, replace, section} from '../dom.js';
import {number} from '../format.js';
import {metricChart} from './run.js';
import {flatten} from './runs.js';

export async function render(context) {
  const ids = (context.query.get('runs') || '').split(',').filter(Boolean);
  if (ids.length < 2 || ids.length > 10) {
    replace(context.main, el('h1', {}, 'Compare runs'), section('Pick runs', el('p', {}, 'Choose 2 to 10 runs in an experiment\'s run list, then Compare.')));
    context.ready('compare');
    return;
  }
  const runs = (await Promise.all(ids.map((id) => mlflow(`runs/get?run_id=${encodeURIComponent(id)}`)))).map((answer) => flatten(answer.run));
  if (!context.current()) return;
  const header = el('tr', {}, el('th', {}, ''), runs.map((run) => el('th', {}, link(`/ui/runs/${encodeURIComponent(run.id)}`, run.name))));
  const rowsOf = (kind, format) => [...new Set(runs.flatMap((run) => Object.keys(run[kind])))].sort().map((key) => {
    const values = runs.map((run) => run[kind][key]);
    const differs = new Set(values.map((value) => (value === undefined ? '\u0000' : String(value)))).size > 1;
    return el('tr', {class: differs ? 'differs' : null, 'data-key': key}, el('td', {}, key),
      values.map((value) => el('td', {class: kind === 'metrics' ? 'number' : 'mono'}, value === undefined ? '—' : format(value))));
  });
  const metricKeys = [...new Set(runs.flatMap((run) => Object.keys(run.metrics)))].sort();
  const chartArea = el('div', {id: 'metric-chart'});
  const chooser = el('select', {'aria-label': 'metric', onchange: (event) => metricChart(chartArea, runs, event.target.value)},
    metricKeys.map((key) => el('option', {value: key}, key)));
  // The differing parameters first; with many (autologging logs dozens), only those on request.
  const parameterRows = rowsOf('params', String);
  const differs = (row) => row.classList.contains('differs');
  const ordered = [...parameterRows.filter(differs), ...parameterRows.filter((row) => !differs(row))];
  const differing = ordered.filter(differs).length;
  const body = el('tbody', {}, ordered);
  const onlyDiffering = el('input', {type: 'checkbox', 'data-control': 'only-differing', onchange: (event) => {
    body.replaceChildren(...(event.target.checked ? ordered.filter(differs) : ordered));
  }});
  replace(context.main, el('h1', {}, `Compare ${runs.length} runs`),
    section(`Parameters (${differing} differ)`,
      el('label', {class: 'inline'}, onlyDiffering, ' only the differing ones'),
      el('div', {class: 'table-wrap'}, el('table', {id: 'compare-params'}, el('thead', {}, header.cloneNode(true)), body))),
    section('Metrics', el('div', {class: 'table-wrap'}, el('table', {id: 'compare-metrics'}, el('thead', {}, header), el('tbody', {}, rowsOf('metrics', number)))),
      metricKeys.length ? [el('div', {class: 'row'}, el('span', {}, 'Curves of'), chooser), chartArea] : null));
  if (metricKeys.length) await metricChart(chartArea, runs, metricKeys[0]);
  context.ready('compare');
}
