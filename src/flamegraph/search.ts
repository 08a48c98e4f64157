/**
 * Search a FlameTree's frames by text or regular expression: which nodes
 * match, and the share of the total they hold (a match inside another
 * match is counted once). Labels are tested once per frame, not per node.
 * No DOM.
 */
import { FlameTree } from './tree';

export interface ISearchResult {
  /** 1 for each matching node. */
  matches: Uint8Array;
  /** How many nodes match. */
  nodes: number;
  /** Bytes under the matching nodes, each byte once. */
  value: number;
  /** value / the root's value. */
  share: number;
  /** Why the query is not a regular expression (the engine's words), or null. */
  error: string | null;
}

export interface ISearchOptions {
  regex: boolean;
}

/** Case-insensitive: a plain query is a substring, a regex is a pattern. */
export function search(
  tree: FlameTree,
  query: string,
  options: ISearchOptions = { regex: false }
): ISearchResult {
  const matches = new Uint8Array(tree.size);
  const none = (error: string | null): ISearchResult => ({
    matches,
    nodes: 0,
    value: 0,
    share: 0,
    error
  });
  if (query === '') {
    return none(null);
  }
  // A plain query is a regex of its escaped text: testing a
  // case-insensitive pattern allocates nothing, lower-casing every label
  // (100,000 of them) would.
  let pattern: RegExp;
  try {
    pattern = new RegExp(
      options.regex ? query : query.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
      'i'
    );
  } catch (error) {
    return none((error as Error).message);
  }
  const test = (label: string) => pattern.test(label);
  const labels = tree.frames.label;
  const frameMatches = new Uint8Array(labels.length);
  for (let f = 0; f < labels.length; f++) {
    frameMatches[f] = test(labels[f]) ? 1 : 0;
  }
  const rootMatches = test(tree.rootLabel);
  let nodes = 0;
  for (let i = 0; i < tree.size; i++) {
    const f = tree.frame[i];
    const hit = i === 0 || f < 0 ? rootMatches : frameMatches[f] === 1;
    if (hit) {
      matches[i] = 1;
      nodes++;
    }
  }
  // Summed share: the outermost matches only.
  let value = 0;
  for (let i = 0; i < tree.size;) {
    if (matches[i]) {
      value += tree.value[i];
      i = tree.end[i];
    } else {
      i++;
    }
  }
  const total = tree.value[0];
  return {
    matches,
    nodes,
    value,
    share: total > 0 ? value / total : 0,
    error: null
  };
}
