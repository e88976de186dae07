// The live page in headless Chromium (Playwright), driven by tests/live_page.rs.
//
// Phase 1: open the page, print "ready"; the simulator then starts, and the
// venue's numbers must change: print "changed". Phase 2 (after "go" on stdin, the sender
// stopped): the page must settle on the numbers /v1/sql gives for the
// page's own clock, in English, French and Arabic (right to left), with
// screenshots in ARTIFACTS. Any failure exits non-zero with the reason.
"use strict";
const path = require("path");
const fs = require("fs");
const modules = process.env.FOOTFALL_NODE_MODULES;
if (!modules) fail("FOOTFALL_NODE_MODULES is not set: eval \"$(scripts/tools env)\"");
const { chromium } = require(path.join(modules, "playwright-core"));

const BASE = process.env.BASE;
const OUT = process.env.ARTIFACTS;
const CHROMIUM = process.env.FOOTFALL_CHROMIUM || "/usr/bin/chromium";

function fail(msg) {
  console.error("live page test: " + msg);
  process.exit(1);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function sql(query) {
  const r = await fetch(`${BASE}/v1/sql?format=json`, { method: "POST", body: query });
  const body = await r.text();
  if (r.status !== 200) fail(`SQL ${query}: ${r.status} ${body}`);
  return JSON.parse(body);
}

function stdinLine() {
  return new Promise((resolve) => {
    let buf = "";
    process.stdin.on("data", (d) => {
      buf += d;
      if (buf.includes("\n")) resolve(buf.trim());
    });
  });
}

// What the page shows now, from its data attributes.
async function shown(page) {
  return page.evaluate(() => {
    const c = document.getElementById("clock").dataset;
    const zones = {};
    for (const z of document.querySelectorAll("[data-zone]")) {
      zones[z.dataset.zone] = { inside: Number(z.dataset.inside), today: Number(z.dataset.entriesToday) };
    }
    return {
      clock: c.clock, day: c.day, open: c.open === "true",
      inside: Number(document.getElementById("inside").dataset.value),
      today: Number(document.getElementById("today").dataset.value),
      total: Number(document.getElementById("today").dataset.total),
      updates: Number(document.body.dataset.updates || 0),
      zones,
    };
  });
}

// The same numbers from SQL, by the occupancy rule at the page's clock.
async function expected(s) {
  const where = `local_day = DATE '${s.day}' AND ts <= TIMESTAMP '${s.clock}'`;
  const net = "CAST(sum(CASE WHEN direction = 'in' THEN 1 ELSE -1 END) AS BIGINT)";
  const ins = "CAST(sum(CASE WHEN direction = 'in' THEN 1 ELSE 0 END) AS BIGINT)";
  const gate = await sql(`SELECT ${net} AS net, ${ins} AS ins FROM scans WHERE zone_kind = 'gate' AND ${where}`);
  const poles = await sql(`SELECT pole_id, ${ins} AS ins FROM scans WHERE pole_id IS NOT NULL AND ${where} GROUP BY pole_id`);
  // Stands (and so poles) by the stand_visits rule: a badge is at a stand
  // while its latest scan of the day is an "in" there, for at most 2 h.
  const twoHoursBefore = new Date(Date.parse(s.clock) - 2 * 3600 * 1000).toISOString();
  const o = "ORDER BY ts DESC, log_partition DESC, log_offset DESC";
  const atPoles = await sql(`SELECT st.pole_id, count(*) AS n FROM (
      SELECT badge, first_value(zone_kind ${o}) AS kind, first_value(stand_id ${o}) AS stand,
             first_value(direction ${o}) AS dir, max(ts) AS last_ts
      FROM scans WHERE ${where} GROUP BY badge) v
    JOIN stands st ON st.stand_id = v.stand
    WHERE v.kind = 'stand' AND v.dir = 'in' AND v.last_ts > TIMESTAMP '${twoHoursBefore}'
    GROUP BY st.pole_id`);
  const poleInside = Object.fromEntries(atPoles.map((r) => [r.pole_id, Number(r.n)]));
  const rooms = await sql(`SELECT zone_id, ${net} AS net, ${ins} AS ins FROM scans WHERE zone_kind = 'room' AND ${where} GROUP BY zone_id`);
  const total = await sql("SELECT CAST(sum(entries) AS BIGINT) AS n FROM footfall_hourly WHERE level = 'venue'");
  const rule = (net) => (s.open ? Math.max(0, Number(net || 0)) : 0);
  const zones = {};
  for (const r of poles) zones[`pole:${r.pole_id}`] = { inside: s.open ? poleInside[r.pole_id] || 0 : 0, today: Number(r.ins) };
  for (const r of rooms) zones[`room:${r.zone_id}`] = { inside: rule(r.net), today: Number(r.ins) };
  return { inside: rule(gate[0].net), today: Number(gate[0].ins || 0), total: Number(total[0].n || 0), zones };
}

function differences(got, want) {
  const out = [];
  for (const k of ["inside", "today", "total"]) if (got[k] !== want[k]) out.push(`${k}: page ${got[k]}, SQL ${want[k]}`);
  for (const [z, w] of Object.entries(want.zones)) {
    const g = got.zones[z] || {};
    if (g.inside !== w.inside || g.today !== w.today) out.push(`${z}: page ${JSON.stringify(g)}, SQL ${JSON.stringify(w)}`);
  }
  return out;
}

(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  const profile = fs.mkdtempSync(path.join(require("os").tmpdir(), "footfall-chromium-"));
  // A fresh profile per run (launchPersistentContext owns --user-data-dir).
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    viewport: { width: 1280, height: 1000 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = browser.pages()[0] || (await browser.newPage());
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("pageerror", (e) => fail("page error: " + e.message));
  await page.goto(`${BASE}/?lang=en`);
  await page.waitForFunction(() => Number(document.body.dataset.updates || 0) >= 1, null, { timeout: 30000 });

  // Phase 1: the numbers move once the simulator sends.
  const first = await shown(page);
  console.log("ready");
  const deadline = Date.now() + 60000;
  let now = first;
  while (now.total === first.total) {
    if (Date.now() > deadline) fail(`the venue's entries stayed at ${first.total} for 60 s`);
    await sleep(200);
    now = await shown(page);
  }
  console.log(`changed ${first.total} -> ${now.total} after ${now.updates - first.updates} updates`);
  await page.screenshot({ path: path.join(OUT, "en-moving.png"), fullPage: true });

  // Phase 2: the sender has stopped; the page settles on what SQL says.
  const go = await stdinLine();
  if (go !== "go") fail(`expected go, got ${go}`);
  let diff = ["not compared yet"];
  let s;
  const settle = Date.now() + 30000;
  while (diff.length) {
    if (Date.now() > settle) fail("the page disagrees with /v1/sql:\n" + diff.join("\n"));
    await sleep(300);
    s = await shown(page);
    if (!s.clock) continue;
    diff = differences(s, await expected(s));
  }
  if (!s.open || s.inside <= 0) fail(`expected an open venue with people inside, got ${JSON.stringify(s)}`);
  console.log(`agrees with SQL at ${s.clock}: inside ${s.inside}, entries today ${s.today}, total ${s.total}`);
  await page.screenshot({ path: path.join(OUT, "en.png"), fullPage: true });

  // French, then Arabic right to left, on a laptop and on a phone.
  await page.click('button[data-lang="fr"]');
  const fr = await page.textContent('[data-i18n="poles"]');
  if (fr !== "Pôles") fail(`French heading: ${fr}`);
  await page.screenshot({ path: path.join(OUT, "fr.png"), fullPage: true });
  await page.click('button[data-lang="ar"]');
  const dir = await page.evaluate(() => [document.documentElement.dir, document.documentElement.lang]);
  if (dir[0] !== "rtl" || dir[1] !== "ar") fail(`Arabic layout: ${dir}`);
  const ar = await page.textContent('[data-i18n="poles"]');
  if (ar !== "الأقطاب") fail(`Arabic heading: ${ar}`);
  // The header's first item sits on the right in RTL.
  const rtl = await page.evaluate(() => {
    const h = document.getElementById("venue").getBoundingClientRect();
    return h.right > window.innerWidth / 2;
  });
  if (!rtl) fail("the Arabic page is not laid out right to left");
  await page.screenshot({ path: path.join(OUT, "ar.png"), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(OUT, "ar-phone.png"), fullPage: true });
  const after = await shown(page);
  if (differences(after, await expected(after)).length) fail("numbers changed with the language");

  // No request left the server: every asset is embedded.
  const foreign = requests.filter((u) => !u.startsWith(BASE));
  if (foreign.length) fail("requests outside footfall: " + foreign.join(", "));
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
  console.log("ok");
  process.exit(0);
})().catch((e) => fail(e.stack || String(e)));
