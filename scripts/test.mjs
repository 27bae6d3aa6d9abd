// `npm test`: the vitest suites and the plain C++ tests (GoogleTest under ctest).
// Prints `N passed, N failed` and writes build/test-summary.json for .ci/run.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const build = join(root, 'build');
mkdirSync(build, { recursive: true });

function run(cmd, args, env = {}) {
  console.log(`\n$ ${cmd} ${args.join(' ')}`);
  return spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } }).status ?? 1;
}

let passed = 0;
let failed = 0;

// 1. vitest (JSON report beside the console output).
const vitestJson = join(build, 'vitest.json');
rmSync(vitestJson, { force: true });
const extra = process.argv.slice(2);
const vitestStatus = run('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile=${vitestJson}`, ...extra]);
if (existsSync(vitestJson)) {
  const r = JSON.parse(readFileSync(vitestJson, 'utf8'));
  passed += r.numPassedTests;
  failed += r.numFailedTests + (r.numRuntimeErrors ?? 0);
  // A file that fails to load has no test results; count it as a failure.
  for (const f of r.testResults ?? []) if (f.status === 'failed' && (f.assertionResults ?? []).length === 0) failed += 1;
} else if (vitestStatus !== 0) {
  failed += 1;
}

// 2. C++ tests: one GoogleTest binary per native/tests/*_test.cc, case counts from JSON.
if (!extra.length) {
  const gtestDir = join(build, 'ctest', 'gtest-results');
  rmSync(gtestDir, { recursive: true, force: true });
  const status = run('npm', ['run', '--silent', 'test:native'], { GTEST_OUTPUT: `json:${gtestDir}/` });
  let counted = 0;
  if (existsSync(gtestDir)) {
    for (const f of readdirSync(gtestDir)) {
      const r = JSON.parse(readFileSync(join(gtestDir, f), 'utf8'));
      passed += r.tests - r.failures - (r.disabled ?? 0);
      failed += r.failures;
      counted += r.tests;
    }
  }
  if (status !== 0 && counted === 0) failed += 1;
}

writeFileSync(join(build, 'test-summary.json'), JSON.stringify({ passed, failed }) + '\n');
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
