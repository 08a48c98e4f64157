/**
 * cyscope in JupyterLab's debugger: a gutter context-menu command that edits a
 * breakpoint's condition and hit count (JupyterLab's UI has none), the kernel's
 * `breakpoint` events applied to JupyterLab's breakpoint model (a %%cython cell's
 * breakpoint moves to the line that runs once the cell is built), and a notification
 * when the kernel says a breakpoint is not active (a %%cython cell built without the
 * debugger must be run again).
 *
 * Everything goes through JupyterLab's IDebugger service and its session; nothing
 * here talks to the kernel by another way.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { IDebugger } from '@jupyterlab/debugger';
import { Kernel } from '@jupyterlab/services';

import {
  applyBreakpointEvent,
  conditionsOf,
  IConditions,
  IKernelBreakpoint,
  inactiveNotices,
  requestFor,
  validHitCondition
} from './breakpoints';
import { ConditionDialogBody } from './conditionDialog';
import { GUTTER_ROW_SELECTOR, gutterHit } from './gutter';

export const DEBUGGER_PLUGIN_ID = 'jupyterlab-cyscope:debugger';

export namespace DebuggerCommandIDs {
  export const editCondition = 'cyscope:edit-breakpoint-condition';
}

function activate(app: JupyterFrontEnd, service: IDebugger | null): void {
  if (!service) {
    return; // JupyterLab's debugger is disabled: nothing to add to.
  }
  // One notice per inactive breakpoint; it goes away once the breakpoint is active.
  const notices = new Map<string, string>();
  const notifyInactive = (breakpoints: unknown): void => {
    for (const notice of inactiveNotices(breakpoints)) {
      const key = `${notice.path}\n${notice.text}`;
      if (!notices.has(key)) {
        notices.set(
          key,
          Notification.warning(notice.text, { autoClose: 10000 })
        );
      }
    }
  };
  const dismissNotices = (path: string): void => {
    for (const [key, id] of notices) {
      if (key.startsWith(`${path}\n`)) {
        Notification.dismiss(id);
        notices.delete(key);
      }
    }
  };

  // JupyterLab's own setBreakpoints replies (gutter clicks) can say "run the cell again".
  const watch = (
    _: Kernel.IKernelConnection | null,
    args: Kernel.IAnyMessageArgs
  ): void => {
    const msg = args.msg;
    if (args.direction !== 'recv' || msg.header.msg_type !== 'debug_reply') {
      return;
    }
    const content = msg.content as {
      command?: string;
      body?: { breakpoints?: unknown };
    };
    if (content.command === 'setBreakpoints') {
      notifyInactive(content.body?.breakpoints);
    }
  };
  let watched: Kernel.IKernelConnection | null = null;
  const follow = (session: IDebugger.ISession | null): void => {
    const kernel = session?.connection?.kernel ?? null;
    if (kernel === watched) {
      return;
    }
    watched?.anyMessage.disconnect(watch);
    watched = kernel;
    watched?.anyMessage.connect(watch);
  };
  service.sessionChanged.connect((_, session) => follow(session));
  follow(service.session);

  service.eventMessage.connect((_, event) => {
    if (event.event !== 'breakpoint') {
      return;
    }
    const changed = (event.body as { breakpoint?: IKernelBreakpoint })
      ?.breakpoint;
    if (!changed) {
      return;
    }
    const path = changed?.source?.path;
    if (typeof path !== 'string') {
      return;
    }
    const model = service.model.breakpoints;
    const next = applyBreakpointEvent(model.getBreakpoints(path), changed);
    if (next) {
      model.setBreakpoints(path, next);
    }
    if (changed.verified) {
      dismissNotices(path);
    } else {
      notifyInactive([changed]);
    }
  });

  app.commands.addCommand(DebuggerCommandIDs.editCondition, {
    label: 'Edit Breakpoint Condition…',
    caption:
      'Stop at this line only when an expression is true, or on a given pass',
    isEnabled: () => service.isStarted,
    execute: async () => {
      const hit = gutterHit(
        app.contextMenuHitTest(node => node.matches?.(GUTTER_ROW_SELECTOR)) ??
          null
      );
      const session = service.session;
      if (!hit || !session?.isStarted) {
        return;
      }
      const path = service.getCodeId(hit.code);
      const info = await session.sendRequest('debugInfo', {});
      const conditions = conditionsOf(info.body, path);
      const current = conditions.get(hit.line) ?? {
        condition: '',
        hitCondition: ''
      };
      const result = await showDialog<IConditions>({
        title: 'Breakpoint condition',
        body: new ConditionDialogBody(hit.line, current),
        buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Save' })],
        focusNodeSelector: 'input'
      });
      if (!result.button.accept || !result.value) {
        return;
      }
      if (!validHitCondition(result.value.hitCondition)) {
        Notification.error(
          `Hit count "${result.value.hitCondition}" is not a number: the breakpoint was not changed.`
        );
        return;
      }
      conditions.set(hit.line, result.value);
      const model = service.model.breakpoints;
      const lines = model
        .getBreakpoints(path)
        .map(bp => bp.line)
        .filter((line): line is number => typeof line === 'number');
      const reply = await session.sendRequest('setBreakpoints', {
        source: { path },
        breakpoints: requestFor([...lines, hit.line], conditions),
        sourceModified: false
      });
      await session.sendRequest('configurationDone', {});
      if (reply.success) {
        model.setBreakpoints(
          path,
          reply.body.breakpoints.map(bp => ({
            ...bp,
            source: { ...bp.source, path }
          }))
        );
      }
    }
  });

  app.contextMenu.addItem({
    command: DebuggerCommandIDs.editCondition,
    selector: GUTTER_ROW_SELECTOR,
    rank: 0
  });
}

const debuggerPlugin: JupyterFrontEndPlugin<void> = {
  id: DEBUGGER_PLUGIN_ID,
  description:
    "cyscope: breakpoint conditions and hit counts in JupyterLab's debugger, and %%cython breakpoints' state.",
  autoStart: true,
  optional: [IDebugger],
  activate
};

export const debuggerPlugins: JupyterFrontEndPlugin<void>[] = [debuggerPlugin];
