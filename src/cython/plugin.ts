/**
 * `%%cython` in the editor: plugin wiring only. Registers the output
 * renderers of the diagnostics and annotation payloads, draws them in
 * the cells' editors (CellOverlays), and owns the side view of a line's
 * generated C (CythonCodePanel), added to the right sidebar on first use.
 */
import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { CodeCell } from '@jupyterlab/cells';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ITranslator } from '@jupyterlab/translation';
import { codeIcon } from '@jupyterlab/ui-components';

import { CellOverlays } from './cellOverlays';
import { CythonCodePanel } from './codePanel';
import { plainTrans, TRANSLATION_DOMAIN } from '../i18n';
import { IAnnotation } from './payload';
import {
  annotationRendererFactory,
  diagnosticsRendererFactory,
  RENDERER_RANK
} from './renderers';

export const CYTHON_EDITOR_PLUGIN_ID = 'jupyterlab-cyscope:cython-editor';

namespace CommandIDs {
  export const showCode = 'cyscope:show-cython-code';
}

function activate(
  app: JupyterFrontEnd,
  notebooks: INotebookTracker,
  rendermime: IRenderMimeRegistry,
  labShell: ILabShell | null,
  palette: ICommandPalette | null,
  translator: ITranslator | null
): void {
  const trans = translator?.load(TRANSLATION_DOMAIN) ?? plainTrans;
  rendermime.addFactory(diagnosticsRendererFactory, RENDERER_RANK);
  rendermime.addFactory(annotationRendererFactory, RENDERER_RANK);

  const codePanel = new CythonCodePanel(trans);
  codePanel.title.icon = codeIcon;
  codePanel.title.label = labShell ? '' : trans.__('Cython C');
  const revealPanel = () => {
    if (!codePanel.isAttached) {
      app.shell.add(codePanel, 'right', { rank: 950 });
    }
    app.shell.activateById(codePanel.id);
  };

  const showCode = (cell: CodeCell, payload: IAnnotation, line: number) => {
    const count = cell.model.executionCount;
    codePanel.view = {
      payload,
      line,
      cellLabel:
        count === null ? trans.__('cell') : trans.__('cell [%1]', count)
    };
    revealPanel();
  };

  const overlays = new CellOverlays({ showCode, trans });
  notebooks.forEach(panel => overlays.watch(panel));
  notebooks.widgetAdded.connect((_, panel) => overlays.watch(panel));

  // Keyboard route to the same view: the C of the cursor's line.
  app.commands.addCommand(CommandIDs.showCode, {
    label: trans.__('Show Generated C of the Current %%%%cython -a Line'),
    caption: trans.__(
      'The C Cython generated for the line under the cursor, in the side panel'
    ),
    execute: () => {
      const cell = notebooks.activeCell;
      const payload = cell ? overlays.annotationOf(cell) : null;
      if (cell instanceof CodeCell && payload && cell.editor) {
        showCode(cell, payload, cell.editor.getCursorPosition().line + 1);
      } else {
        revealPanel();
      }
    }
  });
  // Its shortcut and context-menu entry are in schema/plugin.json.
  palette?.addItem({ command: CommandIDs.showCode, category: 'cyscope' });
}

const cythonEditorPlugin: JupyterFrontEndPlugin<void> = {
  id: CYTHON_EDITOR_PLUGIN_ID,
  description:
    '%%cython in the editor: diagnostics on cell lines, annotation shading, the generated C of a line.',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry],
  optional: [ILabShell, ICommandPalette, ITranslator],
  activate
};

export const cythonPlugins: JupyterFrontEndPlugin<void>[] = [
  cythonEditorPlugin
];
