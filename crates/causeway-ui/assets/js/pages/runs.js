// Runs of one experiment, as MLflow's list: search with MLflow's filter syntax, sort by a
// column, choose columns, page through; pick 2–10 runs to compare. Every choice lives in the URL.

import {mlflow} from '../api.js';
import {el, link, replace, section} from '../dom.js';
import {duration, number, time} from '../format.js';

const PAGE_SIZE = 50;

/** The runs/search answer's run as {id, name, status, start, end, metrics, params, tags}. */
export function flatten(run) {
  const pairs = (list) => Object.fromEntries((list || []).map((item) => [item.key, item.value]));
  return {
    id: run.info.run_id,
    name: run.info.run_name || run.info.run_id.slice(0, 8),
    status: run.info.status,
    start: run.info.start_time,
    end: run.info.end_time,
    user: run.info.user_id,
    experiment: run.info.experiment_id,
    metrics: pairs(run.data && run.data.metrics),
    params: pairs(run.data && run.data.params),
    tags: pairs(run.data && run.data.tags),
    inputs: (run.inputs && run.inputs.dataset_inputs) || [],
  };
}

function statusBadge(status) {
  const kinds = {FINISHED: 'good', FAILED: 'bad', KILLED: 'bad', RUNNING: 'accent', SCHEDULED: ''};
  return el('span', {class: `badge ${kinds[status] || ''}`}, (status || '').toLowerCase());
}

function defaultColumns(runs) {
  const metrics = [...new Set(runs.flatMap((run) => Object.keys(run.metrics)))].sort().slice(0, 6);
  const params = [...new Set(runs.flatMap((run) => Object.keys(run.params)))].sort().slice(0, 6);
  return [...metrics.map((key) => `metrics.${key}`), ...params.map((key) => `params.${key}`)];
}

function cell(run, column) {
  const [kind, ...rest] = column.split('.');
  const key = rest.join('.');
  const value = kind === 'metrics' ? run.metrics[key] : kind === 'params' ? run.params[key] : run.tags[key];
  return kind === 'metrics' ? number(value) : (value === undefined ? '—' : value);
}

export async function render(context) {
  const experimentId = context.params.id;
  const query = context.query;
  const experiment = (await mlflow(`experiments/get?experiment_id=${encodeURIComponent(experimentId)}`)).experiment;
  const filter = query.get('filter') || '';
  const order = query.get('order') || '';
  const token = query.get('token') || '';
  const previous = (query.get('prev') || '').split(',').filter(Boolean);
  const input = el('input', {id: 'filter', class: 'filter', value: filter, placeholder: "metrics.rmse < 0.5 and params.model = 'gbdt'", 'aria-label': 'filter'});
  const errorLine = el('p', {class: 'error-text', id: 'filter-error'});
  const form = el('form', {class: 'row', onsubmit: (event) => {
    event.preventDefault();
    context.setQuery({filter: input.value.trim(), token: null, prev: null}, {push: true});
    context.refresh();
  }}, input, el('button', {type: 'submit', class: 'primary', 'data-action': 'search'}, 'Search'),
  filter ? el('button', {type: 'button', onclick: () => { context.setQuery({filter: null, token: null, prev: null}, {push: true}); context.refresh(); }}, 'Clear') : null);
  let page;
  try {
    page = await mlflow('runs/search', {
      experiment_ids: [experimentId], filter, order_by: order ? [order] : [], max_results: PAGE_SIZE,
      page_token: token || undefined,
    });
  } catch (error) {
    if (!context.current()) return;
    errorLine.textContent = error.message;
    replace(context.main, el('h1', {}, experiment.name), section('Search', form, errorLine));
    context.ready('runs');
    return;
  }
  if (!context.current()) return;
  const runs = (page.runs || []).map(flatten);
  const chosen = query.get('cols') ? query.get('cols').split(',').filter(Boolean) : defaultColumns(runs);
  const available = [...new Set([
    ...runs.flatMap((run) => Object.keys(run.metrics).map((key) => `metrics.${key}`)),
    ...runs.flatMap((run) => Object.keys(run.params).map((key) => `params.${key}`)),
    ...runs.flatMap((run) => Object.keys(run.tags).filter((key) => !key.startsWith('mlflow.')).map((key) => `tags.${key}`)),
    ...chosen,
  ])].sort();
  const [orderKey, orderDirection] = order ? [order.replace(/\s+(ASC|DESC)$/i, ''), /\sDESC$/i.test(order) ? 'DESC' : 'ASC'] : ['', ''];
  const sortable = (label, key) => {
    const sorted = orderKey === key;
    return el('th', {class: `sortable${sorted ? ' sorted' : ''}`, 'data-sort': key, onclick: () => {
      const direction = sorted && orderDirection === 'ASC' ? 'DESC' : 'ASC';
      context.setQuery({order: `${key} ${direction}`, token: null, prev: null}, {push: true});
      context.refresh();
    }}, label, sorted ? (orderDirection === 'ASC' ? ' ▲' : ' ▼') : '');
  };
  const picked = new Set();
  const compare = el('button', {'data-action': 'compare', disabled: true, onclick: () => context.navigate(`/ui/compare?runs=${[...picked].join(',')}`)}, 'Compare');
  const onPick = (event) => {
    if (event.target.checked) picked.add(event.target.dataset.run); else picked.delete(event.target.dataset.run);
    compare.disabled = picked.size < 2 || picked.size > 10;
    compare.textContent = picked.size ? `Compare ${picked.size}` : 'Compare';
  };
  const head = el('tr', {}, el('th', {}, ''), sortable('run', 'attributes.run_name'), el('th', {}, 'status'),
    sortable('started', 'attributes.start_time'), el('th', {}, 'duration'),
    chosen.map((column) => sortable(column.replace(/^(metrics|params|tags)\./, ''), column)));
  const body = runs.map((run) => el('tr', {'data-run': run.id},
    el('td', {}, el('input', {type: 'checkbox', class: 'pick', 'data-run': run.id, 'aria-label': `pick ${run.name}`, onchange: onPick})),
    el('td', {}, link(`/ui/runs/${encodeURIComponent(run.id)}`, run.name)),
    el('td', {}, statusBadge(run.status)),
    el('td', {class: 'mono small'}, time(run.start)),
    el('td', {class: 'number'}, run.end ? duration(run.end - run.start) : '—'),
    chosen.map((column) => el('td', {class: column.startsWith('metrics.') ? 'number' : ''}, cell(run, column)))));
  const chooser = el('details', {}, el('summary', {'data-action': 'columns'}, `Columns (${chosen.length})`),
    el('div', {class: 'columns-chooser'}, available.map((column) => el('label', {class: 'inline'},
      el('input', {type: 'checkbox', 'data-column': column, checked: chosen.includes(column), onchange: (event) => {
        const next = event.target.checked ? [...chosen, column] : chosen.filter((item) => item !== column);
        context.setQuery({cols: next.join(',') || null});
        context.refresh();
      }}), ` ${column}`, el('br', {})))));
  const first = previous.length * PAGE_SIZE + 1;
  const pager = el('div', {class: 'pager'},
    el('button', {'data-action': 'previous', disabled: previous.length === 0, onclick: () => {
      const back = previous.slice(0, -1);
      const last = previous[previous.length - 1];
      context.setQuery({token: last === '-' ? null : last, prev: back.join(',') || null}, {push: true});
      context.refresh();
    }}, '← Previous'),
    el('span', {class: 'muted', 'data-field': 'shown'}, runs.length ? `runs ${first}–${first + runs.length - 1}` : 'no runs'),
    el('button', {'data-action': 'next', disabled: !page.next_page_token, onclick: () => {
      context.setQuery({token: page.next_page_token, prev: [...previous, token || '-'].join(',')}, {push: true});
      context.refresh();
    }}, 'Next →'));
  replace(context.main,
    el('div', {class: 'spread'}, el('h1', {}, experiment.name), el('span', {class: 'muted small mono'}, `experiment ${experiment.experiment_id}`)),
    section('Search', form, errorLine, el('p', {class: 'muted small'}, 'MLflow filter syntax: ', el('code', {}, "metrics.auc > 0.9 and params.model = 'gbdt' and tags.team = 'risk'"), '.')),
    el('section', {class: 'card'},
      el('div', {class: 'spread'}, el('h2', {}, 'Runs'), el('div', {class: 'row'}, chooser, compare)),
      runs.length ? el('div', {class: 'table-wrap'}, el('table', {id: 'runs'}, el('thead', {}, head), el('tbody', {}, body)))
        : el('p', {class: 'muted'}, filter ? 'No run matches the filter.' : 'No runs in this experiment yet.'),
      pager));
  context.ready('runs');
}
