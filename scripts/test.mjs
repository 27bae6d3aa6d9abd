// `npm test`: the vitest suites and the plain C++ tests (GoogleTest under ctest).
// Prints `N passed, N failed` and writes build/test-summary.json for .ci/run.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

// 0. The C++ tests' build starts first, in the background at the lowest CPU priority: the
// vitest suites leave much of the CPU idle (they wait on sockets, timers and child processes),
// and the build takes that time. Step 2 waits for it, then builds again (a no-op when this
// one succeeded, the compiler's errors when it did not).
const extra = process.argv.slice(2);
// (Its own session, given back the normal priority as a whole once vitest is done.)
const aheadLog = extra.length ? undefined : openSync(join(build, 'ctest-ahead.log'), 'w');
const ahead =
  aheadLog &&
  spawn('nice', ['-n', '19', 'npm', 'run', '--silent', 'build:ctest'], { cwd: root, detached: true, stdio: ['ignore', aheadLog, aheadLog] });
const aheadDone = ahead && new Promise((resolve) => ahead.on('exit', resolve).on('error', resolve));

// 1. vitest (JSON report beside the console output).
const vitestJson = join(build, 'vitest.json');
rmSync(vitestJson, { force: true });
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
  // Root may lower a niceness; anyone else waits for it as it is. Every process of its session
  // (ninja gives each compiler a process group of its own).
  spawnSync('sh', ['-c', `renice -n 0 -p $(ps -o pid= -s ${ahead.pid})`], { stdio: 'ignore' });
  await aheadDone;
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
