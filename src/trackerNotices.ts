/**
 * What the kernel's allocation tracker wants the user to know (Python frames
 * it cannot read on this interpreter, objects counted by arena, no
 * symboliser): it sends them with its figures in each sample
 * (`sample.native.notices`), and the memory panel shows them.
 */
import { ISampleMessage } from './protocol';

/** The notices of the latest sample as one line of text ('' when none). */
export function trackerNoticeText(sample: ISampleMessage | null): string {
  const notices = sample?.native?.notices ?? [];
  // One per id: a reader may see the same notice in many samples.
  const seen = new Set<string>();
  const messages: string[] = [];
  for (const notice of notices) {
    if (!seen.has(notice.id)) {
      seen.add(notice.id);
      messages.push(notice.message);
    }
  }
  return messages.join(' ');
}
