// Validates Grafana dashboards against JSON Schemas generated from Grafana's own TypeScript
// types (npm @grafana/schema): the dashboard model, and each panel's options and custom field
// config against its panel plugin's types. Prints one JSON line {checked, errors}.
//
// usage: node validate-dashboards.cjs DASHBOARD.json...
// env:   MERIDIAN_JS_DIR (node_modules' parent)
"use strict";

const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

const root = process.env.MERIDIAN_JS_DIR || __dirname;
const need = createRequire(path.join(root, "package.json"));
const tsj = need("ts-json-schema-generator");
const Ajv = need("ajv");

const types = path.join(root, "node_modules/@grafana/schema/dist/types/raw");

function schemaOf(file, type) {
  return tsj.createGenerator({ path: path.join(types, file), type, skipTypeCheck: true, expose: "export" })
    .createSchema(type);
}

// Options and custom field config, per panel plugin the dashboards use.
const PANELS = {
  timeseries: { options: "Options", custom: "FieldConfig" },
  stat: { options: "Options" },
  table: { options: "Options", custom: "FieldConfig" },
  logs: { options: "Options" },
};

function main() {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const dashboardSchema = schemaOf("dashboard/x/types.gen.d.ts", "Dashboard");
  const dashboard = ajv.compile(dashboardSchema);
  // Grafana's types give an annotation's target the built-in datasource's shape only (their
  // own TODO says it "should just be a normal query target"): the targets of annotations from
  // other datasources are checked as a panel's queries are.
  const query = ajv.compile({
    ...dashboardSchema.definitions.Panel.properties.targets.items,
    definitions: dashboardSchema.definitions,
  });
  const panelSchemas = {};
  for (const [kind, parts] of Object.entries(PANELS)) {
    const file = `composable/${kind}/panelcfg/x/types.gen.d.ts`;
    panelSchemas[kind] = Object.fromEntries(
      Object.entries(parts).map(([part, type]) => [part, ajv.compile(schemaOf(file, type))]),
    );
  }
  const errors = [];
  let checked = 0;
  for (const file of process.argv.slice(2)) {
    const name = path.basename(file);
    const d = JSON.parse(fs.readFileSync(file, "utf8"));
    checked += 1;
    for (const a of d.annotations?.list || []) {
      if (a.datasource?.type === "grafana" || !a.target) continue;
      if (!query(a.target)) {
        for (const e of query.errors) errors.push(`${name}: annotation ${a.name} target${e.instancePath} ${e.message}`);
      }
    }
    const shaped = structuredClone(d);
    for (const a of shaped.annotations?.list || []) if (a.datasource?.type !== "grafana") delete a.target;
    if (!dashboard(shaped)) {
      for (const e of dashboard.errors) errors.push(`${name}: dashboard${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
    }
    for (const p of d.panels || []) {
      const s = panelSchemas[p.type];
      if (!s) {
        errors.push(`${name}: panel ${p.id} has type ${p.type}, which this check has no schema for`);
        continue;
      }
      if (!s.options(p.options || {})) {
        for (const e of s.options.errors) errors.push(`${name}: panel ${p.id} options${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
      }
      const custom = p.fieldConfig?.defaults?.custom;
      if (s.custom && custom && !s.custom(custom)) {
        for (const e of s.custom.errors) errors.push(`${name}: panel ${p.id} custom${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
      }
    }
  }
  process.stdout.write(JSON.stringify({ checked, errors }) + "\n");
}

main();
