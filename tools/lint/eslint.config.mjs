// ESLint for kvgate's TypeScript and JavaScript: ESLint's and typescript-eslint's recommended
// rules (syntax-level, no type information, so a run takes seconds). Run from the repository
// root as `npm run lint` (tools/lint/lint.mjs); paths below are relative to the root.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // Generated code (flatc) and build output are not ours to lint.
  { ignores: ['dist/', 'build/', '**/node_modules/', 'src/transport/generated/', 'kvgate-*.tgz'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module', globals: { ...globals.node } },
    rules: {
      // `_`-prefixed names are deliberately unused (destructuring away a field, a required parameter).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
    },
  },
  {
    // Tests read protocol replies loosely (JSON of many shapes); product code may not.
    files: ['test/**', 'bench/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
