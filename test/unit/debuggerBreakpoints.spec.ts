/**
 * src/debugger: the breakpoint data cyscope adds to JupyterLab's debugger, and the
 * condition dialog's body. (The command in a real JupyterLab: test/e2e/debugger.spec.ts.)
 */
import {
  applyBreakpointEvent,
  conditionsOf,
  inactiveNotices,
  requestFor,
  validHitCondition
} from '../../src/debugger/breakpoints';
import { ConditionDialogBody } from '../../src/debugger/conditionDialog';

describe('breakpoint conditions', () => {
  const info = {
    isStarted: true,
    breakpoints: [
      {
        source: '/tmp/ipykernel_1/123.py',
        breakpoints: [
          { line: 5, condition: 'i == 500' },
          { line: 7, hitCondition: '3' },
          { line: 9 }
        ]
      },
      {
        source: '/tmp/ipykernel_1/other.py',
        breakpoints: [{ line: 1, condition: 'x' }]
      }
    ]
  };

  it('reads the conditions the kernel reports for one cell', () => {
    const got = conditionsOf(info, '/tmp/ipykernel_1/123.py');
    expect([...got.entries()]).toEqual([
      [5, { condition: 'i == 500', hitCondition: '' }],
      [7, { condition: '', hitCondition: '3' }],
      [9, { condition: '', hitCondition: '' }]
    ]);
  });

  it('accepts what it does not know and anything malformed', () => {
    expect(conditionsOf(null, 'x').size).toBe(0);
    expect(conditionsOf({ breakpoints: 'no' }, 'x').size).toBe(0);
    expect(
      conditionsOf(
        {
          breakpoints: [
            {
              source: 'x',
              breakpoints: [{ line: 'two' }, null, { line: 3, extra: 1 }]
            }
          ]
        },
        'x'
      ).size
    ).toBe(1);
  });

  it('sends every line with both fields, so the kernel takes the request as complete', () => {
    const conditions = new Map([
      [5, { condition: ' i == 500 ', hitCondition: '' }]
    ]);
    expect(requestFor([9, 5, 9], conditions)).toEqual([
      { line: 5, condition: 'i == 500', hitCondition: '' },
      { line: 9, condition: '', hitCondition: '' }
    ]);
  });

  it('checks hit counts as the kernel does', () => {
    for (const ok of ['3', ' == 3', '>=10', '% 100', '', '  ']) {
      expect(validHitCondition(ok)).toBe(true);
    }
    for (const bad of ['three', '3.5', '>> 2', 'i == 3']) {
      expect(validHitCondition(bad)).toBe(false);
    }
  });

  it('moves a breakpoint when the kernel says the line changed', () => {
    const current = [
      { id: 1, verified: false, line: 2 },
      { id: 2, verified: true, line: 3 }
    ];
    expect(
      applyBreakpointEvent(current, { id: 1, verified: true, line: 3 })
    ).toEqual([{ id: 1, verified: true, line: 3 }]);
    expect(
      applyBreakpointEvent(current, { id: 9, verified: true, line: 3 })
    ).toBeNull();
    expect(applyBreakpointEvent(current, { verified: true } as any)).toBeNull();
  });

  it("lists cyscope's messages about inactive breakpoints only", () => {
    expect(
      inactiveNotices([
        {
          verified: false,
          line: 5,
          message: 'cyscope: run the cell again',
          source: { path: '/p.py' }
        },
        { verified: false, line: 6, message: 'debugpy says no' },
        { verified: true, line: 7, message: 'cyscope: moved' },
        'junk'
      ])
    ).toEqual([
      { path: '/p.py', line: 5, text: 'line 5: cyscope: run the cell again' }
    ]);
    expect(inactiveNotices(undefined)).toEqual([]);
  });
});

describe('ConditionDialogBody', () => {
  it('starts from the current values and returns trimmed ones', () => {
    const body = new ConditionDialogBody(5, {
      condition: 'i == 1',
      hitCondition: ''
    });
    const [condition, hits] = Array.from(body.node.querySelectorAll('input'));
    expect(condition.value).toBe('i == 1');
    condition.value = '  i == 500 ';
    hits.value = ' 3 ';
    expect(body.getValue()).toEqual({
      condition: 'i == 500',
      hitCondition: '3'
    });
    expect(body.node.textContent).toContain('line 5');
  });

  it('says when a hit count is not one', () => {
    const body = new ConditionDialogBody(2, {
      condition: '',
      hitCondition: ''
    });
    const hits = body.node.querySelectorAll('input')[1];
    hits.value = 'often';
    hits.dispatchEvent(new Event('input'));
    expect(
      body.node.querySelector('.jp-cyscope-breakpointDialog-error')?.textContent
    ).toMatch(/is a number/);
    hits.value = '4';
    hits.dispatchEvent(new Event('input'));
    expect(
      body.node.querySelector('.jp-cyscope-breakpointDialog-error')?.textContent
    ).toBe('');
  });
});
