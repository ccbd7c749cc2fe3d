import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { BrowserContext } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export interface Browser {
  context: BrowserContext;
  close: () => Promise<void>;
}

/**
 * Headless Chromium with a fresh profile and the flags this machine needs. `locale` sets the
 * browser's language (navigator.language and Accept-Language), which the Node-RED editor uses;
 * `args` adds Chromium flags (e.g. a fake camera).
 */
export async function openBrowser(opts: { locale?: string; args?: string[] } = {}): Promise<Browser> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mnist-browser-profile-'));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { chromium } = require('playwright-core');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1600, height: 1000 },
    ...(opts.locale ? { locale: opts.locale } : {}),
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...(opts.locale ? [`--lang=${opts.locale}`] : []), ...(opts.args ?? [])],
  }) as BrowserContext;
  return {
    context,
    close: async () => {
      await context.close().catch(() => undefined);
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}
