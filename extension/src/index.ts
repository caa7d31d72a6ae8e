/**
 * The MLOps workbench in JupyterLab: a left sidebar, Run as job (notebook toolbar and file
 * browser context menu), a lineage view, palette commands under "MLOps Workbench", and the
 * settings users tune (poll interval, default executor and timeout).
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { runAsJob } from './jobdialog';
import { LineageView } from './lineage';
import { WorkbenchSidebar } from './sidebar';

const PLUGIN_ID = '@mlops-workbench/lab:plugin';
const CATEGORY = 'MLOps Workbench';

export namespace CommandIDs {
  export const open = 'workbench:open';
  export const refresh = 'workbench:refresh';
  export const runAsJob = 'workbench:run-as-job';
  export const startPlatform = 'workbench:start-platform';
  export const openLineage = 'workbench:open-lineage';
}

const workbenchIcon = new LabIcon({
  name: 'mlops-workbench:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161"><path d="M4 19h16v2H4zM5 11h3v6H5zM10.5 6h3v11h-3zM16 3h3v14h-3z"/></g></svg>'
});

const jobIcon = new LabIcon({
  name: 'mlops-workbench:job',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161"><path d="M3 5h11v2H3zM3 11h8v2H3zM3 17h8v2H3zM14 10l8 5-8 5z"/></g></svg>'
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'The MLOps workbench: runs, models, lineage, promotion and Run as job.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer, ISettingRegistry, IFileBrowserFactory],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    browsers: IFileBrowserFactory | null
  ) => {
    const settings = { pollInterval: 2000, defaultExecutor: '', defaultTimeout: 0 };
    if (settingRegistry) {
      void settingRegistry.load(PLUGIN_ID).then(loaded => {
        const read = () => {
          settings.pollInterval = Math.max(500, loaded.get('pollInterval').composite as number);
          settings.defaultExecutor = loaded.get('defaultExecutor').composite as string;
          settings.defaultTimeout = loaded.get('defaultTimeout').composite as number;
        };
        read();
        loaded.changed.connect(read);
      });
    }

    const openPath = (path: string) => void app.commands.execute('docmanager:open', { path });
    const lineages = new WidgetTracker<MainAreaWidget<LineageView>>({ namespace: 'workbench-lineage' });
    const sidebar = new WorkbenchSidebar({
      openPath,
      openLineage: (name, version) => void app.commands.execute(CommandIDs.openLineage, { name, version }),
      currentNotebook: () => notebooks.currentWidget?.context.path ?? null,
      pollInterval: () => settings.pollInterval
    });
    sidebar.title.icon = workbenchIcon;
    app.shell.add(sidebar, 'left', { rank: 200 });
    restorer?.add(sidebar, sidebar.id);
    notebooks.currentChanged.connect(() => {
      if (sidebar.isVisible) {
        void sidebar.loadActiveRun();
      }
    });

    /** The notebook a Run as job is for: the file browser's selection or the current one. */
    const targetPath = (args: Record<string, unknown>): string | null => {
      if (typeof args.path === 'string' && args.path) {
        return args.path;
      }
      if (args.source === 'filebrowser' && browsers?.tracker.currentWidget) {
        const item = browsers.tracker.currentWidget.selectedItems().next();
        if (item && !item.done && item.value.path.endsWith('.ipynb')) {
          return item.value.path;
        }
      }
      return notebooks.currentWidget?.context.path ?? null;
    };

    app.commands.addCommand(CommandIDs.open, {
      label: 'Open the Workbench sidebar',
      icon: workbenchIcon,
      execute: () => app.shell.activateById(sidebar.id)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh runs, models and jobs',
      execute: () => sidebar.refresh()
    });
    app.commands.addCommand(CommandIDs.startPlatform, {
      label: 'Start the tracking platform',
      execute: () => sidebar.startPlatform()
    });
    app.commands.addCommand(CommandIDs.runAsJob, {
      label: args => (args.source === 'toolbar' ? 'Run as job' : 'Run as Job…'),
      caption: 'Run this notebook as a tracked job (papermill), with its parameters',
      icon: args => (args.source === 'toolbar' || args.source === 'filebrowser' ? jobIcon : undefined),
      isEnabled: args => targetPath(args) !== null,
      execute: async args => {
        const path = targetPath(args);
        if (!path) {
          return;
        }
        const context = notebooks.currentWidget?.context;
        if (context && context.path === path && context.model.dirty) {
          await context.save(); // the job runs the notebook as it is on disk
        }
        const job = await runAsJob(path, { executor: settings.defaultExecutor, timeout: settings.defaultTimeout });
        if (job) {
          app.shell.activateById(sidebar.id);
          await sidebar.loadJobs();
          await sidebar.showJob(job.id);
        }
      }
    });
    app.commands.addCommand(CommandIDs.openLineage, {
      label: args => (args.name ? `Lineage of ${args.name} v${args.version}` : 'Open the lineage of an instance'),
      execute: args => {
        const name = String(args.name ?? '');
        const version = Number(args.version ?? 0);
        if (!name || !version) {
          app.shell.activateById(sidebar.id);
          return;
        }
        const found = lineages.find(w => w.content.model === name && w.content.version === version);
        if (found) {
          app.shell.activateById(found.id);
          return;
        }
        const widget = new MainAreaWidget({ content: new LineageView(name, version, openPath) });
        widget.id = `wb-lineage-${name}-${version}`;
        widget.title.icon = workbenchIcon;
        void lineages.add(widget);
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
      }
    });

    if (palette) {
      for (const command of [CommandIDs.open, CommandIDs.refresh, CommandIDs.runAsJob, CommandIDs.startPlatform]) {
        palette.addItem({ command, category: CATEGORY });
      }
    }
  }
};

export default plugin;
