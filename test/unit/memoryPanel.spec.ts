import { MemoryModel } from '../../src/model';
import { MemoryPanel } from '../../src/memoryPanel';
import { FakeChannel } from './fakeChannel';
import { hello, record, sample } from './messages';

function part(panel: MemoryPanel, name: string): HTMLElement {
  return panel.node.querySelector(`[data-cyscope="${name}"]`) as HTMLElement;
}

async function frame(): Promise<void> {
  await new Promise(resolve => requestAnimationFrame(() => resolve(null)));
}

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
    const rows = [...panel.node.querySelectorAll('tbody tr')] as HTMLElement[];
    expect(rows.map(r => r.dataset.executionCount)).toEqual(['7', '6']);
    expect(rows[0].classList.contains('cyscope-mod-failed')).toBe(true);
    expect(
      rows[1].querySelector('[data-column="rss-delta"]')?.textContent
    ).toBe('+200 B');
    // Heap columns stay hidden until a row carries tracker figures.
    expect(panel.hasClass('cyscope-mod-noHeap')).toBe(true);
    channel.emit({
      v: 1,
      type: 'cell',
      record: {
        ...record(8),
        memory: {
          peak_bytes: 2048,
          net_bytes: -1024,
          allocated_bytes: 4096,
          allocations: 3,
          leaked_bytes: 0
        }
      }
    });
    await frame();
    expect(panel.hasClass('cyscope-mod-noHeap')).toBe(false);
    const newest = panel.node.querySelectorAll('tbody tr')[0];
    const column = (name: string) =>
      newest.querySelector(`[data-column="${name}"]`)?.textContent;
    expect([
      column('heap-peak'),
      column('heap-net'),
      column('allocations')
    ]).toEqual(['2.0 KiB', '-1.0 KiB', '3']);
  });

  it('emits rowActivated for a row with a cell id, on click and on Enter', async () => {
    const channel = new FakeChannel();
    const panel = new MemoryPanel();
    panel.model = new MemoryModel(channel, 100);
    const activated: (string | null)[] = [];
    panel.rowActivated.connect((_, r) => activated.push(r.cell_id));
    channel.emit({ v: 1, type: 'cell', record: record(1) });
    channel.emit({
      v: 1,
      type: 'cell',
      record: { ...record(2), cell_id: null }
    });
    await frame();
    const [second, first] = [
      ...panel.node.querySelectorAll('tbody tr')
    ] as HTMLElement[];
    second.click(); // no cell id: nothing to reveal
    first.click();
    first.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
    expect(activated).toEqual(['cell-1', 'cell-1']);
    expect(first.tabIndex).toBe(0);
    expect(second.classList.contains('cyscope-mod-linked')).toBe(false);
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
});
