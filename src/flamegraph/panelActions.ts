/**
 * What the flamegraph adds to the memory panel: a button on every cell row
 * that opens that cell's flamegraph (peak and leaks) beside the notebook,
 * and toolbar buttons that download every cell's stacks (speedscope JSON,
 * folded stacks) and the rows as CSV. Uses only the panel's seams for other
 * plugins (IMemoryPanelExtensions); asks the kernel through ./kernelSource.
 */
import type { JupyterFrontEnd } from '@jupyterlab/application';
import type { NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon, ToolbarButton } from '@jupyterlab/ui-components';
import type { IDisposable } from '@lumino/disposable';
import type { Widget } from '@lumino/widgets';

import { plainTrans, Trans } from '../i18n';
import type { ICellRecord } from '../protocol';
import { download, rowsToCsv } from './exports';
import {
  evaluate,
  ExportFormat,
  historyExportExpression
} from './kernelSource';
import { FlamegraphPanel } from './panel';

/** The parts of the memory panel's extension point used here. */
export interface IPanelSeams {
  readonly toolbar: { addItem(name: string, widget: Widget): boolean };
  addRowAction(action: {
    id: string;
    label: string;
    icon?: LabIcon;
    isVisible?: (record: ICellRecord) => boolean;
    execute(record: ICellRecord): void;
  }): IDisposable;
  readonly current: {
    notebook: NotebookPanel;
    model: { readonly rows: readonly ICellRecord[] };
  } | null;
}

// Three stacked bars of shrinking width: a flamegraph.
export const flamegraphIcon = new LabIcon({
  name: 'jupyterlab-cyscope:flamegraph',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<rect x="1" y="2" width="14" height="3.5" rx="0.5"/>' +
    '<rect x="1" y="6.5" width="9" height="3.5" rx="0.5"/>' +
    '<rect x="11" y="6.5" width="4" height="3.5" rx="0.5"/>' +
    '<rect x="1" y="11" width="5" height="3.5" rx="0.5"/></g></svg>'
});

/** Open (or bring forward) cell [N]'s flamegraph beside its notebook. */
export function openCellFlamegraph(
  app: JupyterFrontEnd,
  notebook: NotebookPanel,
  executionCount: number,
  t: Trans = plainTrans
): FlamegraphPanel {
  const id = `cyscope-flamegraph-${notebook.id}-${executionCount}`;
  for (const widget of app.shell.widgets('main')) {
    if (widget.id === id && widget instanceof FlamegraphPanel) {
      app.shell.activateById(id);
      return widget;
    }
  }
  const panel = new FlamegraphPanel(notebook, executionCount, t);
  app.shell.add(panel, 'main', { mode: 'split-right', ref: notebook.id });
  app.shell.activateById(panel.id);
  void panel.showView('peak');
  return panel;
}

function stamp(): string {
  return new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
}

async function exportStacks(
  seams: IPanelSeams,
  format: ExportFormat,
  t: Trans,
  report: (message: string) => void
): Promise<void> {
  const notebook = seams.current?.notebook;
  const kernel = notebook?.sessionContext.session?.kernel;
  if (!notebook || !kernel) {
    report(t.__('Open a notebook with a running kernel to export its stacks.'));
    return;
  }
  const answer = await evaluate(
    kernel,
    historyExportExpression(format, 'peak')
  );
  if (!answer.ok) {
    report(t.__('Could not export the stacks: %1', answer.error));
    return;
  }
  const base = notebook.context.path
    .replace(/\.ipynb$/, '')
    .split('/')
    .pop();
  if (format === 'speedscope') {
    download(
      `${base}-memory-${stamp()}.speedscope.json`,
      JSON.stringify(answer.data['application/json']),
      'application/json'
    );
  } else {
    download(
      `${base}-memory-${stamp()}.folded.txt`,
      String(answer.data['text/plain'] ?? ''),
      'text/plain'
    );
  }
}

/** Add the row action and the export buttons to the memory panel. */
export function addPanelActions(
  app: JupyterFrontEnd,
  seams: IPanelSeams,
  t: Trans = plainTrans,
  report: (message: string) => void = message => console.warn(message)
): void {
  seams.addRowAction({
    id: 'flamegraph',
    label: t.__('Flamegraph of this cell (peak and leaks)'),
    icon: flamegraphIcon,
    isVisible: record => record.memory !== null,
    execute: record => {
      const notebook = seams.current?.notebook;
      if (notebook) {
        openCellFlamegraph(app, notebook, record.execution_count, t);
      }
    }
  });
  const button = (
    name: string,
    label: string,
    tooltip: string,
    run: () => void
  ) =>
    seams.toolbar.addItem(
      name,
      new ToolbarButton({ label, tooltip, onClick: run })
    );
  button(
    'cyscope-export-speedscope',
    'speedscope',
    t.__('Download every cell’s stacks (peak) as a speedscope file'),
    () => void exportStacks(seams, 'speedscope', t, report)
  );
  button(
    'cyscope-export-folded',
    'folded',
    t.__('Download every cell’s stacks (peak) as folded stacks'),
    () => void exportStacks(seams, 'folded', t, report)
  );
  button(
    'cyscope-export-csv',
    'CSV',
    t.__('Download the rows of this table as CSV'),
    () => {
      const current = seams.current;
      if (current) {
        const base = current.notebook.context.path
          .replace(/\.ipynb$/, '')
          .split('/')
          .pop();
        download(
          `${base}-cells-${stamp()}.csv`,
          rowsToCsv(current.model.rows),
          'text/csv'
        );
      }
    }
  );
}
