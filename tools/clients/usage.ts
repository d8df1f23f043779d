// A client's use of the TypeScript types that openapi-typescript generates from the API document (api.d.ts beside
// this file once tools/clients.py has run). `tsc --strict` checks it: a type the document lost or changed fails.
import type { components, operations, paths } from "./api";

type Schemas = components["schemas"];
type Developer = Schemas["Developer"];
type Problem = Schemas["Problem"];

const signIn: operations["signIn"]["requestBody"]["content"]["application/x-www-form-urlencoded"] = {
  username: "ada@example.com",
  password: "a password long enough",
  grant_type: "password",
  scope: "",
  client_id: "",
};
const token: Schemas["AccessToken"] = { access_token: "eyJ...", token_type: "bearer", expires_in: 900 };

const created: paths["/api/developers"]["post"]["requestBody"]["content"]["application/json"] = {
  name: "Ada Lovelace",
  email: "ada@example.com",
  specialty: "compilers",
};
const ada: paths["/api/developers/{developer_id}"]["get"]["responses"][200]["content"]["application/json"] = {
  id: 42,
  ...created,
  created_at: "2025-03-14T09:26:53.589793Z",
  updated_at: "2025-03-14T09:26:53.589793Z",
};
// @ts-expect-error a Developer has an email
const nameless: Developer = { id: 1, name: "A", specialty: "x", created_at: "", updated_at: "" };

const page: operations["listDevelopers"]["responses"][200]["content"]["application/json"] = {
  items: [ada],
  next_cursor: null,
};
const query: NonNullable<operations["listDevelopers"]["parameters"]["query"]> = { limit: 2, cursor: page.next_cursor };
const patch: operations["updateDeveloper"]["requestBody"]["content"]["application/json"] = { specialty: "maths" };
const ifMatch: NonNullable<operations["updateDeveloper"]["parameters"]["header"]>["If-Match"] = '"42.1"';

// A batch update's item names the developer and changes at least one field.
const batch: operations["updateDevelopers"]["requestBody"]["content"]["application/json"] = [
  { id: 42, specialty: "maths", if_match: '"42.2"' },
  { id: 43, name: "Grace Hopper", email: "grace@example.com" },
];
// @ts-expect-error an item that changes nothing (an id and an If-Match only) is refused
const unchanged: Schemas["DeveloperBatchUpdate"] = { id: 42, if_match: '"42.2"' };

// Each import format is an operation of its own; NDJSON and CSV travel as the bytes of a string.
const rows: operations["importDevelopers"]["requestBody"]["content"]["application/json"] = [created];
const ndjson: operations["importDevelopersNdjson"]["requestBody"]["content"]["application/x-ndjson"] =
  rows.map((row) => JSON.stringify(row) + "\n").join("");
const csv: operations["importDevelopersCsv"]["requestBody"]["content"]["text/csv"] =
  "name,email,specialty\nAda Lovelace,ada@example.com,compilers\n";
const imported: operations["importDevelopersCsv"]["responses"][201]["content"]["application/json"] = {
  created: 1,
  updated: 0,
  skipped: 0,
};
const onConflict: NonNullable<operations["submitImportNdjson"]["parameters"]["query"]>["on_conflict"] = "skip";

const conflict: operations["createDeveloper"]["responses"][409]["content"]["application/problem+json"] = {
  status: 409,
  title: "Conflict",
  detail: "A developer has this email already.",
};
const missing: Problem = { status: 404, title: "Not Found" };
// @ts-expect-error a Problem's status is a number
const wrong: Problem = { status: "404", title: "Not Found" };

const job: operations["submitImport"]["responses"][202]["content"]["application/json"] = {
  id: 7,
  status: "queued",
  on_conflict: "error",
  rows_total: null,
  rows_done: 0,
  created: null,
  updated: null,
  skipped: null,
  submitted_by: 1,
  error: null,
  cancel_requested: false,
  created_at: "2025-03-14T09:26:53.589793Z",
  started_at: null,
  finished_at: null,
};
const finished: boolean = ["succeeded", "failed", "cancelled"].includes(job.status);

export const used = [
  signIn,
  token,
  nameless,
  query,
  patch,
  ifMatch,
  batch,
  unchanged,
  ndjson,
  csv,
  imported,
  onConflict,
  conflict,
  missing,
  wrong,
  finished,
];
