// kvgate's one CLI entry: `kvgate <command> [options] [-- engine args]`.
// Each command lives in src/cli/commands/<name>.ts and exports `run(argv)`.

import { COMMANDS, helpText, type CommandName } from './config.js';

const usage = () =>
  [
    'kvgate: a KV-cache-aware serving gateway for SGLang engines',
    '',
    'usage: kvgate <command> [options]',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`),
    '',
    'Run `kvgate <command> --help` for its options.',
  ].join('\n');

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    console.log(usage());
    return;
  }
  if (!(command in COMMANDS)) {
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
