// Experiments: every active experiment, as MLflow's API lists them.

import {mlflow} from '../api.js';
import {el, link, replace, section, table} from '../dom.js';
import {time} from '../format.js';

export async function render(context) {
  const experiments = [];
  let pageToken;
  do {
    const page = await mlflow('experiments/search', {max_results: 1000, page_token: pageToken, order_by: ['last_update_time DESC']});
    experiments.push(...(page.experiments || []));
    pageToken = page.next_page_token;
  } while (pageToken && experiments.length < 10000);
  if (!context.current()) return;
  const rows = experiments.map((experiment) => [
    link(`/ui/experiments/${encodeURIComponent(experiment.experiment_id)}`, experiment.name),
    el('span', {class: 'mono'}, experiment.experiment_id),
    time(experiment.creation_time),
    time(experiment.last_update_time),
    el('span', {class: 'mono small muted'}, experiment.artifact_location || ''),
  ]);
  replace(context.main, el('h1', {}, 'Experiments'),
    section(`${experiments.length} experiment${experiments.length === 1 ? '' : 's'}`,
      experiments.length ? table(['name', 'id', 'created', 'updated', 'artifacts'], rows, {id: 'experiments'})
        : el('p', {class: 'muted'}, 'No experiments yet. Point MLflow at this server (MLFLOW_TRACKING_URI) or run causeway train.')));
  context.ready('experiments');
}
