/**
 * Run as job: a dialog pre-filled from the notebook's ``parameters`` cell, one typed field
 * per parameter, then executor, image and timeout. Fields are checked here as they are
 * typed and again by the server (a 400 names the field; the dialog opens again showing it).
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { el, replace } from './dom';
import { IFormState, IJob, IParameters, fieldText, jobRequest } from './model';
import { WorkbenchApiError, requestAPI } from './request';

export interface IJobDefaults {
  executor: string;
  timeout: number;
}

class JobForm extends Widget {
  constructor(
    readonly spec: IParameters,
    state: IFormState,
    errors: Record<string, string>
  ) {
    super();
    this.addClass('wb-job-form');
    this.id = 'wb-job-dialog';
    const rows: HTMLElement[] = [];
    for (const field of spec.parameters) {
      const input =
        field.type === 'bool'
          ? el('select', { name: field.name, className: 'wb-field', 'data-type': field.type },
              el('option', { value: 'true' }, 'true'), el('option', { value: 'false' }, 'false'))
          : el('input', {
              name: field.name,
              className: 'wb-field',
              'data-type': field.type,
              type: field.type === 'int' || field.type === 'float' ? 'text' : 'text',
              inputmode: field.type === 'int' || field.type === 'float' ? 'decimal' : undefined
            });
      input.value = state.texts[field.name] ?? fieldText(field);
      this.inputs[field.name] = input;
      rows.push(this.row(field.name, field.type === 'None' ? 'any' : field.type, input, errors[field.name]));
    }
    this.executor = el('select', { name: 'executor', className: 'wb-field' });
    for (const name of spec.executors) {
      this.executor.append(el('option', { value: name }, name));
    }
    this.executor.value = state.executor || spec.executor;
    this.image = el('input', { name: 'image', className: 'wb-field', placeholder: 'docker executor: the workbench image' });
    this.image.value = state.image;
    this.timeout = el('input', { name: 'timeout', className: 'wb-field', inputmode: 'decimal' });
    this.timeout.value = state.timeout;
    replace(
      this.node,
      el('div', { className: 'wb-note' }, `${spec.path}: parameters from its parameters cell`),
      errors['_'] ? el('div', { className: 'wb-error' }, errors['_']) : null,
      el('table', { className: 'wb-form' }, el('tbody', {}, ...rows,
        this.row('executor', '', this.executor, errors['executor']),
        this.row('image', '', this.image, errors['image']),
        this.row('timeout', 'seconds, 0: none', this.timeout, errors['timeout'])))
    );
  }

  private row(name: string, hint: string, input: HTMLElement, error?: string): HTMLElement {
    return el(
      'tr',
      { 'data-field': name },
      el('th', {}, el('label', {}, name)),
      el('td', {}, input, hint ? el('span', { className: 'wb-hint' }, ` ${hint}`) : null,
        error ? el('div', { className: 'wb-error wb-field-error' }, error) : null)
    );
  }

  state(): IFormState {
    const texts: Record<string, string> = {};
    for (const [name, input] of Object.entries(this.inputs)) {
      texts[name] = input.value;
    }
    return { texts, executor: this.executor.value, image: this.image.value.trim(), timeout: this.timeout.value.trim() };
  }

  readonly inputs: Record<string, HTMLInputElement | HTMLSelectElement> = {};
  readonly executor: HTMLSelectElement;
  readonly image: HTMLInputElement;
  readonly timeout: HTMLInputElement;
}

/** Ask for the job's parameters and submit it; the job, or null when cancelled. */
export async function runAsJob(path: string, defaults: IJobDefaults): Promise<IJob | null> {
  let spec: IParameters;
  try {
    spec = await requestAPI<IParameters>(`notebooks/parameters?path=${encodeURIComponent(path)}`);
  } catch (error) {
    await showDialog({
      title: 'Cannot run this notebook as a job',
      body: error instanceof Error ? error.message : String(error),
      buttons: [Dialog.okButton()]
    });
    return null;
  }
  let state: IFormState = {
    texts: {},
    executor: defaults.executor || spec.executor,
    image: '',
    timeout: String(defaults.timeout || 0)
  };
  let errors: Record<string, string> = {};
  for (;;) {
    const form = new JobForm(spec, state, errors);
    const answer = await showDialog({
      title: `Run ${path.split('/').pop()} as a job`,
      body: form,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run job' })],
      focusNodeSelector: '.wb-field'
    });
    if (!answer.button.accept) {
      return null;
    }
    state = form.state();
    const request = jobRequest(spec, state);
    errors = request.errors;
    if (Object.keys(errors).length) {
      continue;
    }
    try {
      return await requestAPI<IJob>('jobs', { method: 'POST', body: request.body });
    } catch (error) {
      const field = error instanceof WorkbenchApiError && error.field ? error.field : '_';
      errors = { [field]: error instanceof Error ? error.message : String(error) };
    }
  }
}
