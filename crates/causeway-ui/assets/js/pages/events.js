// Events: the audit log (who changed what, when, and why), filterable by kind, subject, actor
// and text, paged by id.

import {ui} from '../api.js';
import {badge, el, link, replace, section, table} from '../dom.js';
import {time} from '../format.js';

const KINDS = ['', 'audit', 'loop', 'alert', 'resolved', 'data'];

function subjectLink(subject) {
  const model = subject.split('/')[0];
  return link(`/ui/events?subject=${encodeURIComponent(subject)}`, subject || model);
}

/** Table rows for events. */
export function eventRows(events) {
  const kinds = {alert: 'bad', resolved: 'good', loop: 'accent', audit: '', data: 'warn'};
  return events.map((event) => [
    el('span', {class: 'mono small', title: `event ${event.id}`}, time(event.at_ms)),
    badge(event.kind, kinds[event.kind] || ''),
    subjectLink(event.subject),
    event.actor,
    event.message,
  ]);
}

export async function render(context) {
  const query = context.query;
  const form = el('form', {class: 'row', onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(form);
    context.navigate(`/ui/events?${new URLSearchParams([...data.entries()].filter(([, value]) => value))}`);
  }},
  el('select', {name: 'kind', 'aria-label': 'kind'}, KINDS.map((kind) => el('option', {value: kind, selected: query.get('kind') === kind}, kind || 'every kind'))),
  el('input', {name: 'subject', placeholder: 'subject (model, model/feature)', value: query.get('subject') || ''}),
  el('input', {name: 'actor', placeholder: 'actor', value: query.get('actor') || ''}),
  el('input', {name: 'q', placeholder: 'text', value: query.get('q') || ''}),
  el('button', {type: 'submit', class: 'primary'}, 'Filter'));
  const body = el('tbody', {});
  const more = el('div', {class: 'pager'});
  const list = el('table', {id: 'events'}, el('thead', {}, el('tr', {}, ['when', 'kind', 'subject', 'actor', 'what'].map((header) => el('th', {}, header)))), body);
  replace(context.main, el('h1', {}, 'Events'), section('Filter', form), section('Audit log', el('div', {class: 'table-wrap'}, list), more));
  const load = async (before) => {
    const parameters = new URLSearchParams();
    for (const key of ['kind', 'subject', 'actor', 'q']) if (query.get(key)) parameters.set(key, query.get(key));
    if (before) parameters.set('before', before);
    parameters.set('limit', '100');
    const page = await ui(`events?${parameters}`);
    for (const row of eventRows(page.events)) body.append(el('tr', {}, row.map((cell) => el('td', {}, cell))));
    if (!page.events.length && !before) body.append(el('tr', {}, el('td', {colspan: 5, class: 'muted'}, 'No events match.')));
    replace(more, page.next_before ? el('button', {'data-action': 'older', onclick: () => load(page.next_before)}, 'Older events') : el('span', {class: 'muted small'}, 'That is all.'));
  };
  await load(null);
  context.ready('events');
}
