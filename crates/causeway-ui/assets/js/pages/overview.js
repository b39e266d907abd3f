// Overview: every model with who answers, what is being rolled out, the loop's evidence and
// last decision, firing alerts; the newest events. Updates itself every five seconds.

import {ui} from '../api.js';
import {badge, el, link, replace, section, table} from '../dom.js';
import {ago, number, time} from '../format.js';
import {eventRows} from './events.js';

export function stageBadge(stage) {
  const kinds = {idle: '', retraining: 'warn', shadow: 'accent', canary: 'accent'};
  return badge(stage || 'no loop', kinds[stage] || '');
}

export function measuresTable(measures) {
  if (!measures || !measures.length) return el('p', {class: 'muted'}, 'The loop has judged nothing yet.');
  return table(['measure', 'value', 'bound', ''], measures.map((measure) => [
    measure.name,
    number(measure.value),
    `${measure.at_least ? '≥' : '≤'} ${number(measure.bound)}`,
    measure.passing ? badge('ok', 'good') : badge('breached', 'bad'),
  ]));
}

function modelCard(model, now) {
  const status = model.loop;
  const champion = model.champion ? `v${model.champion}` : 'none';
  return el('div', {class: 'card', 'data-model': model.model},
    el('div', {class: 'spread'},
      el('h2', {}, link(`/ui/models/${encodeURIComponent(model.model)}`, model.model)),
      stageBadge(status && status.stage)),
    el('div', {},
      el('span', {class: 'stat'}, el('span', {class: 'value', 'data-field': 'champion'}, champion), el('span', {class: 'label'}, `champion${model.champion_flavor ? ` · ${model.champion_flavor}` : ''}`)),
      el('span', {class: 'stat'}, el('span', {class: 'value'}, status && status.challenger ? `v${status.challenger}` : '—'), el('span', {class: 'label'}, status && status.traffic ? `challenger · ${status.traffic}${status.canary_share ? ` ${Math.round(status.canary_share * 100)}%` : ''}` : 'challenger')),
      el('span', {class: 'stat'}, el('span', {class: 'value'}, model.versions), el('span', {class: 'label'}, 'versions'))),
    status && status.paused ? el('p', {}, badge('paused', 'warn'), ` since ${time(status.paused.since_ms)}`) : null,
    status && status.firing.length ? el('p', {}, 'Firing: ', status.firing.map((rule) => badge(rule, 'bad'))) : null,
    status && status.last_decision ? el('p', {}, el('span', {class: 'muted'}, `${ago(status.last_decision.at_ms, now)}: `), status.last_decision.message) : null,
    status ? el('details', {}, el('summary', {}, `Evidence at the last tick (${status.evidence.labelled} labelled)`), measuresTable(status.evidence.measures)) : el('p', {class: 'muted'}, 'No loop configured for this model in causeway.toml.'),
    el('div', {class: 'row small'},
      link(`/ui/loop/${encodeURIComponent(model.model)}`, 'loop'),
      link(`/ui/monitoring/${encodeURIComponent(model.model)}`, 'monitoring')));
}

export async function render(context) {
  const draw = async () => {
    const overview = await ui('overview');
    if (!context.current()) return;
    const leader = overview.leader;
    replace(context.main,
      el('div', {class: 'spread'}, el('h1', {}, 'Overview'),
        el('span', {class: 'muted small'}, leader ? `control plane ${leader.holder} ${leader.live ? 'holds the lease' : '(lease lapsed)'}` : 'no control plane is running the loop', ` · updated ${time(overview.at_ms)}`)),
      overview.models.length
        ? el('div', {class: 'grid'}, overview.models.map((model) => modelCard(model, overview.at_ms)))
        : section('No models yet', el('p', {}, 'Train one with ', el('code', {}, 'causeway train'), ', or run ', el('code', {}, 'causeway demo fraud'), '.')),
      section('Recent events', overview.events.length ? table(['when', 'kind', 'subject', 'actor', 'what'], eventRows(overview.events)) : el('p', {class: 'muted'}, 'Nothing has happened yet.'),
        el('p', {}, link('/ui/events', 'All events →'))));
    context.ready('overview');
  };
  await draw();
  context.poll(draw, 5000);
}
