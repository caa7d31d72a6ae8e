/**
 * The Workbench left sidebar: platform status, the notebook's active run, runs (filter,
 * compare), models (badges, metrics, drift, promotion with confirmation), jobs (live
 * status and log) and the policies' schedules and proposals. Every action is one call to
 * the server extension's routes.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { button, el, external, replace, section, table } from './dom';
import {
  IInstance,
  IJob,
  IModel,
  IPlatformStatus,
  IRun,
  IRunPage,
  badges,
  compareRows,
  filterRuns,
  formatMetric,
  isDone,
  jobProgress,
  jobTitle,
  metricColumns,
  promotionSummary
} from './model';
import { WorkbenchApiError, requestAPI } from './request';
import { SchedulesPanel } from './schedules';

export interface ISidebarOptions {
  /** open a file (relative to the server's root) in Lab */
  openPath: (path: string) => void;
  /** open the lineage view of one instance */
  openLineage: (name: string, version: number) => void;
  /** the notebook in the main area (relative path), if any */
  currentNotebook: () => string | null;
  /** milliseconds between two polls of jobs and the active run */
  pollInterval: () => number;
}

export class WorkbenchSidebar extends Widget {
  constructor(private readonly options: ISidebarOptions) {
    super();
    this.id = 'mlops-workbench-sidebar';
    this.addClass('wb-sidebar');
    this.title.caption = 'MLOps Workbench';
    this.node.append(
      el('h2', { className: 'wb-heading' }, 'MLOps Workbench'),
      section('Platform', 'wb-status', this.statusNode),
      section('Active run of this notebook', 'wb-active-run', this.activeRunNode),
      section('Jobs', 'wb-jobs', this.jobsNode, this.jobDetailNode),
      section('Models', 'wb-models', this.modelsNode),
      section('Schedules', 'wb-schedules', this.schedules.node),
      section('Runs', 'wb-runs', this.runsNode)
    );
    this.buildRunsControls();
    this.modelSelect.addEventListener('change', () => void this.loadModel(this.modelSelect.value));
  }

  // -- lifecycle ---------------------------------------------------------------------------
  protected onAfterShow(): void {
    void this.refresh();
    this.schedule();
  }

  protected onBeforeHide(): void {
    window.clearTimeout(this.timer);
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }

  private schedule(): void {
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(async () => {
      if (this.isDisposed || !this.isVisible) {
        return;
      }
      await Promise.all([this.loadJobs(), this.loadActiveRun(), this.schedules.poll()]);
      this.schedule();
    }, this.options.pollInterval());
  }

  /** Everything again (the palette's Refresh). */
  async refresh(): Promise<void> {
    await Promise.all([this.loadStatus(), this.loadJobs(), this.loadActiveRun()]);
    await Promise.all([this.loadRuns(), this.loadModelNames(), this.schedules.load()]);
  }

  // -- platform ----------------------------------------------------------------------------
  async loadStatus(): Promise<void> {
    try {
      this.status = await requestAPI<IPlatformStatus>('status');
    } catch (error) {
      replace(this.statusNode, this.errorLine(error));
      return;
    }
    const status = this.status;
    const state = status.healthy ? 'running' : status.running ? 'starting' : 'not running';
    replace(
      this.statusNode,
      el(
        'div',
        { className: `wb-status-line wb-status-${status.healthy ? 'ok' : 'down'}` },
        el('span', { className: 'wb-dot' }),
        `${state}: `,
        external(status.tracking_uri, status.tracking_uri)
      ),
      status.note ? el('div', { className: 'wb-note' }, status.note) : null,
      !status.healthy && status.embedded
        ? button('Start the platform', () => void this.startPlatform(), { 'data-action': 'start-platform' })
        : null
    );
  }

  async startPlatform(): Promise<void> {
    replace(this.statusNode, el('div', { className: 'wb-note' }, 'starting the tracking server...'));
    try {
      await requestAPI<IPlatformStatus>('platform/start', { method: 'POST', body: {} });
    } catch (error) {
      replace(this.statusNode, this.errorLine(error));
      return;
    }
    await this.refresh();
  }

  // -- the notebook's active run ---------------------------------------------------------
  async loadActiveRun(): Promise<void> {
    const notebook = this.options.currentNotebook();
    if (!notebook) {
      replace(this.activeRunNode, el('div', { className: 'wb-note' }, 'no notebook open'));
      return;
    }
    let page: IRunPage;
    try {
      page = await requestAPI<IRunPage>(
        `runs?status=RUNNING&max=5&notebook=${encodeURIComponent(notebook)}`
      );
    } catch (error) {
      replace(this.activeRunNode, this.errorLine(error));
      return;
    }
    if (!page.runs.length) {
      replace(this.activeRunNode, el('div', { className: 'wb-note' }, `${notebook}: no RUNNING run`));
      return;
    }
    replace(
      this.activeRunNode,
      ...page.runs.map(run =>
        el(
          'div',
          { className: 'wb-active-run', 'data-run-id': run.run_id },
          external(run.url, run.run_name),
          ' RUNNING ',
          button('End', () => void this.endRun(run, 'FINISHED'), { 'data-action': 'end-finished' }),
          button('Fail', () => void this.endRun(run, 'FAILED'), { 'data-action': 'end-failed' })
        )
      )
    );
  }

  private async endRun(run: IRun, status: string): Promise<void> {
    try {
      await requestAPI(`runs/${run.run_id}/end`, { method: 'POST', body: { status } });
    } catch (error) {
      await this.alert('Cannot end the run', error);
    }
    await Promise.all([this.loadActiveRun(), this.loadRuns()]);
  }

  // -- jobs --------------------------------------------------------------------------------
  async loadJobs(): Promise<void> {
    let jobs: IJob[];
    try {
      jobs = await requestAPI<IJob[]>('jobs');
    } catch (error) {
      replace(this.jobsNode, this.errorLine(error));
      return;
    }
    if (!jobs.length) {
      replace(this.jobsNode, el('div', { className: 'wb-note' }, 'no jobs yet: Run as job from a notebook'));
    } else {
      replace(
        this.jobsNode,
        table(
          ['notebook', 'status', 'progress', ''],
          jobs.map(job => [
            el('span', { className: 'wb-link', title: job.notebook }, jobTitle(job)),
            el('span', { className: `wb-job-status wb-status-${job.status.toLowerCase()}` }, job.status),
            document.createTextNode(jobProgress(job)),
            button('Log', () => void this.showJob(job.id), { 'data-action': 'job-log' })
          ]),
          'wb-jobs-table'
        )
      );
      this.jobsNode.querySelectorAll('tbody tr').forEach((row, n) => {
        row.setAttribute('data-job-id', jobs[n].id);
        row.setAttribute('data-status', jobs[n].status);
      });
    }
    // A job that ends while the sidebar watches may have registered an instance and has a
    // run: show them (jobs already done at the first look are in the lists already).
    const ended = jobs.filter(job => isDone(job.status) && !this.seenDone.has(job.id));
    ended.forEach(job => this.seenDone.add(job.id));
    if (ended.length && this.jobsSeen) {
      void this.loadModelNames();
      void this.loadRuns();
      void this.schedules.load();
    }
    this.jobsSeen = true;
    if (this.shownJob) {
      await this.showJob(this.shownJob);
    }
  }

  /** Show one job's log and progress below the jobs list (appends new lines as they come). */
  async showJob(id: string): Promise<void> {
    const fresh = this.shownJob !== id;
    this.shownJob = id;
    let job: IJob;
    try {
      job = await requestAPI<IJob>(`jobs/${id}?log_from=${fresh ? 0 : this.logLines}`);
    } catch (error) {
      replace(this.jobDetailNode, this.errorLine(error));
      return;
    }
    if (fresh) {
      this.logNode = el('pre', { className: 'wb-log' });
      this.logLines = 0;
    }
    for (const line of job.log ?? []) {
      this.logNode.append(line + '\n');
    }
    this.logLines = job.log_lines;
    const output = job.output_notebook_path;
    replace(
      this.jobDetailNode,
      el(
        'div',
        { className: 'wb-job-detail', 'data-job-id': job.id, 'data-status': job.status },
        el('div', {}, el('b', {}, jobTitle(job)), ` ${job.status}, ${jobProgress(job)}`),
        job.error ? el('div', { className: 'wb-error' }, job.error) : null,
        el(
          'div',
          {},
          output ? button('Open output notebook', () => this.options.openPath(output), { 'data-action': 'open-output' }) : null,
          !isDone(job.status) ? button('Cancel', () => void this.cancelJob(job), { 'data-action': 'cancel-job' }) : null,
          button('Close', () => this.closeJob())
        ),
        this.logNode
      )
    );
    this.logNode.scrollTop = this.logNode.scrollHeight;
  }

  private closeJob(): void {
    this.shownJob = null;
    replace(this.jobDetailNode);
  }

  private async cancelJob(job: IJob): Promise<void> {
    const answer = await showDialog({
      title: 'Cancel the job?',
      body: `${job.notebook_path ?? job.notebook} is interrupted as Ctrl-C would: its run ends KILLED and its output notebook is kept.`,
      buttons: [Dialog.cancelButton({ label: 'Keep running' }), Dialog.warnButton({ label: 'Cancel job' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await requestAPI(`jobs/${job.id}/cancel`, { method: 'POST', body: {} });
    } catch (error) {
      await this.alert('Cannot cancel the job', error);
    }
    await this.loadJobs();
  }

  // -- models ------------------------------------------------------------------------------
  async loadModelNames(): Promise<void> {
    let names: string[];
    try {
      names = await requestAPI<string[]>('models');
    } catch (error) {
      replace(this.modelsNode, this.errorLine(error));
      return;
    }
    if (!names.length) {
      replace(this.modelsNode, el('div', { className: 'wb-note' }, 'no registered models yet'));
      return;
    }
    // The select and the body stay the same nodes across reloads (a job's end and a refresh
    // may both reload): a user's open drop-down or hovered button is not swapped away.
    const listed = Array.from(this.modelSelect.options, option => option.value);
    if (listed.join('\n') !== names.join('\n')) {
      this.modelSelect.replaceChildren(...names.map(name => el('option', { value: name }, name)));
    }
    if (!this.modelsNode.contains(this.modelSelect)) {
      replace(this.modelsNode, this.modelSelect, this.modelBodyNode);
    }
    const chosen = this.modelName && names.includes(this.modelName) ? this.modelName : names[0];
    this.modelSelect.value = chosen;
    await this.loadModel(chosen);
  }

  async loadModel(name: string): Promise<void> {
    this.modelName = name;
    const ticket = ++this.modelRequests;
    let model: IModel;
    try {
      model = await requestAPI<IModel>(`models/${encodeURIComponent(name)}`);
    } catch (error) {
      if (ticket === this.modelRequests) {
        this.renderedModel = '';
        replace(this.modelBodyNode, this.errorLine(error));
      }
      return;
    }
    // Only the newest request draws, and only when the answer changed.
    const answer = JSON.stringify(model);
    if (ticket !== this.modelRequests || answer === this.renderedModel) {
      return;
    }
    this.renderedModel = answer;
    this.model = model;
    const metrics = metricColumns(model.instances, model.primary_metric, 3);
    const rows = model.instances.map(instance => [
      el(
        'div',
        {},
        el('span', { className: 'wb-link wb-instance-name', title: 'show its lineage' }, instance.label),
        ...badges(instance.aliases).map(alias => el('span', { className: `wb-badge wb-badge-${alias}` }, alias)),
        el(
          'div',
          { className: 'wb-actions' },
          button('Lineage', () => this.options.openLineage(model.name, instance.mlflow_version), { 'data-action': 'lineage' }),
          button('→ champion', () => void this.promote(instance, 'champion'), { 'data-action': 'promote-champion' }),
          button('→ challenger', () => void this.promote(instance, 'challenger'), { 'data-action': 'promote-challenger' }),
          external(instance.ui_url, 'MLflow')
        )
      ),
      ...metrics.map(m => document.createTextNode(formatMetric(instance.metrics[m]))),
      el('span', { className: `wb-drift wb-drift-${instance.drift_status ?? 'none'}` }, instance.drift_status ?? '-')
    ]);
    const instances = table(['instance', ...metrics, 'drift'], rows, 'wb-models-table');
    instances.querySelectorAll('tbody tr').forEach((row, n) => {
      row.setAttribute('data-instance', model.instances[n].label);
      row.setAttribute('data-version', String(model.instances[n].mlflow_version));
    });
    instances.querySelectorAll('.wb-instance-name').forEach((node, n) =>
      node.addEventListener('click', () => this.options.openLineage(model.name, model.instances[n].mlflow_version))
    );
    const history = model.history
      .slice()
      .reverse()
      .slice(0, 10)
      .map(r =>
        el(
          'li',
          {},
          `${r.at.slice(0, 16)} ${r.action} ${r.alias}: ${r.from ?? '(none)'} -> ${r.to} by ${r.by}` +
            (r.overridden.length ? ` [overrode ${r.overridden.join(', ')}]` : '') +
            (r.reason ? ` (${r.reason})` : '')
        )
      );
    replace(
      this.modelBodyNode,
      instances,
      el('h4', {}, 'Promotion history'),
      history.length ? el('ul', { className: 'wb-history' }, ...history) : el('div', { className: 'wb-note' }, 'no promotions yet')
    );
  }

  /** Confirm what changes, ask why; on a gate refusal show it and offer the override. */
  async promote(instance: IInstance, alias: string, refusal?: WorkbenchApiError): Promise<void> {
    if (!this.model) {
      return;
    }
    const body = new Widget();
    const reason = el('input', { className: 'wb-reason', type: 'text', placeholder: 'why (kept in the history)' });
    const override = el('input', { type: 'checkbox', className: 'wb-override' });
    replace(
      body.node,
      el('p', { className: 'wb-promotion-change' }, promotionSummary(this.model, instance, alias)),
      refusal
        ? el(
            'div',
            { className: 'wb-refusal' },
            el('p', { className: 'wb-error' }, `Refused by the ${refusal.gates.join(', ')} gate: ${refusal.message}`),
            el('label', {}, override, ' override the failed gate(s); a reason is required')
          )
        : null,
      el('label', {}, 'Reason ', reason)
    );
    const answer = await showDialog({
      title: `Promote ${instance.label} to ${alias}?`,
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: refusal ? 'Override and promote' : 'Promote' })],
      focusNodeSelector: '.wb-reason'
    });
    if (!answer.button.accept) {
      return;
    }
    if (refusal && !override.checked) {
      return;
    }
    try {
      await requestAPI('promote', {
        method: 'POST',
        body: { ref: instance.uri, alias, reason: reason.value, override: !!refusal && override.checked }
      });
    } catch (error) {
      if (error instanceof WorkbenchApiError && error.status === 409 && !refusal) {
        return this.promote(instance, alias, error);
      }
      await this.alert('Promotion refused', error);
      return;
    }
    await this.loadModel(instance.registered_model);
  }

  // -- runs --------------------------------------------------------------------------------
  private buildRunsControls(): void {
    this.runFilter.addEventListener('input', () => this.renderRuns());
    this.runStatus.addEventListener('change', () => this.renderRuns());
    for (const status of ['', 'RUNNING', 'FINISHED', 'FAILED', 'KILLED']) {
      this.runStatus.append(el('option', { value: status }, status || 'any status'));
    }
  }

  async loadRuns(): Promise<void> {
    try {
      this.runs = (await requestAPI<IRunPage>('runs?max=100')).runs;
    } catch (error) {
      replace(this.runsNode, this.errorLine(error));
      return;
    }
    this.renderRuns();
  }

  private renderRuns(): void {
    const visible = filterRuns(this.runs, this.runFilter.value, this.runStatus.value);
    const rows = visible.map(run => {
      const box = el('input', { type: 'checkbox', className: 'wb-compare-box', checked: this.compare.has(run.run_id) });
      box.addEventListener('change', () => {
        box.checked ? this.compare.add(run.run_id) : this.compare.delete(run.run_id);
        this.renderComparison();
      });
      return [
        box,
        external(run.url, run.run_name),
        el('span', { className: `wb-status-${run.status.toLowerCase()}` }, run.status),
        document.createTextNode(run.started_at ? run.started_at.slice(0, 16).replace('T', ' ') : '-'),
        run.notebook_path
          ? el('span', { className: 'wb-link', title: run.notebook ?? '' }, run.notebook_path.split('/').pop() ?? '')
          : document.createTextNode('-')
      ];
    });
    const runs = table(['', 'run', 'status', 'started', 'notebook'], rows, 'wb-runs-table');
    runs.querySelectorAll('tbody tr').forEach((row, n) => {
      row.setAttribute('data-run-id', visible[n].run_id);
      const link = row.querySelector('.wb-link');
      const path = visible[n].notebook_path;
      if (link && path) {
        link.addEventListener('click', () => this.options.openPath(path));
      }
    });
    replace(
      this.runsNode,
      el('div', { className: 'wb-run-controls' }, this.runFilter, this.runStatus),
      runs,
      this.comparisonNode
    );
    this.renderComparison();
  }

  private renderComparison(): void {
    const chosen = this.runs.filter(run => this.compare.has(run.run_id));
    if (chosen.length < 2) {
      replace(this.comparisonNode, chosen.length ? el('div', { className: 'wb-note' }, 'tick another run to compare') : null);
      return;
    }
    const rows = compareRows(chosen).map(row => [
      el('span', { className: row.differs ? 'wb-differs' : '' }, row.name),
      ...row.values.map(v => document.createTextNode(v))
    ]);
    replace(this.comparisonNode, el('h4', {}, 'Comparison'), table(['', ...chosen.map(r => r.run_name)], rows, 'wb-compare-table'));
  }

  // -- helpers -----------------------------------------------------------------------------
  private errorLine(error: unknown): HTMLElement {
    return el('div', { className: 'wb-error' }, error instanceof Error ? error.message : String(error));
  }

  private async alert(title: string, error: unknown): Promise<void> {
    await showDialog({
      title,
      body: error instanceof Error ? error.message : String(error),
      buttons: [Dialog.okButton()]
    });
  }

  private schedules = new SchedulesPanel({
    request: requestAPI,
    confirm: async (title, body) =>
      (await showDialog({ title, body, buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run now' })] })).button
        .accept,
    started: job => {
      void this.loadJobs().then(() => this.showJob(job.id));
    }
  });
  private timer = 0;
  private status: IPlatformStatus | null = null;
  private model: IModel | null = null;
  private modelName: string | null = null;
  private runs: IRun[] = [];
  private compare = new Set<string>();
  private seenDone = new Set<string>();
  private jobsSeen = false;
  private shownJob: string | null = null;
  private logLines = 0;
  private logNode = el('pre', { className: 'wb-log' });
  private statusNode = el('div');
  private activeRunNode = el('div');
  private jobsNode = el('div');
  private jobDetailNode = el('div');
  private modelsNode = el('div');
  private modelBodyNode = el('div', { className: 'wb-model-body' });
  private modelSelect = el('select', { className: 'wb-model-select', 'aria-label': 'registered model' });
  private modelRequests = 0;
  private renderedModel = '';
  private runsNode = el('div');
  private comparisonNode = el('div', { className: 'wb-comparison' });
  private runFilter = el('input', { type: 'search', placeholder: 'filter runs', className: 'wb-run-filter' });
  private runStatus = el('select', { className: 'wb-run-status', 'aria-label': 'status' });
}
