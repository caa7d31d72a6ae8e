import { IJob, jobTitle } from '../model';
import { IProposal, ISchedule, IScheduleEvent, SchedulesPanel, proposalLine, scheduleState } from '../schedules';

const schedule = (id: string, paused = false): ISchedule => ({
  id, instance: id.split('.')[0], kind: id.split('.')[1], cron: '0 5 1 * *', timezone: 'UTC',
  policy_file: `/p/policies/${id.split('.')[0]}.yaml`, policy_path: null,
  next_run: paused ? null : '2026-01-01T05:00:00+00:00', paused, stored: true
});

const event = (job_id: string, what: string, id: number): IScheduleEvent => ({
  id, job_id, event: what, trigger: 'run-now', scheduled_for: '2025-12-04T21:00:00+00:00',
  recorded_at: '2025-12-04T21:00:00+00:00', run_ids: [], detail: ''
});

const proposal: IProposal = {
  id: '20240301T050000-0001', instance: 'churn', trigger: 'drift', data_date: '20240229',
  candidate: 'churn_v3_20240229', champion: 'churn_v2_20240131', metric: 'roc_auc',
  candidate_value: 0.81234, champion_value: 0.74, rows: 300, agreement: null,
  decision: 'challenger', reason: 'better on the same rows', at: '2024-03-01T05:00:00+00:00'
};

/** A fake server: answers by path, records every call; an Error answer is thrown. */
function fakeServer(answers: Record<string, unknown>) {
  const calls: { path: string; method: string }[] = [];
  const request = async <T>(path: string, init: { method?: string } = {}): Promise<T> => {
    calls.push({ path, method: init.method ?? 'GET' });
    const key = Object.keys(answers).find(k => path.startsWith(k));
    const answer = key === undefined ? [] : answers[key];
    if (answer instanceof Error) {
      throw answer;
    }
    return (typeof answer === 'function' ? answer() : answer) as T;
  };
  return { calls, request };
}

describe('scheduleState', () => {
  it('is running while the last event of the job is a start', () => {
    const s = schedule('churn.drift');
    expect(scheduleState(s, [event('churn.drift', 'started', 1)])).toBe('running');
    expect(scheduleState(s, [event('churn.drift', 'started', 1), event('churn.drift', 'finished', 2)])).toBe('scheduled');
    expect(scheduleState(schedule('churn.drift', true), [event('churn.batch', 'started', 3)])).toBe('paused');
  });
});

describe('proposalLine', () => {
  it('states the decision and both metrics on the same rows', () => {
    expect(proposalLine(proposal)).toBe(
      '2024-03-01T05:00 churn_v3_20240229: challenger (roc_auc 0.8123 vs champion 0.7400 on 300 rows)'
    );
    expect(proposalLine({ ...proposal, decision: 'failed', reason: 'training failed' })).toBe(
      '2024-03-01T05:00 20240229: failed (training failed)'
    );
  });
});

describe('jobTitle', () => {
  it('names the policy job a run-now fired', () => {
    const job = { notebook: '/p/notebooks/monitor.ipynb', notebook_path: 'notebooks/monitor.ipynb' } as IJob;
    expect(jobTitle(job)).toBe('notebooks/monitor.ipynb');
    expect(jobTitle({ ...job, schedule: 'churn.drift' })).toBe('churn.drift (run now): monitor.ipynb');
  });
});

describe('SchedulesPanel', () => {
  it('lists schedules with next run and state, history and proposals', async () => {
    const server = fakeServer({
      'schedules/history': [event('churn.batch', 'started', 1), event('churn.batch', 'finished', 2)],
      schedules: [schedule('churn.batch'), schedule('churn.drift', true)],
      'proposals?instance=churn': [proposal]
    });
    const panel = new SchedulesPanel({ request: server.request, confirm: async () => true, started: () => undefined });
    await panel.load();
    const rows = panel.node.querySelectorAll('.wb-schedules-table tbody tr');
    expect(Array.from(rows).map(r => r.getAttribute('data-schedule'))).toEqual(['churn.batch', 'churn.drift']);
    expect(rows[0].textContent).toContain('2026-01-01 05:00 UTC');
    expect(rows[0].querySelector('.wb-schedule-state')?.textContent).toBe('scheduled');
    expect(rows[1].querySelector('.wb-schedule-state')?.textContent).toBe('paused');
    expect(rows[1].querySelector('[data-action="resume-schedule"]')).not.toBeNull();
    expect(panel.node.querySelectorAll('.wb-schedule-history li')).toHaveLength(2);
    expect(panel.node.querySelector('.wb-proposals li')?.textContent).toContain('churn_v3_20240229: challenger');
    expect(server.calls.map(c => c.path)).toContain('proposals?instance=churn');
  });

  it('pauses, resumes and runs now through the routes', async () => {
    let paused = false;
    const server = fakeServer({
      'schedules/churn.drift/pause': () => { paused = true; return {}; },
      'schedules/churn.drift/resume': () => { paused = false; return {}; },
      'schedules/churn.drift/run-now': { id: 'job1', schedule: 'churn.drift' },
      'schedules/history': [],
      schedules: () => [schedule('churn.drift', paused)]
    });
    const started: string[] = [];
    const asked: string[] = [];
    const panel = new SchedulesPanel({
      request: server.request,
      confirm: async title => { asked.push(title); return true; },
      started: job => started.push(job.id)
    });
    await panel.load();
    const click = async (action: string) => {
      (panel.node.querySelector(`[data-action="${action}"]`) as HTMLButtonElement).click();
      await new Promise(resolve => setTimeout(resolve, 0));
    };
    await click('pause-schedule');
    expect(panel.node.querySelector('tbody tr')?.getAttribute('data-paused')).toBe('true');
    await click('resume-schedule');
    expect(panel.node.querySelector('tbody tr')?.getAttribute('data-paused')).toBe('false');
    await click('run-now');
    expect(asked).toEqual(['Run churn.drift now?']);
    expect(started).toEqual(['job1']);
    expect(server.calls.filter(c => c.method === 'POST').map(c => c.path)).toEqual([
      'schedules/churn.drift/pause', 'schedules/churn.drift/resume', 'schedules/churn.drift/run-now'
    ]);
  });

  it('shows a refusal in one line and fires nothing when not confirmed', async () => {
    const server = fakeServer({
      'schedules/churn.drift/run-now': new Error('churn.drift is running already'),
      'schedules/history': [],
      schedules: [schedule('churn.drift')]
    });
    let confirmed = false;
    const panel = new SchedulesPanel({ request: server.request, confirm: async () => confirmed, started: () => undefined });
    await panel.load();
    await panel.runNow(schedule('churn.drift'));
    expect(server.calls.some(c => c.method === 'POST')).toBe(false);
    confirmed = true;
    await panel.runNow(schedule('churn.drift'));
    expect(panel.node.querySelector('.wb-schedule-error')?.textContent).toBe('churn.drift is running already');
  });

  it('polls the history only, and redraws when a fire starts or ends', async () => {
    let history = [event('churn.drift', 'finished', 1)];
    let proposals: IProposal[] = [];
    const server = fakeServer({
      'schedules/history': () => history,
      schedules: [schedule('churn.drift')],
      'proposals?instance=churn': () => proposals
    });
    const panel = new SchedulesPanel({ request: server.request, confirm: async () => true, started: () => undefined });
    await panel.load();
    const state = () => panel.node.querySelector('.wb-schedule-state')?.textContent;
    const table = panel.node.querySelector('.wb-schedules-table');
    server.calls.length = 0;

    await panel.poll(); // nothing happened: the same nodes stay
    expect(server.calls.map(c => c.path)).toEqual(['schedules/history?limit=20']);
    expect(panel.node.querySelector('.wb-schedules-table')).toBe(table);

    history = [...history, event('churn.drift', 'started', 2)];
    await panel.poll(); // a start: the state moves, the proposals are not asked for
    expect(state()).toBe('running');
    expect(server.calls.some(c => c.path.startsWith('proposals'))).toBe(false);

    history = [...history, event('churn.drift', 'finished', 3)];
    proposals = [proposal];
    await panel.poll(); // an end: the proposal it added shows
    expect(state()).toBe('scheduled');
    expect(panel.node.querySelectorAll('.wb-proposals li')).toHaveLength(1);
    expect(server.calls.some(c => c.path === 'schedules')).toBe(false); // no policy files read
  });

  it('says how to add a schedule when there is none', async () => {
    const panel = new SchedulesPanel({ request: fakeServer({}).request, confirm: async () => true, started: () => undefined });
    await panel.load();
    expect(panel.node.textContent).toContain('no schedules');
  });
});
