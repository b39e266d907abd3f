// Datasets: every dataset's versions (by content hash); one version's schema, profile (histograms
// and category frequencies) and validation results.

import {ui} from '../api.js';
import {badge, el, link, replace, section, table} from '../dom.js';
import {number, percent, time} from '../format.js';
import {eventRows} from './events.js';

const enc = encodeURIComponent;

async function list(context) {
  const {datasets} = await ui('datasets');
  if (!context.current()) return;
  replace(context.main, el('h1', {}, 'Datasets'),
    datasets.length ? datasets.map((dataset) => section(dataset.name, table(['version', 'rows', 'columns', 'source', 'ingested'], dataset.versions.map((version) => [
      link(`/ui/datasets/${enc(dataset.name)}/${enc(version.version)}`, version.version.slice(0, 12)),
      number(version.rows), String(version.columns), el('span', {class: 'mono small'}, version.source), time(version.created_ms),
    ]), {'data-dataset': dataset.name})))
      : section('No datasets yet', el('p', {}, 'Ingest one with ', el('code', {}, 'causeway ingest FILE --dataset NAME'), '.')));
  context.ready('datasets');
}

function bars(counts) {
  const largest = Math.max(1, ...counts);
  return el('div', {class: 'bars', title: counts.join(' · ')}, counts.map((count) => {
    const bar = el('span', {});
    bar.style.height = `${Math.max(2, Math.round((count / largest) * 100))}%`;
    return bar;
  }));
}

function columnRows(profile) {
  return profile.columns.map((column) => {
    const total = column.count + column.nulls;
    let shape = '—';
    let summary = '';
    if (column.numeric) {
      shape = bars(column.numeric.histogram.counts);
      summary = `min ${number(column.numeric.min)} · mean ${number(column.numeric.mean)} · max ${number(column.numeric.max)} · sd ${number(column.numeric.std)}`;
    } else if (column.categories) {
      const top = Object.entries(column.categories).sort((left, right) => right[1] - left[1]).slice(0, 5);
      shape = bars(top.map(([, count]) => count));
      summary = top.map(([value, count]) => `${value} ${percent(count / Math.max(1, column.count))}`).join(' · ');
    }
    return [el('strong', {}, column.name), column.dtype, percent(total ? column.nulls / total : 0), shape, el('span', {class: 'small'}, summary)];
  });
}

export async function render(context) {
  if (context.name === 'datasets') return list(context);
  const {name, version} = context.params;
  const answer = await ui(`datasets/${enc(name)}/${enc(version)}`);
  if (!context.current()) return;
  const dataset = answer.dataset;
  const validations = answer.events.filter((event) => event.details && (event.details.version === dataset.version || String(event.message).includes(dataset.version.slice(0, 12))));
  replace(context.main,
    el('div', {class: 'spread'}, el('h1', {}, `${name} `, el('span', {class: 'mono small muted'}, dataset.version.slice(0, 12))), link('/ui/datasets', 'all datasets')),
    el('div', {class: 'grid'},
      section('Version', table(['', ''], [['content hash', el('span', {class: 'mono small'}, dataset.version)], ['rows', number(dataset.rows)], ['source', dataset.source], ['ingested', time(dataset.created_ms)], ['stored as', el('span', {class: 'mono small'}, dataset.blob_key)]], {class: 'kv'})),
      section('Schema', table(['column', 'type', 'nullable'], dataset.schema.fields.map((field) => [field.name, field.dtype, field.nullable ? 'yes' : badge('no')]), {id: 'schema'}))),
    section('Profile', answer.profile ? el('div', {class: 'table-wrap'}, table(['column', 'type', 'nulls', 'distribution', 'summary'], columnRows(answer.profile), {id: 'profile'})) : el('p', {class: 'muted'}, 'No profile stored.')),
    section('Validation and data events', (validations.length ? validations : answer.events).length
      ? table(['when', 'kind', 'subject', 'actor', 'what'], eventRows(validations.length ? validations : answer.events), {id: 'validation'})
      : el('p', {class: 'muted'}, 'No data events for this dataset.')));
  context.ready('dataset');
}
