/**
 * Where crash reports reach the frontend, and what it says about them; no
 * JupyterLab imports (unit-tested). The restarted kernel puts the reports
 * of its dead predecessor in the `crashes` field of the cyscope comm's
 * `hello` (protocol/cyscope.schema.json); each is sent once.
 */
import type { KernelMessage } from '@jupyterlab/services';

import { isObject } from '../schemaRuntime';
import { cellLabel, crashSite, ICrash, parseCrash } from './payload';

export interface ICrashEntry {
  report: ICrash;
  text: string;
}

/** The crash entries a kernel message carries: a cyscope `hello` with `crashes`, else none. */
export function crashesIn(msg: KernelMessage.IMessage): ICrashEntry[] {
  if (msg.header.msg_type !== 'comm_msg') {
    return [];
  }
  const data = (msg.content as KernelMessage.ICommMsgMsg['content'])
    .data as unknown;
  if (
    !isObject(data) ||
    data.v !== 1 ||
    data.type !== 'hello' ||
    !Array.isArray(data.crashes)
  ) {
    return [];
  }
  const entries: ICrashEntry[] = [];
  for (const entry of data.crashes as unknown[]) {
    if (!isObject(entry)) {
      continue;
    }
    const parsed = parseCrash(entry.report);
    if (!parsed.ok) {
      console.warn(`cyscope: ${parsed.error}`);
      continue;
    }
    entries.push({
      report: parsed.value,
      text: typeof entry.text === 'string' ? entry.text : ''
    });
  }
  return entries;
}

/**
 * What the notification says: the cell, the signal and the site, and that
 * the state is gone. JupyterLab cuts a notification at 140 characters.
 */
export function notificationText(report: ICrash): string {
  const running = report.cell;
  const cell = running ? cellLabel(running) : 'a cell';
  const site = crashSite(report);
  const at = site?.cell
    ? `, ${cellLabel(site.cell)} line ${site.cell.line}`
    : '';
  return (
    `Kernel crashed in ${cell} (${report.signal.name}${at}). ` +
    'It restarted: its state (variables, imports) was lost.'
  );
}
