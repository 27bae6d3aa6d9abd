#!/usr/bin/env node
// The installed CLI runs the compiled TypeScript (npm install builds dist/).
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).catch((err) => {
  console.error(`kvgate: ${err?.message ?? err}`);
  process.exit(1);
});
