/**
 * The lineage view of one instance: data -> notebook and commit -> run -> model version ->
 * aliases -> drift checks. Files open in Lab, MLflow pages in a new browser tab.
 */
import { Widget } from '@lumino/widgets';

import { button, el, external, replace } from './dom';
import { ILineage, lineageSteps } from './model';
import { requestAPI } from './request';

export class LineageView extends Widget {
  constructor(
    readonly model: string,
    readonly version: number,
    private readonly openPath: (path: string) => void
  ) {
    super();
    this.addClass('wb-lineage');
    this.id = `wb-lineage-${model}-${version}`;
    this.title.label = `Lineage: ${model} v${version}`;
    this.title.closable = true;
    void this.load();
  }

  async load(): Promise<void> {
    let lineage: ILineage;
    try {
      lineage = await requestAPI<ILineage>(`models/${encodeURIComponent(this.model)}/${this.version}/lineage`);
    } catch (error) {
      replace(this.node, el('div', { className: 'wb-error' }, error instanceof Error ? error.message : String(error)));
      return;
    }
    this.title.label = `Lineage: ${lineage.instance.label}`;
    const steps = lineageSteps(lineage).map((step, n, all) =>
      el(
        'li',
        { className: `wb-lineage-step wb-lineage-${step.kind}`, 'data-kind': step.kind },
        el('div', { className: 'wb-lineage-kind' }, step.kind),
        el(
          'div',
          { className: 'wb-lineage-title' },
          step.href ? external(step.href, step.title) : step.title,
          step.labPath ? button('Open in Lab', () => this.openPath(step.labPath as string), { 'data-action': 'open' }) : null
        ),
        el('div', { className: 'wb-lineage-detail' }, step.detail),
        n < all.length - 1 ? el('div', { className: 'wb-lineage-arrow' }, '↓') : null
      )
    );
    replace(this.node, el('h2', {}, lineage.instance.label), el('ol', { className: 'wb-lineage-chain' }, ...steps));
  }
}
