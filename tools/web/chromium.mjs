// Launches Debian's chromium through playwright-core (no browser download),
// with the flags it needs as root and without network side traffic.
// Playwright gives every launch a fresh temporary profile of its own.
import { chromium } from 'playwright-core';

export async function launch() {
  const executablePath = process.env.FOOTFALL_CHROMIUM || '/usr/bin/chromium';
  return chromium.launch({
    executablePath,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}
