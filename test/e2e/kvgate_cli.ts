// `kvgate` run from the TypeScript sources (node --import tsx test/e2e/kvgate_cli.ts ...), the
// way bin/kvgate.js runs the build; the e2e tests and bench:routing spawn it.
import { main } from '../../src/cli/main.js';

main(process.argv.slice(2)).catch((err: Error) => {
  console.error(`kvgate: ${err?.message ?? err}`);
  process.exit(1);
});
