// ESLint for the browser code in static/: plain ES modules, no build step, no framework.
// Run by scripts/test.sh (installed by scripts/bootstrap.sh when HOTLINE_WITH_BROWSER=1).
import js from "@eslint/js";
import globals from "globals";

export default [
  js.configs.recommended,
  {
    files: ["static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: { ...globals.browser },
    },
    rules: {
      "no-unused-vars": ["error", { args: "none", caughtErrors: "none" }],
      "no-empty": ["error", { allowEmptyCatch: true }],
      eqeqeq: ["error", "smart"],
      "no-implicit-globals": "error",
    },
  },
];
