// kvgate's one CLI entry: `kvgate <command> [options] [-- engine args]`.
// Each command lives in src/cli/commands/<name>.ts and exports `run(argv)`.

import { readFileSync } from 'node:fs';
import { COMMANDS, helpText, type CommandName } from '../config.js';

// package.json is two levels up from both src/cli and dist/cli.
const version = (): string => (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const usage = () =>
  [
    'kvgate: a KV-cache-aware serving gateway for SGLang engines',
    '',
    'usage: kvgate <command> [options]',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`),
    '',
    'Run `kvgate <command> --help` for its options, `kvgate --version` for the version.',
  ].join('\n');

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  // No command is a usage error: help on stderr, non-zero exit (scripts notice).
  if (!command) {
    console.error(usage());
    process.exitCode = 1;
    return;
  }
  if (command === '--help' || command === '-h' || command === 'help') {
    console.log(usage());
    return;
  }
  if (command === '--version' || command === '-V') {
    console.log(version());
    return;
  }
  if (!Object.hasOwn(COMMANDS, command)) {
    throw new Error(`unknown command '${command}'\n\n${usage()}`);
  }
  const name = command as CommandName;
  const dashdash = rest.indexOf('--');
  const own = dashdash >= 0 ? rest.slice(0, dashdash) : rest;
  if (own.includes('--help') || own.includes('-h')) {
    console.log(helpText(name));
    return;
  }
  const mod = (await import(`./commands/${name}.js`)) as { run(argv: string[]): Promise<void> };
  await mod.run(rest);
}
