// Sums the gzipped size of the initial JavaScript (the entry chunk and its static
// imports) from Vite's manifest; exits 1 over the budget.
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const BUDGET_KB = 200;
const dist = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/app');
const manifest = JSON.parse(await readFile(resolve(dist, '.vite/manifest.json'), 'utf8'));

const seen = new Set();
let total = 0;
async function visit(key) {
  if (seen.has(key)) return;
  seen.add(key);
  const chunk = manifest[key];
  if (!chunk) throw new Error('budget: manifest has no chunk ' + key);
  if (chunk.file.endsWith('.js')) {
    total += gzipSync(await readFile(resolve(dist, chunk.file)), { level: 9 }).length;
  }
  for (const dep of chunk.imports ?? []) await visit(dep);
}
const entries = Object.keys(manifest).filter((k) => manifest[k].isEntry);
if (entries.length === 0) throw new Error('budget: no entry chunk in the manifest');
for (const e of entries) await visit(e);

const kb = total / 1024;
console.log(`initial JS: ${kb.toFixed(1)} KB gzipped (budget ${BUDGET_KB} KB)`);
if (kb > BUDGET_KB) {
  console.error('budget: initial JavaScript is over budget');
  process.exit(1);
}
