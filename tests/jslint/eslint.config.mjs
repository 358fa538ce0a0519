// ESLint for the browser client. Run from the repository root (make lint, .ci/run):
//   npm ci --prefix tests/jslint && npm run --prefix tests/jslint lint
// The client is a plain script for current browsers (ES2020, no modules, no build step) that
// handles tokens: besides the recommended rules, no string ever becomes code or markup.
import js from "@eslint/js";
import globals from "globals";

export default [
  js.configs.recommended,
  {
    files: ["authbridge/static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2020,
      sourceType: "script",
      globals: { ...globals.browser },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // Strings never become code.
      "no-eval": "error",
      "no-implied-eval": "error",
      "no-new-func": "error",
      "no-script-url": "error",
      // Nor markup: the client only creates elements and sets properties.
      "no-restricted-syntax": [
        "error",
        {
          selector: "AssignmentExpression[left.property.name=/^(innerHTML|outerHTML)$/]",
          message: "build elements with createElement; never assign HTML strings",
        },
        {
          selector: "CallExpression[callee.property.name=/^(insertAdjacentHTML|write|writeln)$/]",
          message: "build elements with createElement; never write HTML strings",
        },
      ],
      // Comparisons and scope that cannot surprise.
      eqeqeq: "error",
      "no-var": "error",
      "prefer-const": "error",
      strict: ["error", "function"],
      "no-shadow": "error",
      "no-use-before-define": ["error", { functions: false, classes: true, variables: false }],
      "no-throw-literal": "error",
      "no-proto": "error",
      "no-extend-native": "error",
      "no-caller": "error",
    },
  },
];
