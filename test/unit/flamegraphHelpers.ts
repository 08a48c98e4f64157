/** Shared by the flamegraph unit tests: reading fixtures, checking trees. */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';

import { IFlameData, parseFlamegraph } from '../../src/flamegraph/payload';
import { FlameTree } from '../../src/flamegraph/tree';
import { PROTOCOL_DIR } from '../support/protocol-files';

export function read(data: unknown): IFlameData {
  const parsed = parseFlamegraph(data);
  if (!parsed.ok) {
    throw new Error(parsed.error);
  }
  return parsed.value;
}

export function big(): unknown {
  const file = path.join(
    PROTOCOL_DIR,
    'fixtures',
    'flamegraph-100k-nodes.json.gz'
  );
  return JSON.parse(zlib.gunzipSync(fs.readFileSync(file)).toString('utf8'));
}

/** Every node's value is its self plus its children's; offsets tile. */
export function expectNestedSet(tree: FlameTree): void {
  const problems: string[] = [];
  for (let i = 0; i < tree.size && problems.length < 5; i++) {
    let sum = 0;
    let x = tree.offset[i];
    for (let c = i + 1; c < tree.end[i]; c = tree.end[c]) {
      if (tree.offset[c] !== x || tree.parent[c] !== i) {
        problems.push(`node ${c}: offset or parent wrong`);
      }
      x += tree.value[c];
      sum += tree.value[c];
    }
    if (tree.self[i] + sum !== tree.value[i]) {
      problems.push(`node ${i}: ${tree.value[i]} != ${tree.self[i]} + ${sum}`);
    }
  }
  expect(problems).toEqual([]);
}
