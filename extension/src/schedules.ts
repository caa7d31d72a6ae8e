/**
 * The Schedules panel of the Workbench sidebar: the retraining policies' schedules (next fire
 * time, paused or not) with pause, resume and run-now, the scheduler's recent history, and
 * each policy's retrain proposals. Plain DOM over an injected request function (no
 * JupyterLab import), so it is unit-tested in jsdom.
 */
import { button, el, replace, table } from './dom';
import { IJob, Json, formatMetric } from './model';

export interface ISchedule {
  id: string;
  instance: string;
  kind: string;
  cron: string;
  timezone: string;
  policy_file: string;
  policy_path: string | null;
  next_run: string | null;
  paused: boolean;
  stored: boolean;
}

export interface IScheduleEvent {
  id: number;
  job_id: string;
  event: string;
  trigger: string;
  scheduled_for: string;
  recorded_at: string;
  run_ids: string[];
  detail: string;
}

export interface IProposal {
  id: string;
  instance: string;
  trigger: string;
  data_date: string;
  candidate: string | null;
  champion: string | null;
  metric: string;
  candidate_value: number | null;
  champion_value: number | null;
  rows: number;
  agreement: number | null;
  decision: string;
  reason: string;
  at: string;
}

/** How the panel reaches the server (``requestAPI`` in Lab, a fake in tests). */
export type Request = <T>(path: string, init?: { method?: string; body?: Json }) => Promise<T>;

export interface ISchedulesOptions {
  request: Request;
  /** ask before firing a job now; true to go on */
  confirm: (title: string, body: string) => Promise<boolean>;
  /** a run-now started: a background job (the sidebar shows its log) */
  started: (job: IJob) => void;
}

/** "2026-01-01 05:00 UTC" from an ISO time; "-" for none. */
export function formatWhen(iso: string | null | undefined): string {
  if (!iso) {
    return '-';
  }
  return `${iso.slice(0, 16).replace('T', ' ')} UTC`;
}

/** Each job's state: paused, running (its last event is a start), or scheduled. */
export function scheduleState(schedule: ISchedule, events: IScheduleEvent[]): string {
  const last = events.filter(e => e.job_id === schedule.id).pop();
  if (last && last.event === 'started') {
    return 'running';
  }
  return schedule.paused ? 'paused' : 'scheduled';
}

/** One line per proposal: the decision and both metrics on the same rows. */
export function proposalLine(p: IProposal): string {
  if (p.decision === 'failed') {
    return `${p.at.slice(0, 16)} ${p.data_date}: failed (${p.reason})`;
  }
  return (
    `${p.at.slice(0, 16)} ${p.candidate ?? '-'}: ${p.decision} ` +
    `(${p.metric} ${formatMetric(p.candidate_value)} vs champion ${formatMetric(p.champion_value)} ` +
    `on ${p.rows} rows)`
  );
}

export class SchedulesPanel {
  readonly node = el('div', { className: 'wb-schedules-panel' });

  constructor(private readonly options: ISchedulesOptions) {}

  /** Schedules, then history and the proposals of their instances. */
  async load(): Promise<void> {
    try {
      this.schedules = await this.options.request<ISchedule[]>('schedules');
      this.events = await this.options.request<IScheduleEvent[]>('schedules/history?limit=20');
    } catch (error) {
      this.render(errorText(error));
      return;
    }
    await this.loadProposals();
    this.render();
  }

  /**
   * While the panel is open: the history only (listing the schedules reads the policy files
   * and wakes the scheduler, too much for every few seconds), so the states and the recent
   * fires move as jobs start and end; a fire that ended reloads the proposals it may have
   * added. Nothing is redrawn when nothing happened.
   */
  async poll(): Promise<void> {
    if (!this.schedules.length) {
      return;
    }
    let events: IScheduleEvent[];
    try {
      events = await this.options.request<IScheduleEvent[]>('schedules/history?limit=20');
    } catch {
      return; // the next full load says why
    }
    const known = new Set(this.events.map(e => e.id));
    const fresh = events.filter(e => !known.has(e.id));
    if (!fresh.length) {
      return;
    }
    this.events = events;
    if (fresh.some(e => e.event !== 'started')) {
      await this.loadProposals();
    }
    this.render();
  }

  private async loadProposals(): Promise<void> {
    const instances = [...new Set(this.schedules.map(s => s.instance))];
    const proposals = await Promise.all(
      instances.map(name =>
        this.options
          .request<IProposal[]>(`proposals?instance=${encodeURIComponent(name)}`)
          .catch(() => [] as IProposal[])
      )
    );
    this.proposals = proposals.flat();
  }

  async pause(schedule: ISchedule): Promise<void> {
    await this.act(schedule, schedule.paused ? 'resume' : 'pause');
  }

  async runNow(schedule: ISchedule): Promise<void> {
    const go = await this.options.confirm(
      `Run ${schedule.id} now?`,
      `The ${schedule.kind} job of the ${schedule.instance} policy runs now, as the scheduler ` +
        'would fire it (recorded as run-now); its schedule is unchanged.'
    );
    if (go) {
      await this.act(schedule, 'run-now');
    }
  }

  private async act(schedule: ISchedule, action: string): Promise<void> {
    let answer: unknown;
    try {
      answer = await this.options.request(`schedules/${encodeURIComponent(schedule.id)}/${action}`, {
        method: 'POST',
        body: {}
      });
    } catch (error) {
      await this.load();
      this.render(errorText(error));
      return;
    }
    if (action === 'run-now') {
      this.options.started(answer as IJob);
    }
    await this.load();
  }

  private render(message?: string): void {
    const notice = message ? el('div', { className: 'wb-error wb-schedule-error' }, message) : null;
    if (!this.schedules.length) {
      replace(
        this.node,
        notice,
        el('div', { className: 'wb-note' }, 'no schedules: add a policy (policies/<instance>.yaml)')
      );
      return;
    }
    const rows = this.schedules.map(s => {
      const state = scheduleState(s, this.events);
      return [
        el(
          'div',
          {},
          el('span', { title: s.policy_file }, s.id),
          el(
            'div',
            { className: 'wb-actions' },
            button(s.paused ? 'Resume' : 'Pause', () => void this.pause(s), {
              'data-action': s.paused ? 'resume-schedule' : 'pause-schedule'
            }),
            button('Run now', () => void this.runNow(s), { 'data-action': 'run-now' })
          )
        ),
        el('span', { title: s.timezone }, s.cron),
        document.createTextNode(s.paused ? '-' : formatWhen(s.next_run)),
        el('span', { className: `wb-schedule-state wb-state-${state}` }, state)
      ];
    });
    const schedules = table(['job', 'cron', 'next run', 'state'], rows, 'wb-schedules-table');
    schedules.querySelectorAll('tbody tr').forEach((row, n) => {
      row.setAttribute('data-schedule', this.schedules[n].id);
      row.setAttribute('data-paused', String(this.schedules[n].paused));
    });
    const events = this.events
      .slice()
      .reverse()
      .slice(0, 8)
      .map(e =>
        el(
          'li',
          { className: `wb-event wb-event-${e.event}` },
          `${e.recorded_at.slice(0, 16).replace('T', ' ')} ${e.job_id} ${e.event} (${e.trigger})` +
            (e.detail ? `: ${e.detail}` : '')
        )
      );
    const proposals = this.proposals
      .slice()
      .reverse()
      .slice(0, 5)
      .map(p => el('li', { className: `wb-proposal wb-decision-${p.decision}`, title: p.reason }, proposalLine(p)));
    replace(
      this.node,
      notice,
      schedules,
      el('h4', {}, 'Recent history'),
      events.length ? el('ul', { className: 'wb-history wb-schedule-history' }, ...events) : el('div', { className: 'wb-note' }, 'nothing fired yet'),
      el('h4', {}, 'Retrain proposals'),
      proposals.length ? el('ul', { className: 'wb-history wb-proposals' }, ...proposals) : el('div', { className: 'wb-note' }, 'no proposals yet')
    );
  }

  private schedules: ISchedule[] = [];
  private events: IScheduleEvent[] = [];
  private proposals: IProposal[] = [];
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
