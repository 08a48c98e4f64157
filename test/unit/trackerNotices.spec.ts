import { MemoryModel } from '../../src/model';
import { MemoryPanel } from '../../src/memoryPanel';
import { trackerNoticeText } from '../../src/trackerNotices';
import { FakeChannel } from './fakeChannel';
import { hello, sample } from './messages';

const FRAMES = {
  id: 'python-frames',
  message:
    'Python frames are not shown: Python 3.14.0 is not a version cyscope reads frames of (3.11 to 3.13).'
};

async function frame(): Promise<void> {
  await new Promise(resolve => requestAnimationFrame(() => resolve(null)));
}

describe('tracker notices', () => {
  it('reads the notices of a sample, once per id', () => {
    const withNotices = {
      ...sample(1, true, 3),
      native: { current_bytes: 1, peak_bytes: 2, notices: [FRAMES, FRAMES] }
    };
    expect(trackerNoticeText(withNotices)).toBe(FRAMES.message);
    expect(trackerNoticeText(sample(1, true, 3))).toBe('');
    expect(trackerNoticeText(null)).toBe('');
  });

  it('shows them in the memory panel, and stops when they stop', async () => {
    const channel = new FakeChannel();
    const model = new MemoryModel(channel, 100);
    const panel = new MemoryPanel();
    panel.model = model;
    channel.emit(hello());
    channel.emit({
      ...sample(1000, true, 3),
      native: { current_bytes: 1, peak_bytes: 2, notices: [FRAMES] }
    });
    await frame();
    const notice = panel.node.querySelector(
      '[data-cyscope="notice"]'
    ) as HTMLElement;
    expect(notice.hidden).toBe(false);
    expect(notice.textContent).toBe(FRAMES.message);
    channel.emit({
      ...sample(1000, false, 3),
      native: { current_bytes: 1, peak_bytes: 2 }
    });
    await frame();
    expect(notice.hidden).toBe(true);
  });
});
