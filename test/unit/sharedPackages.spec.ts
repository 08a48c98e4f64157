/**
 * The JupyterLab packages cyscope takes from the host app are declared with
 * the range cyscope supports (package.json's dependencies, from 4.5 on), not
 * the range of the JupyterLab that built it (the builder's default, ^4.6.x),
 * which would make JupyterLab 4.5 warn and load a mismatched share.
 */
import * as fs from 'fs';
import * as path from 'path';

const pkg = JSON.parse(
  fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')
);
const shared: Record<string, { bundled?: boolean; requiredVersion?: string }> =
  pkg.jupyterlab.sharedPackages;

describe('jupyterlab.sharedPackages', () => {
  it('covers the @jupyterlab packages the extension imports at run time', () => {
    const imported = new Set<string>();
    const walk = (dir: string): void => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) {
          walk(file);
        } else if (file.endsWith('.ts')) {
          // `import type` is erased and asks the host for nothing.
          const source = fs.readFileSync(file, 'utf8');
          for (const m of source.matchAll(
            /^import (?!type )[^;]*?from '(@jupyterlab\/[^']+)'/gms
          )) {
            imported.add(m[1]);
          }
        }
      }
    };
    walk(path.resolve(__dirname, '..', '..', 'src'));
    expect(imported.size).toBeGreaterThan(0);
    for (const name of imported) {
      expect([name, shared[name]?.requiredVersion]).toEqual([
        name,
        pkg.dependencies[name]
      ]);
      expect(shared[name].bundled).toBe(false);
    }
  });
});
