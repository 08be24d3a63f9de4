import { describe, expect, it } from 'vitest';
import { findChromium, launchChromium } from '../helpers/chromium.js';

// The browser tests must pass on a machine with no system Chromium (`npm ci && npm test` only):
// this walks that path even where Debian's browser is installed.
describe('Chromium for the browser tests', () => {
  it('comes from the @sparticuz/chromium npm package when the system has none, and renders a page', async () => {
    const missing = '/nonexistent/chromium';
    const found = await findChromium(missing);
    expect(found.source).toBe('npm');
    const browser = await launchChromium(missing);
    try {
      const page = await browser.newPage();
      await page.setContent('<main><h1>TaskFlow</h1></main>');
      expect(await page.locator('h1').textContent()).toBe('TaskFlow');
      // The packaged build, not a system one.
      expect(browser.version()).toMatch(/^143\./);
    } finally {
      await browser.close();
    }
  }, 60_000);
});
