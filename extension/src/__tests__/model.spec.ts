import {
  IInstance,
  IModel,
  IParameterField,
  IRun,
  apiPath,
  badges,
  compareRows,
  fieldText,
  filterRuns,
  jobParameters,
  jobRequest,
  lineageSteps,
  metricColumns,
  parseField,
  promotionSummary
} from '../model';

const field = (name: string, type: string, value: unknown, source = String(value)): IParameterField =>
  ({ name, type, default: value as any, source, help: '' });

const instance = (version: number, aliases: string[] = [], metrics: Record<string, number> = {}): IInstance => ({
  full_name: `churn_v${version}_20240131`, label: `churn_v${version}_20240131`, registered_model: 'churn',
  mlflow_version: version, model_version: `v${version}`, data_date: '20240131', run_id: `r${version}`,
  aliases, metrics, drift_status: null, drift_checked_at: null, ui_url: 'http://mlflow/#/models/churn',
  run_url: null, notebook_path: null, uri: `models:/churn/${version}`
});

const run = (id: string, status: string, params: Record<string, string>, metrics: Record<string, number> = {}): IRun => ({
  run_id: id, run_name: `train-${id}`, status, started_at: null, ended_at: null, experiment_id: '1',
  params, metrics, tags: {}, notebook: '/p/notebooks/train.ipynb', notebook_path: 'notebooks/train.ipynb',
  output_notebook: null, output_notebook_path: null, url: ''
});

describe('typed parameter fields', () => {
  it('parses each declared type and names what is wrong', () => {
    expect(parseField('int', ' 42 ')).toEqual({ ok: true, value: 42 });
    expect(parseField('int', '4.2').ok).toBe(false);
    expect(parseField('float', '0.5')).toEqual({ ok: true, value: 0.5 });
    expect(parseField('float', 'abc')).toEqual({ ok: false, error: 'expects a number, not "abc"' });
    expect(parseField('bool', 'Yes')).toEqual({ ok: true, value: true });
    expect(parseField('bool', 'maybe').ok).toBe(false);
    expect(parseField('list', '[1, "a"]')).toEqual({ ok: true, value: [1, 'a'] });
    expect(parseField('list', '{"a": 1}').ok).toBe(false);
    expect(parseField('dict', '{"a": 1}')).toEqual({ ok: true, value: { a: 1 } });
    expect(parseField('str', ' v3 ')).toEqual({ ok: true, value: ' v3 ' });
  });

  it('starts each field from the notebook default', () => {
    expect(fieldText(field('version', 'str', 'v1', '"v1"'))).toBe('v1');
    expect(fieldText(field('full', 'bool', false, 'False'))).toBe('false');
    expect(fieldText(field('cols', 'list', ['a'], '["a"]'))).toBe('["a"]');
    expect(fieldText(field('when', 'None', null, 'date.today()'))).toBe('date.today()');
  });

  it('sends only the changed parameters, typed, and the errors by field', () => {
    const fields = [field('version', 'str', 'v1', '"v1"'), field('epochs', 'int', 3), field('rate', 'float', 0.5)];
    expect(jobParameters(fields, { version: 'v3', epochs: '3', rate: 'fast' })).toEqual({
      values: { version: 'v3' },
      errors: { rate: 'rate expects a number, not "fast"' }
    });
  });

  it('builds the job request with executor, image and timeout', () => {
    const spec = { path: 'notebooks/train.ipynb', parameters: [field('version', 'str', 'v1', '"v1"')], executors: ['local'], executor: 'local' };
    const state = { texts: { version: 'v3' }, executor: 'docker', image: 'img:1', timeout: '600' };
    expect(jobRequest(spec, state)).toEqual({
      body: { path: 'notebooks/train.ipynb', parameters: { version: 'v3' }, executor: 'docker', timeout: 600, image: 'img:1' },
      errors: {}
    });
    expect(jobRequest(spec, { ...state, timeout: '-1' }).errors).toHaveProperty('timeout');
  });
});

describe('models', () => {
  const model: IModel = {
    name: 'churn', primary_metric: 'roc_auc', greater_is_better: true, history: [],
    instances: [instance(2, ['challenger'], { roc_auc: 0.8, f1: 0.5, training_loss: 1 }), instance(1, ['champion', 'old'], { roc_auc: 0.9 })]
  };

  it('gives champion and challenger badges only', () => {
    expect(badges(['old', 'challenger', 'champion'])).toEqual(['champion', 'challenger']);
  });

  it('puts the primary metric first and leaves training metrics out', () => {
    expect(metricColumns(model.instances, 'roc_auc')).toEqual(['roc_auc', 'f1']);
  });

  it('says what a promotion changes', () => {
    expect(promotionSummary(model, model.instances[0], 'champion')).toBe('champion: churn_v1_20240131 -> churn_v2_20240131');
    expect(promotionSummary(model, model.instances[1], 'champion')).toBe('champion already points at churn_v1_20240131');
    expect(promotionSummary({ ...model, instances: [instance(3)] }, instance(3), 'challenger')).toBe('challenger: (none) -> churn_v3_20240131');
  });
});

describe('runs', () => {
  const runs = [run('a1', 'FINISHED', { version: 'v1' }, { roc_auc: 0.8 }), run('b2', 'FAILED', { version: 'v2' }, { roc_auc: 0.7 })];

  it('filters by text (params included) and status', () => {
    expect(filterRuns(runs, 'version=v2', '').map(r => r.run_id)).toEqual(['b2']);
    expect(filterRuns(runs, '', 'FINISHED').map(r => r.run_id)).toEqual(['a1']);
    expect(filterRuns(runs, 'train', 'KILLED')).toEqual([]);
  });

  it('compares runs side by side and marks what differs', () => {
    const rows = compareRows(runs);
    expect(rows).toEqual([
      { name: 'param version', values: ['v1', 'v2'], differs: true },
      { name: 'metric roc_auc', values: ['0.8000', '0.7000'], differs: true }
    ]);
  });
});

describe('api paths and lineage', () => {
  it('encodes parts and repeats list values', () => {
    expect(apiPath(['models', 'a b'], { experiment: ['x', 'y'], status: '', max: '5' })).toBe('models/a%20b?experiment=x&experiment=y&max=5');
  });

  it('chains data to drift, with Lab paths and MLflow links', () => {
    const steps = lineageSteps({
      instance: instance(3),
      data: { path: '/p/data/jan.csv', sha256: 'abcdef0123456789', rows: '1500', lab_path: 'data/jan.csv' },
      notebook: { path: '/p/notebooks/train.ipynb', sha256: null, lab_path: 'notebooks/train.ipynb', git_commit: '0123456789abc', git_dirty: 'true', executor: 'local' },
      run: { run_id: 'r3xxxxxxxx', name: 'train-1', status: 'FINISHED', url: 'http://mlflow/#/runs/r3', output_notebook_path: '.workbench/jobs/train/x.ipynb' },
      model_version: { uri: 'models:/churn/3', label: 'churn_v3_20240131', url: 'http://mlflow/#/models/churn/versions/3' },
      aliases: ['challenger'],
      promotions: [{ id: '1', action: 'promote', alias: 'challenger', from: null, to: 'churn_v3_20240131', by: 'ann', at: '2024-02-01T10:00:00', reason: 'try it', overridden: [] }],
      drift: { status: null, checked_at: null }
    });
    expect(steps.map(s => s.kind)).toEqual(['data', 'notebook', 'run', 'model', 'aliases', 'drift']);
    expect(steps[0]).toMatchObject({ detail: 'sha256 abcdef012345, 1500 rows', labPath: 'data/jan.csv' });
    expect(steps[1].detail).toBe('commit 0123456789 (uncommitted changes), ran as local');
    expect(steps[2]).toMatchObject({ href: 'http://mlflow/#/runs/r3', labPath: '.workbench/jobs/train/x.ipynb' });
    expect(steps[4].detail).toContain('promote challenger 2024-02-01T10:00 by ann: try it');
    expect(steps[5].title).toBe('no drift check yet');
  });
});
