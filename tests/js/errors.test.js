// Error codes come from the server: this asks chat/errors.py for its table, as the page carries it.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { actionFor, NOT_IN_ROOM, parseErrorTable, RATE_LIMITED, UNAUTHORIZED } from "../../static/js/errors.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const venv = join(root, ".venv", "bin", "python");
const python = process.env.PYTHON || (existsSync(venv) ? venv : "python3");
const serverTable = () => JSON.parse(execFileSync(python, ["-c",
  "import json; from chat.errors import table; print(json.dumps(table()))"], { cwd: root, encoding: "utf8" }));

const table = serverTable();

test("the server describes every code with its status and whether a retry helps", () => {
  assert.ok(Object.keys(table).length >= 10);
  for (const [code, info] of Object.entries(table)) {
    assert.match(code, /^[a-z_]+$/);
    assert.equal(typeof info.final, "boolean", code);
    assert.ok(info.status >= 400 && info.status < 600, code);
  }
});

test("every code the client names is one the server has", () => {
  for (const code of [RATE_LIMITED, NOT_IN_ROOM, UNAUTHORIZED]) assert.ok(code in table, code);
});

test("a final refusal fails the message; the others wait, rejoin or retry", () => {
  for (const [code, info] of Object.entries(table)) {
    const action = actionFor(code, table);
    if (info.final) assert.equal(action, "fail", code);
    else assert.notEqual(action, "fail", code);
  }
  assert.equal(actionFor(RATE_LIMITED, table), "wait");
  assert.equal(actionFor(NOT_IN_ROOM, table), "rejoin");
  assert.equal(actionFor("unavailable", table), "retry");
  assert.equal(actionFor("a_code_from_a_newer_server", table), "retry");
  assert.equal(actionFor(undefined, table), "retry");
});

test("the page's table is read safely", () => {
  assert.deepEqual(parseErrorTable(JSON.stringify(table)), table);
  for (const broken of [undefined, "", "{oops", "[1]", "null", "3"]) assert.deepEqual(parseErrorTable(broken), {}, broken);
});
