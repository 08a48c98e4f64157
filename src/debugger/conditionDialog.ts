/**
 * The body of the "Edit Breakpoint Condition" dialog: a condition (a Python expression
 * over the frame's locals) and a hit count.
 */
import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IConditions, validHitCondition } from './breakpoints';

export class ConditionDialogBody
  extends Widget
  implements Dialog.IBodyWidget<IConditions>
{
  constructor(line: number, current: IConditions) {
    super({ node: document.createElement('form') });
    this.addClass('jp-cyscope-breakpointDialog');
    const intro = document.createElement('p');
    intro.textContent = `Stop at line ${line} only when:`;
    this.condition = field(
      'Condition',
      'a Python expression over the locals, e.g. i == 500',
      current.condition,
      'jp-cyscope-breakpointCondition'
    );
    this.hitCondition = field(
      'Hit count',
      'e.g. 3 (the third pass), >= 10, % 100',
      current.hitCondition,
      'jp-cyscope-breakpointHitCount'
    );
    this.error = document.createElement('p');
    this.error.className = 'jp-cyscope-breakpointDialog-error';
    this.hitCondition.input.addEventListener('input', () => this.check());
    this.node.append(
      intro,
      this.condition.label,
      this.hitCondition.label,
      this.error
    );
    // Enter submits the dialog, not the form.
    this.node.addEventListener('submit', event => event.preventDefault());
  }

  getValue(): IConditions {
    return {
      condition: this.condition.input.value.trim(),
      hitCondition: this.hitCondition.input.value.trim()
    };
  }

  protected onAfterAttach(): void {
    this.condition.input.focus();
  }

  private check(): void {
    const ok = validHitCondition(this.hitCondition.input.value);
    this.error.textContent = ok
      ? ''
      : 'A hit count is a number, optionally after ==, !=, >, >=, <, <= or %.';
  }

  private readonly condition: IField;
  private readonly hitCondition: IField;
  private readonly error: HTMLElement;
}

interface IField {
  label: HTMLLabelElement;
  input: HTMLInputElement;
}

function field(
  title: string,
  placeholder: string,
  value: string,
  className: string
): IField {
  const label = document.createElement('label');
  const text = document.createElement('span');
  text.textContent = title;
  const input = document.createElement('input');
  input.type = 'text';
  input.className = `jp-mod-styled ${className}`;
  input.placeholder = placeholder;
  input.value = value;
  input.spellcheck = false;
  label.append(text, input);
  return { label, input };
}
