import { Widget } from '@lumino/widgets';

import { MemoryModel } from '../../src/model';
import { MemoryPanel } from '../../src/memoryPanel';
import { ICellRecord } from '../../src/protocol';
import { MemoryStatus } from '../../src/statusBar';
import { FakeChannel } from './fakeChannel';
import { hello, record, sample } from './messages';

function part(panel: MemoryPanel, name: string): HTMLElement {
  return panel.node.querySelector(`[data-cyscope="${name}"]`) as HTMLElement;
}

async function frame(): Promise<void> {
  await new Promise(resolve => requestAnimationFrame(() => resolve(null)));
}

function withMemory(count: number, peak: number, extra = {}): ICellRecord {
  return {
    ...record(count),
    memory: {
      peak_bytes: peak,
      net_bytes: peak / 2,
      allocated_bytes: peak * 2,
      allocations: count * 10,
      leaked_bytes: 0
    },
    ...extra
  };
}

/** A panel on the page (focus works only there) with these rows. */
async function panelWith(
  rows: ICellRecord[]
): Promise<{ panel: MemoryPanel; channel: FakeChannel }> {
  const channel = new FakeChannel();
  const panel = new MemoryPanel();
  panel.model = new MemoryModel(channel, 100);
  Widget.attach(panel, document.body);
  channel.emit({ v: 1, type: 'history', records: rows });
  await frame();
  return { panel, channel };
}

function rowsOf(panel: MemoryPanel): HTMLElement[] {
  return [
    ...panel.node.querySelectorAll('tbody tr[data-key]')
  ] as HTMLElement[];
}

function key(target: Element, k: string): void {
  target.dispatchEvent(new KeyboardEvent('keydown', { key: k, bubbles: true }));
}

afterEach(() => {
  document.body.replaceChildren();
});

describe('MemoryPanel', () => {
  it('asks for a notebook when there is none', () => {
    const panel = new MemoryPanel();
    expect(part(panel, 'notice').textContent).toContain('Open a notebook');
    expect(part(panel, 'live').hidden).toBe(true);
  });

  it('renders the live figure, the running cell and rows newest first', async () => {
    const channel = new FakeChannel();
    const model = new MemoryModel(channel, 100);
    const panel = new MemoryPanel();
    panel.model = model;
    channel.emit(hello());
    channel.emit(sample(300 * 1024 * 1024, true, 7));
    await frame();
    expect(part(panel, 'rss').textContent).toBe('300 MiB');
    expect(part(panel, 'running').textContent).toBe('running cell [7]');
    channel.emit({ v: 1, type: 'cell', record: record(6) });
    channel.emit({
      v: 1,
      type: 'cell',
      record: { ...record(7), success: false }
    });
    await frame();
    const rows = rowsOf(panel);
    expect(rows.map(r => r.dataset.executionCount)).toEqual(['7', '6']);
    expect(rows[0].classList.contains('cyscope-mod-failed')).toBe(true);
    expect(
      rows[1].querySelector('[data-column="rss-delta"]')?.textContent
    ).toBe('+200 B');
    // Heap columns stay hidden until a row carries tracker figures.
    expect(panel.hasClass('cyscope-mod-noHeap')).toBe(true);
    channel.emit({ v: 1, type: 'cell', record: withMemory(8, 2048) });
    await frame();
    expect(panel.hasClass('cyscope-mod-noHeap')).toBe(false);
    const newest = rowsOf(panel)[0];
    const column = (name: string) =>
      newest.querySelector(`[data-column="${name}"]`)?.textContent;
    expect([
      column('heap-peak'),
      column('heap-net'),
      column('allocations')
    ]).toEqual(['2.0 KiB', '+1.0 KiB', '80']);
  });

  it('names each row by the first line of its cell', async () => {
    const { panel } = await panelWith([
      { ...record(1), first_line: 'data = load("big.csv")' },
      record(2)
    ]);
    (panel.model as MemoryModel).lookupFirstLine = id =>
      id === 'cell-2' ? 'total = data.sum()' : null;
    panel.table.refresh();
    const lines = rowsOf(panel).map(
      r => r.querySelector('.cyscope-CellTable-firstLine')?.textContent
    );
    expect(lines).toEqual(['total = data.sum()', 'data = load("big.csv")']);
  });

  it('emits rowActivated for a row with a cell id, on click and on Enter', async () => {
    const { panel } = await panelWith([
      record(1),
      { ...record(2), cell_id: null }
    ]);
    const activated: (string | null)[] = [];
    panel.rowActivated.connect((_, r) => activated.push(r.cell_id));
    const [second, first] = rowsOf(panel);
    second.click(); // no cell id: nothing to reveal
    first.click();
    key(first, 'Enter');
    expect(activated).toEqual(['cell-1', 'cell-1']);
    expect(first.tabIndex).toBe(0);
    expect(second.classList.contains('cyscope-mod-linked')).toBe(false);
  });

  it('is one tab stop, walked with the arrow keys, Home and End', async () => {
    const { panel, channel } = await panelWith([
      record(1),
      record(2),
      record(3)
    ]);
    const table = panel.node.querySelector('table') as HTMLElement;
    const tabStops = () => table.querySelectorAll('[tabindex="0"]');
    expect(tabStops()).toHaveLength(1);
    const [r3, r2, r1] = rowsOf(panel);
    expect(tabStops()[0]).toBe(r3);
    r3.focus();
    key(r3, 'ArrowDown');
    expect(document.activeElement).toBe(r2);
    key(r2, 'End');
    expect(document.activeElement).toBe(r1);
    key(r1, 'Home');
    expect(document.activeElement).toBe(r3);
    expect(tabStops()).toHaveLength(1);
    expect(panel.selectedRecord?.execution_count).toBe(3);
    // A new row does not take the tab stop or the focus away.
    key(r3, 'ArrowDown');
    channel.emit({ v: 1, type: 'cell', record: record(4) });
    await frame();
    expect(rowsOf(panel)).toHaveLength(4);
    expect((document.activeElement as HTMLElement).dataset.executionCount).toBe(
      '2'
    );
    expect(tabStops()).toHaveLength(1);
    expect(panel.selectedRecord?.execution_count).toBe(2);
  });

  it('sorts by any column, by mouse and by keyboard', async () => {
    const { panel } = await panelWith([
      withMemory(1, 5000),
      withMemory(2, 9000),
      withMemory(3, 1000)
    ]);
    const counts = () => rowsOf(panel).map(r => r.dataset.executionCount);
    expect(counts()).toEqual(['3', '2', '1']);
    const header = (c: string) =>
      panel.node.querySelector(`th[data-column="${c}"]`) as HTMLElement;
    expect(header('cell').getAttribute('aria-sort')).toBe('descending');
    (header('heap-peak').querySelector('button') as HTMLElement).click();
    expect(counts()).toEqual(['2', '1', '3']);
    expect(header('heap-peak').getAttribute('aria-sort')).toBe('descending');
    expect(header('cell').getAttribute('aria-sort')).toBe('none');
    (header('heap-peak').querySelector('button') as HTMLElement).click();
    expect(counts()).toEqual(['3', '1', '2']);
    // Keyboard: up from the first row into the header, along, Enter.
    const first = rowsOf(panel)[0];
    first.focus();
    key(first, 'ArrowUp');
    const active = document.activeElement as HTMLElement;
    expect(active.closest('th')?.dataset.column).toBe('heap-peak');
    key(active, 'ArrowLeft');
    const cellButton = document.activeElement as HTMLElement;
    expect(cellButton.closest('th')?.dataset.column).toBe('cell');
    key(cellButton, 'Enter');
    expect(counts()).toEqual(['3', '2', '1']);
    // Still one tab stop, now the header button the user is on.
    const table = panel.node.querySelector('table') as HTMLElement;
    expect(table.querySelectorAll('[tabindex="0"]')).toHaveLength(1);
    key(document.activeElement as HTMLElement, 'ArrowDown');
    expect(document.activeElement).toBe(rowsOf(panel)[0]);
  });

  it("shows each cell's share of the heap peak as a bar", async () => {
    const { panel } = await panelWith([
      withMemory(1, 3000),
      withMemory(2, 1000)
    ]);
    const widths = rowsOf(panel).map(
      r => (r.querySelector('.cyscope-Bar') as HTMLElement).style.width
    );
    expect(widths).toEqual(['25.0%', '75.0%']);
    expect(
      (
        rowsOf(panel)[1].querySelector(
          '[data-column="heap-peak"]'
        ) as HTMLElement
      ).title
    ).toBe('75% of all cells');
  });

  it('collapses the columns that do not fit, and shows them in the details', async () => {
    const { panel } = await panelWith([withMemory(1, 3000), withMemory(2, 10)]);
    const hidden = () =>
      [...panel.node.querySelectorAll('thead th')]
        .filter(th => (th as HTMLElement).hidden)
        .map(th => (th as HTMLElement).dataset.column);
    panel.table.fit(2000);
    expect(hidden()).toEqual([]);
    // 12 px per em: about 20 em of room.
    panel.table.fit(250);
    expect(hidden().sort()).toEqual(
      ['allocations', 'heap-net', 'rss-peak', 'time'].sort()
    );
    expect(
      rowsOf(panel)[0].querySelector('[data-column="allocations"]')
    ).toHaveProperty('hidden', true);
    // Right opens the row's details: every figure, hidden columns' too.
    const row = rowsOf(panel)[0];
    row.focus();
    key(row, 'ArrowRight');
    const details = panel.node.querySelector(
      '.cyscope-CellTable-details'
    ) as HTMLElement;
    expect(details).not.toBeNull();
    expect(rowsOf(panel)[0].getAttribute('aria-expanded')).toBe('true');
    const text = details.textContent ?? '';
    expect(text).toContain('Allocs20');
    expect(text).toContain('Peak RSS400 B');
    expect(document.activeElement).toBe(rowsOf(panel)[0]);
    key(rowsOf(panel)[0], 'ArrowLeft');
    expect(panel.node.querySelector('.cyscope-CellTable-details')).toBeNull();
    panel.table.fit(2000);
    expect(hidden()).toEqual([]);
  });

  it('gives the chart an accessible name and value', async () => {
    const channel = new FakeChannel();
    const panel = new MemoryPanel();
    panel.model = new MemoryModel(channel, 100);
    channel.emit(hello());
    channel.emit({ ...sample(100 * 1024 * 1024), t_ms: 1000 });
    channel.emit({ ...sample(300 * 1024 * 1024), t_ms: 6000 });
    await frame();
    const chart = panel.node.querySelector('svg') as SVGElement;
    expect(chart.getAttribute('role')).toBe('img');
    expect(chart.getAttribute('aria-label')).toBe(
      'Resident memory (RSS) over the last 5 s: 300 MiB now, lowest 100 MiB, highest 300 MiB'
    );
  });

  it('hosts row actions and toolbar items of other plugins', async () => {
    const { panel } = await panelWith([record(1), record(2)]);
    const ran: number[] = [];
    const action = panel.addRowAction({
      id: 'flamegraph',
      label: 'Flamegraph of this cell',
      isVisible: r => r.execution_count !== 1,
      execute: r => ran.push(r.execution_count)
    });
    const buttons = () =>
      [
        ...panel.node.querySelectorAll('button[data-action="flamegraph"]')
      ] as HTMLElement[];
    expect(buttons()).toHaveLength(1);
    expect(buttons()[0].getAttribute('aria-label')).toBe(
      'Flamegraph of this cell'
    );
    buttons()[0].click();
    expect(ran).toEqual([2]);
    expect(() =>
      panel.addRowAction({ id: 'flamegraph', label: 'x', execute: () => 0 })
    ).toThrow(/already/);
    action.dispose();
    expect(buttons()).toHaveLength(0);

    const item = new Widget();
    item.node.textContent = 'Export';
    expect(panel.toolbar.addItem('export', item)).toBe(true);
    expect(panel.toolbar.node.textContent).toBe('Export');
  });

  it('explains a kernel without cyscope', async () => {
    const channel = new FakeChannel();
    channel.state = {
      status: 'unavailable',
      detail: "ModuleNotFoundError: No module named 'cyscope'"
    };
    const panel = new MemoryPanel();
    panel.model = new MemoryModel(channel, 100);
    const notice = part(panel, 'notice');
    expect(notice.textContent).toContain(
      'cyscope is not available in this kernel'
    );
    expect(notice.textContent).toContain('ModuleNotFoundError');
    expect(notice.classList.contains('cyscope-mod-warning')).toBe(true);
  });

  it.each([
    ['off', /not loaded into new kernels/],
    ['unloaded', /unloaded from this kernel/],
    [
      'retrying',
      /lost its connection to the kernel: closed; trying again in 4 s/
    ]
  ] as const)('says why a %s kernel shows nothing', (status, text) => {
    const channel = new FakeChannel();
    channel.state = { status, detail: 'closed; trying again in 4 s' };
    const panel = new MemoryPanel();
    panel.model = new MemoryModel(channel, 100);
    expect(part(panel, 'notice').textContent).toMatch(text);
  });

  it('shows what the kernel could not follow of the settings', async () => {
    const channel = new FakeChannel();
    const panel = new MemoryPanel();
    panel.model = new MemoryModel(channel, 100);
    channel.emit(hello());
    channel.emit({
      v: 1,
      type: 'config',
      interval_ms: 100,
      tracking: 'off',
      tracking_modes: ['off'],
      cython_magic: 'cyscope',
      problems: [
        "memory tracking stays off: CYSCOPE_TRACKING=0 in the kernel's environment"
      ]
    });
    await frame();
    expect(part(panel, 'notice').textContent).toContain('CYSCOPE_TRACKING=0');
  });
});

describe('MemoryStatus', () => {
  it('shows the tracked heap, else RSS, and opens the panel on click', async () => {
    const channel = new FakeChannel();
    const model = new MemoryModel(channel, 100);
    let opened = 0;
    const status = new MemoryStatus({ onOpen: () => opened++ });
    expect(status.node.textContent).toBe('Memory: –');
    status.model = model;
    channel.emit(sample(300 * 1024 * 1024, true, 2));
    await frame();
    expect(status.node.textContent).toBe('RSS: 300 MiB');
    expect(status.hasClass('cyscope-mod-running')).toBe(true);
    channel.emit({
      ...sample(310 * 1024 * 1024, false, 2),
      native: { current_bytes: 20 * 1024 * 1024, peak_bytes: 30 * 1024 * 1024 }
    });
    await frame();
    expect(status.node.textContent).toBe('Heap: 20.0 MiB');
    expect(status.node.title).toContain('resident 310 MiB');
    expect(status.hasClass('cyscope-mod-running')).toBe(false);
    status.node.click();
    expect(opened).toBe(1);
  });
});

describe('the tab stop', () => {
  it('follows the newest row until the user picks one', async () => {
    const { panel, channel } = await panelWith([record(1)]);
    const stop = () =>
      (panel.node.querySelector('table [tabindex="0"]') as HTMLElement)?.dataset
        .executionCount;
    channel.emit({ v: 1, type: 'cell', record: record(2) });
    await frame();
    expect(stop()).toBe('2');
    // Focused by a command (the panel shown): still not a pick.
    panel.table.focus();
    channel.emit({ v: 1, type: 'cell', record: record(3) });
    await frame();
    expect(stop()).toBe('3');
    // The user moves to a row: it keeps the tab stop.
    key(document.activeElement as HTMLElement, 'ArrowDown');
    channel.emit({ v: 1, type: 'cell', record: record(4) });
    await frame();
    expect(stop()).toBe('2');
  });
});
