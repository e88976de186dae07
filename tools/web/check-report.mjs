// Renders a report page in headless chromium, saves a screenshot, and prints
// the numbers on the page (every element with data-metric) as JSON, plus any
// request the page tried to make (there must be none).
//
//   node tools/web/check-report.mjs REPORT.html SCREENSHOT.png
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { launch } from './chromium.mjs';

const [file, screenshot] = process.argv.slice(2);
if (!file || !screenshot) {
  console.error('usage: node check-report.mjs REPORT.html SCREENSHOT.png');
  process.exit(2);
}
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  const external = [];
  page.on('request', (r) => { if (!r.url().startsWith('file:')) external.push(r.url()); });
  await page.goto(pathToFileURL(resolve(file)).href);
  const metrics = await page.$$eval('[data-metric]', (els) => els.map((e) => ({
    metric: e.getAttribute('data-metric'),
    key: e.getAttribute('data-key'),
    text: e.textContent.trim(),
    visible: e.getBoundingClientRect().width > 0,
  })));
  await page.screenshot({ path: screenshot, fullPage: true });
  // A phone-sized rendering: the page must not scroll sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  // What sticks out, to say why when it does.
  const wide = await page.evaluate(() => [...document.querySelectorAll('body *')]
    .filter((e) => !e.closest('.scroll') && e.getBoundingClientRect().right > window.innerWidth + 1)
    .slice(0, 5)
    .map((e) => `${e.tagName.toLowerCase()}.${e.className} right=${Math.round(e.getBoundingClientRect().right)}`)
    .concat([`scrollWidth=${document.documentElement.scrollWidth} innerWidth=${window.innerWidth}`]));
  console.log(JSON.stringify({ metrics, external, phone_overflow: overflow, too_wide: wide }));
} finally {
  await browser.close();
}
