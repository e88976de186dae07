// Prints HTML reports to PDF with headless chromium: for each `x.html`
// given, writes `x.pdf` next to it. One browser for all files.
//
//   node tools/web/pdf.mjs DIR/a.html DIR/b.html ...
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { launch } from './chromium.mjs';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node pdf.mjs FILE.html...');
  process.exit(2);
}
const browser = await launch();
try {
  const page = await browser.newPage();
  // A report is self-contained: any request leaving the page is a bug.
  await page.route(/^(?!file:)/, (route) => route.abort());
  for (const file of files) {
    await page.goto(pathToFileURL(resolve(file)).href);
    await page.pdf({ path: file.replace(/\.html$/, '') + '.pdf', format: 'A4', printBackground: true,
                     margin: { top: '12mm', bottom: '12mm', left: '12mm', right: '12mm' } });
  }
} finally {
  await browser.close();
}
