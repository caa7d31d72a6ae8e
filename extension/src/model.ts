/**
 * What the workbench's panels show, as plain data and pure functions: no JupyterLab import,
 * so the rules (typed parameter fields, badges, what a promotion changes, the lineage chain)
 * are unit-tested without a browser.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface IPlatformStatus {
  tracking_uri: string;
  embedded: boolean;
  running: boolean;
  healthy: boolean;
  pid: number | null;
  note: string;
  experiment: string;
  primary_metric: string;
  executor: string;
}

export interface IRun {
  run_id: string;
  run_name: string;
  status: string;
  started_at: string | null;
  ended_at: string | null;
  experiment_id: string;
  params: Record<string, string>;
  metrics: Record<string, number>;
  tags: Record<string, string>;
  notebook: string | null;
  notebook_path: string | null;
  output_notebook: string | null;
  output_notebook_path: string | null;
  url: string;
  artifacts?: { path: string; is_dir: boolean; size: number | null }[];
}

export interface IRunPage {
  runs: IRun[];
  next_page_token: string | null;
}

export interface IInstance {
  full_name: string | null;
  label: string;
  registered_model: string;
  mlflow_version: number;
  model_version: string | null;
  data_date: string | null;
  run_id: string | null;
  aliases: string[];
  metrics: Record<string, number>;
  drift_status: string | null;
  drift_checked_at: string | null;
  ui_url: string;
  run_url: string | null;
  notebook_path: string | null;
  uri: string;
}

export interface IHistoryRecord {
  id: string;
  action: string;
  alias: string;
  from: string | null;
  to: string;
  by: string;
  at: string;
  reason: string;
  overridden: string[];
}

export interface IModel {
  name: string;
  primary_metric: string;
  greater_is_better: boolean;
  instances: IInstance[];
  history: IHistoryRecord[];
}

export interface ILineage {
  instance: IInstance;
  data: { path: string | null; sha256: string | null; rows: string | null; lab_path: string | null };
  notebook: {
    path: string | null;
    sha256: string | null;
    lab_path: string | null;
    git_commit: string | null;
    git_dirty: string | null;
    executor: string | null;
  };
  run: {
    run_id: string;
    name: string;
    status: string;
    url: string;
    output_notebook_path: string | null;
  } | null;
  model_version: { uri: string; label: string; url: string };
  aliases: string[];
  promotions: IHistoryRecord[];
  drift: { status: string | null; checked_at: string | null };
}

export interface IParameterField {
  name: string;
  type: string;
  default: Json;
  source: string;
  help: string;
}

export interface IParameters {
  path: string;
  parameters: IParameterField[];
  executors: string[];
  executor: string;
}

export interface IJob {
  id: string;
  notebook: string;
  notebook_path: string | null;
  parameters: Record<string, Json>;
  executor: string;
  timeout: number;
  status: string;
  run_id: string | null;
  output_notebook: string | null;
  output_notebook_path: string | null;
  progress: { done: number; total: number };
  error: string | null;
  started_at: number;
  ended_at: number | null;
  log_lines: number;
  log?: string[];
  log_from?: number;
  /** the policy job (``churn.drift``) a run-now fired */
  schedule?: string | null;
}

/** What the jobs list calls a job: its notebook, or the policy job a run-now fired. */
export function jobTitle(job: IJob): string {
  const notebook = job.notebook_path ?? job.notebook;
  return job.schedule ? `${job.schedule} (run now): ${notebook.split('/').pop()}` : notebook;
}

export const TERMINAL = ['FINISHED', 'FAILED', 'KILLED'];

export function isDone(status: string): boolean {
  return TERMINAL.includes(status);
}

/** ``path`` under the extension's API root, with a query string of the non-empty values. */
export function apiPath(
  parts: string[],
  query: Record<string, string | string[] | undefined | null> = {}
): string {
  const path = parts.map(encodeURIComponent).join('/');
  const pairs: string[] = [];
  for (const [key, value] of Object.entries(query)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one !== undefined && one !== null && one !== '') {
        pairs.push(`${encodeURIComponent(key)}=${encodeURIComponent(one)}`);
      }
    }
  }
  return pairs.length ? `${path}?${pairs.join('&')}` : path;
}

/** The text a typed field starts with: the default as the user would type it. */
export function fieldText(field: IParameterField): string {
  if (field.type === 'str' && typeof field.default === 'string') {
    return field.default;
  }
  if (field.type === 'bool') {
    return field.default ? 'true' : 'false';
  }
  if (field.type === 'list' || field.type === 'dict') {
    return JSON.stringify(field.default);
  }
  return field.default === null || field.default === undefined ? field.source ?? '' : String(field.default);
}

export type Parsed = { ok: true; value: Json } | { ok: false; error: string };

/** A field's text as the JSON value of the notebook's declared type, or why it is not one. */
export function parseField(type: string, text: string): Parsed {
  const trimmed = text.trim();
  switch (type) {
    case 'str':
      return { ok: true, value: text };
    case 'int':
      return /^[-+]?\d+$/.test(trimmed)
        ? { ok: true, value: parseInt(trimmed, 10) }
        : { ok: false, error: `expects a whole number, not "${text}"` };
    case 'float': {
      const value = Number(trimmed);
      return trimmed !== '' && Number.isFinite(value)
        ? { ok: true, value }
        : { ok: false, error: `expects a number, not "${text}"` };
    }
    case 'bool':
      if (['true', '1', 'yes'].includes(trimmed.toLowerCase())) {
        return { ok: true, value: true };
      }
      if (['false', '0', 'no'].includes(trimmed.toLowerCase())) {
        return { ok: true, value: false };
      }
      return { ok: false, error: `expects true or false, not "${text}"` };
    case 'list':
    case 'dict': {
      try {
        const value = JSON.parse(trimmed) as Json;
        const isList = Array.isArray(value);
        const isDict = value !== null && typeof value === 'object' && !isList;
        if ((type === 'list' && isList) || (type === 'dict' && isDict)) {
          return { ok: true, value };
        }
      } catch {
        // reported below
      }
      return { ok: false, error: `expects a JSON ${type === 'list' ? 'list like [1, 2]' : 'object like {"a": 1}'}` };
    }
    default:
      // No literal default: papermill takes the text as it is.
      return { ok: true, value: text };
  }
}

/**
 * The parameters a job is submitted with: only those changed from the notebook's defaults
 * (the notebook keeps its own for the rest), or the errors by field.
 */
export function jobParameters(
  fields: IParameterField[],
  texts: Record<string, string>
): { values: Record<string, Json>; errors: Record<string, string> } {
  const values: Record<string, Json> = {};
  const errors: Record<string, string> = {};
  for (const field of fields) {
    const text = texts[field.name];
    if (text === undefined || text === fieldText(field)) {
      continue;
    }
    const parsed = parseField(field.type, text);
    if (parsed.ok) {
      values[field.name] = parsed.value;
    } else {
      errors[field.name] = `${field.name} ${parsed.error}`;
    }
  }
  return { values, errors };
}

/** Badges for an instance's promotion aliases, champion first. */
export function badges(aliases: string[]): string[] {
  return ['champion', 'challenger'].filter(alias => aliases.includes(alias));
}

export function formatMetric(value: number | undefined | null): string {
  return value === undefined || value === null || Number.isNaN(value) ? '-' : value.toFixed(4);
}

/** The metrics worth a column: the primary one first, then the others (training_ left out). */
export function metricColumns(instances: IInstance[], primary: string, most = 4): string[] {
  const names = new Set<string>();
  for (const instance of instances) {
    Object.keys(instance.metrics)
      .filter(name => !name.startsWith('training_'))
      .forEach(name => names.add(name));
  }
  names.delete(primary);
  return [primary, ...Array.from(names).sort()].slice(0, most);
}

/** What a promotion changes, in the words of the confirmation. */
export function promotionSummary(model: IModel, candidate: IInstance, alias: string): string {
  const holder = model.instances.find(i => i.aliases.includes(alias));
  if (holder && holder.mlflow_version === candidate.mlflow_version) {
    return `${alias} already points at ${candidate.label}`;
  }
  return `${alias}: ${holder ? holder.label : '(none)'} -> ${candidate.label}`;
}

/** Runs matching a free-text filter (name, status, notebook, params) and a status. */
export function filterRuns(runs: IRun[], text: string, status: string): IRun[] {
  const needle = text.trim().toLowerCase();
  return runs.filter(run => {
    if (status && run.status !== status) {
      return false;
    }
    if (!needle) {
      return true;
    }
    const haystack = [
      run.run_name,
      run.run_id,
      run.status,
      run.notebook ?? '',
      ...Object.entries(run.params).map(([k, v]) => `${k}=${v}`)
    ]
      .join(' ')
      .toLowerCase();
    return haystack.includes(needle);
  });
}

/** Rows of a side-by-side comparison: one per param or metric, a value per run. */
export function compareRows(runs: IRun[]): { name: string; values: string[]; differs: boolean }[] {
  const rows: { name: string; values: string[]; differs: boolean }[] = [];
  const keys = (pick: (run: IRun) => Record<string, unknown>) =>
    Array.from(new Set(runs.flatMap(run => Object.keys(pick(run))))).sort();
  for (const name of keys(run => run.params)) {
    const values = runs.map(run => run.params[name] ?? '-');
    rows.push({ name: `param ${name}`, values, differs: new Set(values).size > 1 });
  }
  for (const name of keys(run => run.metrics)) {
    const values = runs.map(run => formatMetric(run.metrics[name]));
    rows.push({ name: `metric ${name}`, values, differs: new Set(values).size > 1 });
  }
  return rows;
}

export interface ILineageStep {
  kind: string;
  title: string;
  detail: string;
  /** a file to open in Lab (relative to the server's root) */
  labPath?: string | null;
  /** a page to open in a new browser tab (MLflow) */
  href?: string | null;
}

/** The lineage of one instance as a chain, source first. */
export function lineageSteps(lineage: ILineage): ILineageStep[] {
  const short = (text: string | null, n = 12) => (text ? text.slice(0, n) : 'unknown');
  const steps: ILineageStep[] = [];
  steps.push({
    kind: 'data',
    title: lineage.data.path ?? 'data not recorded',
    detail: lineage.data.path
      ? `sha256 ${short(lineage.data.sha256)}, ${lineage.data.rows ?? '?'} rows`
      : 'pass --data to %mlops_track to record it',
    labPath: lineage.data.lab_path
  });
  steps.push({
    kind: 'notebook',
    title: lineage.notebook.path ?? 'notebook not recorded',
    detail:
      `commit ${short(lineage.notebook.git_commit, 10)}` +
      (lineage.notebook.git_dirty === 'true' ? ' (uncommitted changes)' : '') +
      (lineage.notebook.executor ? `, ran as ${lineage.notebook.executor}` : ''),
    labPath: lineage.notebook.lab_path
  });
  if (lineage.run) {
    steps.push({
      kind: 'run',
      title: lineage.run.name,
      detail: `${lineage.run.status}, run ${short(lineage.run.run_id, 8)}`,
      href: lineage.run.url,
      labPath: lineage.run.output_notebook_path
    });
  }
  steps.push({
    kind: 'model',
    title: lineage.model_version.label,
    detail: lineage.model_version.uri,
    href: lineage.model_version.url
  });
  steps.push({
    kind: 'aliases',
    title: lineage.aliases.length ? lineage.aliases.join(', ') : 'no alias',
    detail: lineage.promotions.length
      ? lineage.promotions
          .map(p => `${p.action} ${p.alias} ${p.at.slice(0, 16)} by ${p.by}: ${p.reason || '-'}`)
          .join('; ')
      : 'never promoted'
  });
  steps.push({
    kind: 'drift',
    title: lineage.drift.status ? `drift check: ${lineage.drift.status}` : 'no drift check yet',
    detail: lineage.drift.checked_at ?? 'workbench monitor drift checks it'
  });
  return steps;
}

/** The progress of a job as a short text: "3/5 cells" or its status. */
export function jobProgress(job: IJob): string {
  if (job.progress.total > 0 && !isDone(job.status)) {
    return `${job.progress.done}/${job.progress.total} cells`;
  }
  return job.status.toLowerCase();
}

/** What the Run as job dialog holds: the parameters' texts, executor, image, timeout. */
export interface IFormState {
  texts: Record<string, string>;
  executor: string;
  image: string;
  timeout: string;
}

/** The job request for a form's state, or the errors by field. */
export function jobRequest(
  spec: IParameters,
  state: IFormState
): { body: Record<string, Json>; errors: Record<string, string> } {
  const { values, errors } = jobParameters(spec.parameters, state.texts);
  const timeout = state.timeout === '' ? 0 : Number(state.timeout);
  if (!Number.isFinite(timeout) || timeout < 0) {
    errors['timeout'] = 'timeout must be 0 (no limit) or a number of seconds';
  }
  const body: Record<string, Json> = { path: spec.path, parameters: values, executor: state.executor, timeout };
  if (state.image) {
    body['image'] = state.image;
  }
  return { body, errors };
}
