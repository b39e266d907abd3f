// The loop: per model, the state machine's stage, the evidence against each gate and bound, the
// timeline of triggers, retrains, shadow, canary, promotions and rollbacks, and pause, resume and
// retrain (admin). Updates itself every five seconds.

import {ui} from '../api.js';
import {badge, el, link, replace, section, table} from '../dom.js';
import {ago, number, time} from '../format.js';
import {eventRows} from './events.js';
import {measuresTable, stageBadge} from './overview.js';

const enc = encodeURIComponent;

async function list(context) {
  const {models} = await ui('models');
  if (!context.current()) return;
  const looped = models.filter((model) => model.loop);
  replace(context.main, el('h1', {}, 'Loop'),
    section('Models the loop runs', looped.length
      ? table(['model', 'stage', 'champion', 'challenger', 'last decision'], looped.map((model) => [
        link(`/ui/loop/${enc(model.model)}`, model.model), stageBadge(model.loop.stage),
        model.loop.champion ? `v${model.loop.champion}` : '—', model.loop.challenger ? `v${model.loop.challenger}` : '—',
        model.loop.last_decision ? model.loop.last_decision.message : '—']), {id: 'loops'})
      : el('p', {class: 'muted'}, 'No model has a loop: add a [model] section to causeway.toml.')));
  context.ready('loop-list');
}

function gatesTable(gates) {
  if (!gates) return null;
  const rows = Object.entries(gates).filter(([, value]) => value !== null && value !== undefined && typeof value !== 'object').map(([key, value]) => [key, String(value)]);
  return rows.length ? table(['gate', 'setting'], rows, {class: 'kv'}) : null;
}

export async function render(context) {
  if (context.name === 'loop-list') return list(context);
  const model = context.params.model;
  const outcome = el('p', {id: 'command-outcome'});
  const send = async (action) => {
    try {
      const answer = await ui(`loop/${enc(model)}/${action}`, {method: 'POST', body: {}});
      const applied = answer.applied;
      outcome.className = '';
      outcome.textContent = applied.outcome === 'queued' ? `Sent: the control plane ${applied.detail.leader} applies it at its next tick.`
        : applied.outcome === 'needs_tick' ? 'Queued for the loop\'s next tick (no control plane is running: `causeway loop run --once` runs one now).'
          : applied.detail;
      await draw();
    } catch (error) {
      outcome.className = 'error-text';
      outcome.textContent = error.message;
    }
  };
  const draw = async () => {
    const answer = await ui(`loop/${enc(model)}`);
    if (!context.current()) return;
    const status = answer.status;
    const admin = context.me && context.me.can_admin;
    const now = Date.now();
    const facts = [
      ['stage', el('span', {}, stageBadge(status.stage), status.stage_since_ms ? ` since ${time(status.stage_since_ms)}` : '')],
      ['champion', status.champion ? link(`/ui/models/${enc(model)}/versions/${status.champion}`, `v${status.champion}`) : '—'],
      ['challenger', status.challenger ? link(`/ui/models/${enc(model)}/versions/${status.challenger}`, `v${status.challenger}`) : '—'],
      ['traffic', status.traffic ? `${status.traffic}${status.canary_share ? ` (${Math.round(status.canary_share * 100)}% to the challenger)` : ''}` : 'champion only'],
      ['retraining job', status.job ? `#${status.job}` : '—'],
      ['paused', status.paused ? `since ${time(status.paused.since_ms)} (${JSON.stringify(status.paused.cause)})` : 'no'],
      ['next scheduled retrain', status.next_scheduled_ms ? `${time(status.next_scheduled_ms)} (${ago(status.next_scheduled_ms, now)})` : '—'],
      ['cool-down until', status.cooldown_until_ms ? time(status.cooldown_until_ms) : '—'],
      ['queued commands', status.queued_commands.length ? status.queued_commands.join('; ') : 'none'],
      ['control plane', answer.leader ? `${answer.leader.holder}${answer.leader.live ? '' : ' (lease lapsed)'}` : 'none running'],
    ];
    replace(context.main,
      el('div', {class: 'spread'}, el('h1', {}, `Loop of ${model}`), el('div', {class: 'row'}, link(`/ui/models/${enc(model)}`, 'versions'), link(`/ui/monitoring/${enc(model)}`, 'monitoring'))),
      el('div', {class: 'grid'},
        section('State', table(['', ''], facts, {class: 'kv', id: 'loop-state'}),
          admin ? el('div', {class: 'row'},
            status.paused ? el('button', {'data-action': 'resume', onclick: () => send('resume')}, 'Resume')
              : el('button', {'data-action': 'pause', onclick: () => send('pause')}, 'Pause'),
            el('button', {'data-action': 'retrain', onclick: () => send('retrain')}, 'Retrain now')) : el('p', {class: 'muted small'}, 'Steering the loop needs an admin token.'),
          outcome),
        section('Evidence at the last tick', el('p', {class: 'muted small'}, status.evidence.at_ms ? `${time(status.evidence.at_ms)} · ${number(status.evidence.labelled)} labelled outcomes` : 'not judged yet'),
          measuresTable(status.evidence.measures),
          status.firing.length ? el('p', {}, 'Firing: ', status.firing.map((rule) => badge(rule, 'bad'))) : null,
          status.last_decision ? el('p', {}, el('strong', {}, 'Last decision: '), status.last_decision.message) : null,
          answer.gates ? el('details', {}, el('summary', {}, 'Gates in causeway.toml'), gatesTable(answer.gates)) : null)),
      section('Timeline', answer.timeline.length ? el('div', {class: 'table-wrap'}, table(['when', 'kind', 'subject', 'actor', 'what'], eventRows(answer.timeline), {id: 'timeline'})) : el('p', {class: 'muted'}, 'Nothing has happened yet.')));
    context.ready('loop');
  };
  await draw();
  context.poll(draw, 5000);
}
