// The request path reads in one direction: no directory of src/ imports, directly or
// through others, a directory that imports it back.

import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { directoryCycles, directoryGraph } from './import_graph.js';

const src = fileURLToPath(new URL('../../src', import.meta.url));

describe('src/ layout', () => {
  it('has no import cycle between directories', () => {
    const graph = directoryGraph(src);
    const explain = directoryCycles(graph).map((dirs) =>
      dirs
        .flatMap((a) => dirs.filter((b) => graph.get(a)?.has(b)).map((b) => `${a} -> ${b} (${graph.get(a)!.get(b)})`))
        .join('; '),
    );
    expect(explain).toEqual([]);
  });

  it('sees the edges it checks', () => {
    // The check is only as good as the import parser: the serving core's known edges show up.
    const graph = directoryGraph(src);
    expect([...(graph.get('frontend')?.keys() ?? [])]).toEqual(expect.arrayContaining(['http', 'router', 'preprocess']));
    expect([...(graph.get('router')?.keys() ?? [])]).toEqual(expect.arrayContaining(['engine', 'native']));
  });
});
