import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tmp/**', 'cdk.out/**', 'out/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['bin/**/*.js'],
    languageOptions: { globals: { process: 'readonly' } },
  },
  {
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': 'off',
    },
  },
  {
    // The core never imports AWS SDK clients; adapters under src/lambda, src/sinks/<aws> and handlers do.
    files: ['src/core/**/*.ts', 'src/events.ts', 'src/entities.ts', 'src/routes.ts', 'src/errors.ts', 'src/ports.ts', 'src/app.ts', 'src/index.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['@aws-sdk/client-*', '@aws-sdk/lib-*'], message: 'The core must not import AWS SDK clients; put this in an adapter.' }] }],
    },
  },
);
