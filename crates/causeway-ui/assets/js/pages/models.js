// Models: every registered model; one model's versions with aliases, lineage and holdout metrics,
// promotion (the gates' verdicts shown before the confirm button) and rollback; one version's
// card. Actions need an admin token and go through the same audited operations as the CLI.

import {ui} from '../api.js';
import {badge, el, link, replace, section, table} from '../dom.js';
import {number, time} from '../format.js';
import {eventRows} from './events.js';
import {stageBadge} from './overview.js';

const enc = encodeURIComponent;

function aliasBadges(aliases) {
  return aliases.map((alias) => badge(alias, alias === 'champion' ? 'good' : alias === 'challenger' ? 'accent' : ''));
}

async function list(context) {
  const {models} = await ui('models');
  if (!context.current()) return;
  replace(context.main, el('h1', {}, 'Models'),
    section(`${models.length} registered model${models.length === 1 ? '' : 's'}`, models.length
      ? table(['model', 'champion', 'versions', 'stage', 'holdout metrics'], models.map((model) => [
        link(`/ui/models/${enc(model.model)}`, model.model),
        model.champion ? `v${model.champion} (${model.champion_flavor || ''})` : '—',
        String(model.versions),
        stageBadge(model.loop && model.loop.stage),
        Object.entries(model.champion_metrics || {}).slice(0, 4).map(([key, value]) => `${key} ${number(value)}`).join(' · '),
      ]), {id: 'models'})
      : el('p', {class: 'muted'}, 'No registered models yet.')));
  context.ready('models');
}

function gateTable(report) {
  return table(['gate', 'verdict', 'detail'], report.checks.map((check) => [check.gate, check.passed ? badge('passes', 'good') : badge('fails', 'bad'), check.detail]), {id: 'gate-verdicts'});
}

/** The promotion dialog: gates first, then a confirm button (and force when they fail). */
async function promoteDialog(context, model, version, champion, into, reload) {
  replace(into, el('div', {class: 'dialog'}, el('p', {}, `Checking the gates for v${version}…`)));
  const gates = await ui(`models/${enc(model)}/versions/${version}/gates`);
  const reason = el('input', {id: 'promote-reason', placeholder: 'why (recorded in the audit log)', size: 40});
  const force = el('input', {type: 'checkbox', id: 'promote-force'});
  const outcome = el('p', {});
  const confirm = el('button', {class: 'primary', 'data-action': 'promote-confirm', onclick: async () => {
    confirm.disabled = true;
    try {
      const answer = await ui(`models/${enc(model)}/promote`, {method: 'POST', body: {version, force: force.checked, reason: reason.value, expected_champion: champion}});
      if (answer.promoted) { await reload(); return; }
      outcome.className = 'error-text';
      outcome.textContent = 'Not promoted: the gates failed. Tick "promote anyway" to force it (the audit log names the failed gates).';
    } catch (error) {
      outcome.className = 'error-text';
      outcome.textContent = error.message;
    }
    confirm.disabled = false;
  }}, `Promote v${version} to champion`);
  replace(into, el('div', {class: 'dialog', 'data-dialog': 'promote'},
    el('h2', {}, `Promote v${version} of ${model}`),
    el('p', {}, gates.passed ? badge('every gate passes', 'good') : badge('some gates fail', 'bad'), gates.report.basis ? ` compared with ${gates.report.basis}` : ''),
    gates.report.checks.length ? gateTable(gates.report) : el('p', {class: 'muted'}, 'No gates apply to this version.'),
    el('div', {class: 'row'}, reason, gates.passed ? null : el('label', {class: 'inline'}, force, ' promote anyway'), confirm,
      el('button', {onclick: () => into.replaceChildren()}, 'Cancel')),
    outcome));
}

async function modelPage(context) {
  const model = context.params.model;
  const draw = async () => {
    const answer = await ui(`models/${enc(model)}`);
    if (!context.current()) return;
    const admin = context.me && context.me.can_admin;
    const champion = answer.aliases.champion || null;
    const dialog = el('div', {id: 'dialog'});
    const metricKeys = [...new Set(answer.versions.flatMap((version) => Object.keys(version.record.metrics)))].sort().slice(0, 6);
    const rows = answer.versions.map(({record, aliases}) => el('tr', {'data-version': record.version},
      el('td', {}, link(`/ui/models/${enc(model)}/versions/${record.version}`, `v${record.version}`)),
      el('td', {}, aliasBadges(aliases)),
      el('td', {}, record.flavor),
      el('td', {class: 'mono small'}, record.dataset),
      el('td', {}, link(`/ui/runs/${enc(record.run_id)}`, record.run_id.slice(0, 8))),
      el('td', {class: 'mono small'}, time(record.created_ms)),
      metricKeys.map((key) => el('td', {class: 'number'}, number(record.metrics[key]))),
      el('td', {}, admin && record.version !== champion
        ? el('button', {'data-action': 'promote', 'data-version': record.version, onclick: () => promoteDialog(context, model, record.version, champion, dialog, draw).catch((error) => context.showError(error.message))}, 'Promote…')
        : null)));
    const rollback = admin && champion ? el('button', {class: 'danger', 'data-action': 'rollback', onclick: async () => {
      const reason = el('input', {id: 'rollback-reason', placeholder: 'why', size: 40});
      replace(dialog, el('div', {class: 'dialog', 'data-dialog': 'rollback'},
        el('p', {}, `Roll ${model}'s champion back from v${champion} to the version it answered with before?`),
        el('div', {class: 'row'}, reason,
          el('button', {class: 'danger', 'data-action': 'rollback-confirm', onclick: async () => {
            try { await ui(`models/${enc(model)}/rollback`, {method: 'POST', body: {reason: reason.value}}); await draw(); } catch (error) { context.showError(error.message); }
          }}, 'Roll back'),
          el('button', {onclick: () => dialog.replaceChildren()}, 'Cancel'))));
    }}, 'Roll back…') : null;
    const status = answer.loop;
    replace(context.main,
      el('div', {class: 'spread'}, el('h1', {}, model), el('div', {class: 'row'}, stageBadge(status && status.stage),
        link(`/ui/loop/${enc(model)}`, 'loop'), link(`/ui/monitoring/${enc(model)}`, 'monitoring'), rollback)),
      dialog,
      section('Versions', el('div', {class: 'table-wrap'}, el('table', {id: 'versions'},
        el('thead', {}, el('tr', {}, ['version', 'aliases', 'flavor', 'dataset', 'run', 'registered', ...metricKeys, ''].map((header) => el('th', {}, header)))),
        el('tbody', {}, rows))),
      !admin ? el('p', {class: 'muted small'}, 'Promoting and rolling back need an admin token.') : null),
      section('Alias history', answer.history.length ? table(['when', 'kind', 'subject', 'actor', 'what'], eventRows(answer.history)) : el('p', {class: 'muted'}, 'No alias changes yet.')));
    context.ready('model');
  };
  await draw();
}

function cardBlocks(blocks) {
  return blocks.map((block) => {
    if (block.kind === 'heading') return el('h3', {}, block.content);
    if (block.kind === 'paragraph') return el('p', {}, block.content);
    const [headers, rows] = block.content;
    const keyValue = headers.every((header) => header === '');
    return table(keyValue ? ['', ''] : headers, rows, {class: keyValue ? 'kv' : ''});
  });
}

async function versionPage(context) {
  const {model, version} = context.params;
  const answer = await ui(`models/${enc(model)}/versions/${enc(version)}`);
  if (!context.current()) return;
  const record = answer.record;
  const lineage = [
    ['run', link(`/ui/runs/${enc(record.run_id)}`, record.run_id)],
    ['dataset', answer.dataset ? link(`/ui/datasets/${enc(answer.dataset.name)}/${enc(answer.dataset.version)}`, record.dataset) : record.dataset],
    ['flavor', record.flavor],
    ['artifact', el('span', {class: 'mono small'}, record.artifact_key)],
    ['registered', time(record.created_ms)],
  ];
  replace(context.main,
    el('div', {class: 'spread'}, el('h1', {}, `${model} v${record.version} `, aliasBadges(answer.aliases)), link(`/ui/models/${enc(model)}`, `all versions of ${model}`)),
    el('div', {class: 'grid'},
      section('Lineage', table(['', ''], lineage, {class: 'kv', id: 'lineage'})),
      section('Holdout metrics', table(['metric', 'value'], Object.entries(record.metrics).map(([key, value]) => [key, number(value)])))),
    section('Model card', answer.card ? el('div', {id: 'card'}, cardBlocks(answer.card)) : el('p', {class: 'muted'}, 'No card: the version has no stored evaluation (an import, or a model logged through MLflow).')));
  context.ready('version');
}

export async function render(context) {
  if (context.name === 'models') return list(context);
  if (context.name === 'model') return modelPage(context);
  return versionPage(context);
}
