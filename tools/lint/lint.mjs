// `npm run lint`: installs this directory's ESLint once (its own package.json and lockfile,
// see there why), then lints the repository with eslint.config.mjs. Extra arguments go to
// ESLint (e.g. --fix).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const here = new URL('.', import.meta.url).pathname;
const root = join(here, '..', '..');
const run = (cmd, args, cwd) => spawnSync(cmd, args, { cwd, stdio: 'inherit' }).status ?? 1;

if (!existsSync(join(here, 'node_modules', '.bin', 'eslint'))) {
  const status = run('npm', ['ci', '--no-audit', '--no-fund', '--silent'], here);
  if (status !== 0) process.exit(status);
}
const eslint = join(here, 'node_modules', '.bin', 'eslint');
process.exit(run(eslint, ['-c', join(here, 'eslint.config.mjs'), '--max-warnings', '0', ...process.argv.slice(2), 'src', 'test', 'bench', 'scripts', 'bin', 'tools/lint'], root));
